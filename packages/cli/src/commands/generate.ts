import { Args, Flags } from '@oclif/core';
import { resolveAdapter } from '../adapter.js';
import { PeftCommand } from '../base-command.js';
import { loadRegistry } from '../registry.js';
import { numberFlag } from '../numbers.js';

export default class Generate extends PeftCommand {
  static override summary = 'Continue a prompt with a model, streaming the text as it is generated.';
  static override description =
    'Prefills the prompt, then generates token by token with a KV cache until an end-of-sequence token or --max-new-tokens. ' +
    'Temperature 0 (the default) is greedy; otherwise tokens are sampled (temperature, then top-p) from a seeded stream. ' +
    'Prompt and new tokens together hold at most the model\'s max_position_embeddings: a longer prompt is refused, and generation ' +
    'stops there (stopReason "max_position_embeddings", with a note on stderr).';

  static override examples = [
    '<%= config.bin %> generate ./tiny-llama --prompt "Once upon a time"',
    '<%= config.bin %> generate ./tiny-llama --prompt "Hi" --temperature 0.8 --top-p 0.95 --seed 7 --max-new-tokens 100',
    '<%= config.bin %> generate ./tiny-llama --prompt "What is 2+2?" --chat --json',
  ];

  static override args = {
    model: Args.string({ description: 'Hugging Face model folder (config.json, safetensors, tokenizer.json)', required: true }),
  };

  static override flags = {
    adapter: Flags.string({ description: 'PEFT adapter folder to apply (its peft_type picks the method plugin)' }),
    backend: Flags.string({ description: 'kernel backend', options: ['auto', 'native', 'reference'], default: 'auto' }),
    chat: Flags.boolean({ description: 'send the prompt as a user message through the chat template', default: false }),
    'max-new-tokens': Flags.integer({ char: 'n', description: 'tokens to generate at most', default: 64, min: 0 }),
    prompt: Flags.string({ char: 'p', description: 'the text to continue', required: true }),
    seed: Flags.integer({ description: 'seed of the sampling stream', default: 0 }),
    temperature: Flags.string({ char: 't', description: 'sampling temperature; 0 = greedy [default: 0]' }),
    'top-p': Flags.string({ description: 'nucleus sampling mass in (0, 1] [default: 1]' }),
  };

  public async run() {
    const { args, flags } = await this.parse(Generate);
    const core = await import('@peft/core-tensor');
    const kernels = core.getTrainKernels(flags.backend as 'auto' | 'native' | 'reference');
    const temperature = await numberFlag('temperature', flags.temperature);
    const topP = await numberFlag('top-p', flags['top-p']);
    const warnings: string[] = [];
    const registry = await loadRegistry(this.config); // adapter methods, and the quantizer of a quantized model
    const applyAdapter = flags.adapter ? await resolveAdapter(registry, flags.adapter, warnings) : undefined;
    const stream = !this.jsonEnabled();
    const r = await core.runGenerate({
      modelDir: args.model, prompt: flags.prompt, chat: flags.chat, maxNewTokens: flags['max-new-tokens'], temperature, topP,
      seed: flags.seed, applyAdapter, kernels, quantizers: registry, onText: stream ? (d) => process.stdout.write(d) : undefined,
    });
    if (stream) process.stdout.write('\n');
    if (stream && r.stopReason === 'max_position_embeddings') {
      this.logToStderr(`note: stopped after ${r.tokenIds.length} new tokens: the prompt's ${r.promptTokenIds.length} and these fill ` +
        `max_position_embeddings (${r.maxPositions})`);
    }
    return flags.adapter ? { ...r, warnings } : r;
  }
}
