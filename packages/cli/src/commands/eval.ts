import { Args, Flags } from '@oclif/core';
import type { EvalSummary } from '@peft/core-tensor';
import { resolveAdapter } from '../adapter.js';
import { PeftCommand } from '../base-command.js';
import { loadRegistry } from '../registry.js';
import { table } from '../format.js';

export default class Eval extends PeftCommand {
  static override summary = 'Score a model on prompt/completion rows (loss, accuracy, exact match) or text rows (perplexity).';
  static override description =
    'Reads JSON lines of one format. {"prompt": ..., "completion": ...}: loss and perplexity over the completion tokens ' +
    '(teacher-forced), token accuracy (how often the argmax is the next completion token) and exact match (the share of ' +
    'rows whose greedy continuation of the prompt is the completion); rows longer than --seq-len lose prompt tokens from ' +
    'the start. {"text": ...}: every token scored once, as lm-evaluation-harness scores wikitext: loss per token, ' +
    'perplexity per token, byte perplexity, bits per byte and word perplexity, in windows of --seq-len tokens ' +
    '(lm-evaluation-harness rolling windows, or with --stride N windows that advance by N tokens and keep the rest as context).';

  static override examples = [
    '<%= config.bin %> eval ./tiny-llama --data eval.jsonl',
    '<%= config.bin %> eval ./tiny-llama-nf4 --data eval.jsonl --batch 16 --seq-len 256 --json',
    '<%= config.bin %> eval ./tiny-llama --data wiki.jsonl --seq-len 512 --stride 256',
    '<%= config.bin %> eval ./tiny-llama --data eval.jsonl --adapter ./my-lora',
  ];

  static override args = {
    model: Args.string({ description: 'Hugging Face model folder (config.json, safetensors, tokenizer.json)', required: true }),
  };

  static override flags = {
    adapter: Flags.string({ description: 'PEFT adapter folder to apply (its peft_type picks the method plugin)' }),
    backend: Flags.string({ description: 'kernel backend', options: ['auto', 'native', 'reference'], default: 'auto' }),
    batch: Flags.integer({ description: 'rows (text rows: windows) per forward pass', default: 8, min: 1 }),
    data: Flags.string({ char: 'd', description: 'JSONL file of {"prompt", "completion"} rows or of {"text"} rows', required: true }),
    'exact-match': Flags.boolean({ description: 'also greedy-generate every completion (prompt/completion rows)', default: true, allowNo: true }),
    'max-row-bytes': Flags.integer({ description: 'longest JSONL line in bytes; longer is refused [default: 8388608 (8 MiB)]', min: 1 }),
    'seq-len': Flags.integer({ description: 'longest sequence scored (text rows: the window), at most max_position_embeddings [default: min(1024, max_position_embeddings)]', min: 2 }),
    stride: Flags.integer({ description: 'text rows: windows advance by this many tokens, below --seq-len [default: lm-evaluation-harness rolling windows]', min: 1 }),
  };

  public async run() {
    const { args, flags } = await this.parse(Eval);
    const core = await import('@peft/core-tensor');
    const kernels = core.getTrainKernels(flags.backend as 'auto' | 'native' | 'reference');
    const warnings: string[] = [];
    const registry = await loadRegistry(this.config); // adapter methods, and the quantizer of a quantized model
    const applyAdapter = flags.adapter ? await resolveAdapter(registry, flags.adapter, warnings) : undefined;
    const live = !this.jsonEnabled() && process.stderr.isTTY;
    const label = { score: 'scored', generate: 'generated', windows: 'scored windows' } as const;
    const s = await core.runEval({
      modelDir: args.model, dataFile: flags.data, batchSize: flags.batch, seqLen: flags['seq-len'], stride: flags.stride,
      maxRowBytes: flags['max-row-bytes'], exactMatch: flags['exact-match'], applyAdapter, kernels, quantizers: registry,
      onProgress: live ? (done, n, phase) => process.stderr.write(`\r${label[phase]} ${done}/${n}${phase === 'windows' ? '' : ' rows'}`) : undefined,
    });
    if (live) process.stderr.write('\n');
    if (this.jsonEnabled()) return flags.adapter ? { ...s, warnings } : s;
    this.log(table(rowsOf(s)));
    return s;
  }
}

/** The human table of a summary. */
function rowsOf(s: EvalSummary): string[][] {
  const time = ['time', `${s.seconds.toFixed(2)} s`];
  if (s.format === 'text') {
    return [
      ['rows', `${s.rows} (${s.tokens} tokens, ${s.bytes} bytes, ${s.words} words)`],
      ['windows', `${s.windows} (seq-len ${s.seqLen}, ${s.stride === null ? 'rolling as lm-evaluation-harness' : `stride ${s.stride}`})`],
      ['loss', `${s.loss.toFixed(4)} per token`],
      ['perplexity', s.perplexity.toFixed(3)],
      ['byte perplexity', s.bytePerplexity.toFixed(4)],
      ['bits per byte', s.bitsPerByte.toFixed(4)],
      ['word perplexity', s.wordPerplexity.toFixed(3)],
      time,
    ];
  }
  return [
    ['rows', `${s.rows} (${s.completionTokens} completion tokens${s.truncatedRows ? `, ${s.truncatedRows} truncated` : ''})`],
    ['loss', s.loss.toFixed(4)],
    ['perplexity', s.perplexity.toFixed(3)],
    ['token accuracy', `${(100 * s.tokenAccuracy).toFixed(2)} %`],
    ['exact match', s.exactMatch === null ? 'not computed' : `${(100 * s.exactMatch).toFixed(2)} % (${s.exactMatches}/${s.rows})`],
    time,
  ];
}
