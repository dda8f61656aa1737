import { Args, Flags } from '@oclif/core';
import { resolveAdapter } from '../adapter.js';
import { PeftCommand } from '../base-command.js';
import { loadRegistry } from '../registry.js';
import { table } from '../format.js';

export default class Eval extends PeftCommand {
  static override summary = 'Score a model on prompt/completion rows: loss, perplexity, token accuracy, exact match.';
  static override description =
    'Reads JSON lines {"prompt": ..., "completion": ...}. Loss and perplexity are over the completion tokens (teacher-forced), ' +
    'token accuracy is how often the argmax is the next completion token, and exact match is the share of rows whose greedy ' +
    'continuation of the prompt is the completion, token for token. Rows longer than --seq-len lose prompt tokens from the start.';

  static override examples = [
    '<%= config.bin %> eval ./tiny-llama --data eval.jsonl',
    '<%= config.bin %> eval ./tiny-llama-nf4 --data eval.jsonl --batch 16 --seq-len 256 --json',
    '<%= config.bin %> eval ./tiny-llama --data eval.jsonl --adapter ./my-lora',
  ];

  static override args = {
    model: Args.string({ description: 'Hugging Face model folder (config.json, safetensors, tokenizer.json)', required: true }),
  };

  static override flags = {
    adapter: Flags.string({ description: 'PEFT adapter folder to apply (its peft_type picks the method plugin)' }),
    backend: Flags.string({ description: 'kernel backend', options: ['auto', 'native', 'reference'], default: 'auto' }),
    batch: Flags.integer({ description: 'rows per forward pass', default: 8, min: 1 }),
    data: Flags.string({ char: 'd', description: 'JSONL file of {"prompt", "completion"} rows', required: true }),
    'exact-match': Flags.boolean({ description: 'also greedy-generate every completion', default: true, allowNo: true }),
    'max-row-bytes': Flags.integer({ description: 'longest JSONL line in bytes; longer is refused [default: 8388608 (8 MiB)]', min: 1 }),
    'seq-len': Flags.integer({ description: 'longest sequence scored, at most max_position_embeddings [default: min(1024, max_position_embeddings)]', min: 2 }),
  };

  public async run() {
    const { args, flags } = await this.parse(Eval);
    const core = await import('@peft/core-tensor');
    const kernels = core.getTrainKernels(flags.backend as 'auto' | 'native' | 'reference');
    const warnings: string[] = [];
    const registry = await loadRegistry(this.config); // adapter methods, and the quantizer of a quantized model
    const applyAdapter = flags.adapter ? await resolveAdapter(registry, flags.adapter, warnings) : undefined;
    const live = !this.jsonEnabled() && process.stderr.isTTY;
    const s = await core.runEval({
      modelDir: args.model, dataFile: flags.data, batchSize: flags.batch, seqLen: flags['seq-len'], maxRowBytes: flags['max-row-bytes'],
      exactMatch: flags['exact-match'], applyAdapter, kernels, quantizers: registry,
      onProgress: live ? (done, n, phase) => process.stderr.write(`\r${phase === 'score' ? 'scored' : 'generated'} ${done}/${n} rows`) : undefined,
    });
    if (live) process.stderr.write('\n');
    if (this.jsonEnabled()) return flags.adapter ? { ...s, warnings } : s;
    this.log(table([
      ['rows', `${s.rows} (${s.completionTokens} completion tokens${s.truncatedRows ? `, ${s.truncatedRows} truncated` : ''})`],
      ['loss', s.loss.toFixed(4)],
      ['perplexity', s.perplexity.toFixed(3)],
      ['token accuracy', `${(100 * s.tokenAccuracy).toFixed(2)} %`],
      ['exact match', s.exactMatch === null ? 'not computed' : `${(100 * s.exactMatch).toFixed(2)} % (${s.exactMatches}/${s.rows})`],
      ['time', `${s.seconds.toFixed(2)} s`],
    ]));
    return s;
  }
}
