import { Args, Flags } from '@oclif/core';
import type { TrainRecipe, TrainRecipeKey } from '@peft/core-tensor';
import { PeftCommand } from '../base-command.js';
import { bytes, count, table } from '../format.js';
import { numberFlag } from '../numbers.js';
import { routeSetPairs } from '../set-options.js';
import { loadRegistry } from '../registry.js';
import { progressPrinter } from '../train-progress.js';

export default class Train extends PeftCommand {
  static override summary = 'Fine-tune a model with an adapter method (LoRA by default; QLoRA on a folder written by `peft quantize`).';
  static override description =
    'Reads JSON lines {"text"}, {"prompt","completion"} (loss on the completion) or {"messages"} (loss on assistant turns). ' +
    'Writes OUT/adapter (a Hugging Face PEFT folder), OUT/metrics.jsonl, OUT/loss.svg and OUT/checkpoints/. Ctrl-C saves a ' +
    'checkpoint; --resume continues it with identical losses. Method and optimizer options come from `peft methods` (--set key=value or a recipe); ' +
    '--set gives a key only the optimizer has (or optimizer.KEY=VALUE) to the optimizer.';

  static override examples = [
    '<%= config.bin %> train ./tiny-llama-nf4 --data train.jsonl --out runs/a --steps 200 --lr 2e-4',
    '<%= config.bin %> train ./base --data chat.jsonl --out runs/b --set r=16 --set target_modules=all-linear --set use_dora=true',
    '<%= config.bin %> train ./base --recipe lora.yaml --out runs/c --resume',
  ];

  static override args = { model: Args.string({ description: 'Hugging Face model folder (a 4-bit one trains as QLoRA)', required: true }) };

  static override flags = {
    backend: Flags.string({ description: 'kernel backend', options: ['auto', 'native', 'reference'], default: 'auto' }),
    batch: Flags.integer({ description: 'rows per micro-batch [default: 8]', min: 1 }),
    data: Flags.string({ char: 'd', description: 'training JSONL file' }),
    epochs: Flags.integer({ description: 'passes over the data (when --steps is not given)', min: 1 }),
    'eval-every': Flags.integer({ description: 'evaluate on the validation rows every N steps (and at the end)', min: 1 }),
    force: Flags.boolean({ description: 'start over in an --out folder that holds an earlier peft train run' }),
    'grad-accum': Flags.integer({ description: 'micro-batches per optimizer step [default: 1]', min: 1 }),
    lr: Flags.string({ description: 'peak learning rate [default: 2e-4]' }),
    'max-row-bytes': Flags.integer({ description: 'longest JSONL line in bytes; longer is refused [default: 8388608 (8 MiB)]', min: 1 }),
    'max-grad-norm': Flags.string({ description: 'clip the gradient norm to this, 0 = off [default: 1.0]' }),
    method: Flags.string({ char: 'm', description: 'adapter method from `peft methods` [default: lora]' }),
    optimizer: Flags.string({ description: 'optimizer from `peft methods` [default: adamw]' }),
    out: Flags.string({ char: 'o', description: 'output folder' }),
    packing: Flags.boolean({ description: 'pack rows into full --seq-len sequences', allowNo: true }),
    recipe: Flags.string({ description: 'YAML file with the same settings (flags win)' }),
    resume: Flags.boolean({ description: 'continue from the newest checkpoint in --out' }),
    'save-every': Flags.integer({ description: 'checkpoint every N steps', min: 1 }),
    schedule: Flags.string({ description: 'learning-rate schedule [default: linear]', options: ['constant', 'constant_with_warmup', 'linear', 'cosine'] }),
    seed: Flags.integer({ description: 'seed of data order, initialisation and dropout [default: 42]' }),
    'seq-len': Flags.integer({ description: 'longest row in tokens, at most max_position_embeddings [default: min(512, max_position_embeddings)]', min: 2 }),
    set: Flags.string({ description: 'method option key=value (repeatable)', multiple: true }),
    steps: Flags.integer({ description: 'optimizer steps', min: 1 }),
    'val-data': Flags.string({ description: 'validation JSONL file' }),
    'val-split': Flags.string({ description: 'fraction of the rows held out for validation, in [0, 0.5)' }),
    'warmup-ratio': Flags.string({ description: 'warmup as a fraction of all steps' }),
    'warmup-steps': Flags.integer({ description: 'warmup steps', min: 0 }),
  };

  public async run() {
    const { args, flags: f } = await this.parse(Train);
    const core = await import('@peft/core-tensor');
    const r: TrainRecipe = f.recipe ? await core.readTrainRecipe(f.recipe) : {};
    const pick = <T>(flag: T | undefined, key: TrainRecipeKey, fallback?: T): T | undefined => (flag ?? (r[key] as T | undefined) ?? fallback);
    const data = pick(f.data, 'data');
    const out = pick(f.out, 'out');
    if (!data) throw new core.PeftError('E_INPUT', 'missing --data (or `data:` in the recipe)');
    if (!out) throw new core.PeftError('E_INPUT', 'missing --out (or `out:` in the recipe)');
    const registry = await loadRegistry(this.config);
    const method = pick(f.method, 'method');
    const optimizer = pick(f.optimizer, 'optimizer');
    const set = routeSetPairs(core.parseSetPairs(f.set ?? []), registry.get('method', method ?? 'lora').options,
      registry.get('optimizer', optimizer ?? 'adamw').options);
    const methodOptions = { ...(r.options ?? {}), ...set.method };
    const live = !this.jsonEnabled() && process.stderr.isTTY ? progressPrinter(process.stderr) : undefined;
    const s = await core.runTrain({
      modelDir: args.model, dataFile: data, outDir: out, method, methodOptions,
      optimizer, optimizerOptions: { ...(r.optimizer_options ?? {}), ...set.optimizer },
      steps: pick(f.steps, 'steps'), epochs: pick(f.epochs, 'epochs'),
      lr: pick(await numberFlag('lr', f.lr), 'lr', 2e-4)!, batchSize: pick(f.batch, 'batch', 8)!,
      gradAccum: pick(f['grad-accum'], 'grad_accum'), seqLen: pick(f['seq-len'], 'seq_len'), packing: pick(f.packing, 'packing'),
      maxRowBytes: pick(f['max-row-bytes'], 'max_row_bytes'),
      seed: pick(f.seed, 'seed', 42)!, schedule: pick(f.schedule, 'schedule'),
      warmupSteps: pick(f['warmup-steps'], 'warmup_steps'), warmupRatio: pick(await numberFlag('warmup-ratio', f['warmup-ratio']), 'warmup_ratio'),
      maxGradNorm: pick(await numberFlag('max-grad-norm', f['max-grad-norm']), 'max_grad_norm'),
      valSplit: pick(await numberFlag('val-split', f['val-split']), 'val_split'), valFile: pick(f['val-data'], 'val_data'),
      evalEvery: pick(f['eval-every'], 'eval_every'), saveEvery: pick(f['save-every'], 'save_every'),
      resume: f.resume, force: f.force, inputs: f.recipe ? [f.recipe] : [], kernels: core.getTrainKernels(f.backend as 'auto' | 'native' | 'reference'),
      onEvent: live?.event, onStatus: live?.status,
    }, registry);
    live?.end();
    if (s.stoppedBy === 'interrupt') {
      this.logToStderr(`interrupted at step ${s.steps}; checkpoint ${s.lastCheckpoint}; continue with --resume`);
      process.exitCode = 130;
    }
    if (this.jsonEnabled()) return s;
    this.log(table([
      ['method', `${s.method} (${count(s.trainableParams)} trainable parameters in ${s.adaptedModules} modules)`],
      ['data', `${s.data.trainRows} train / ${s.data.valRows} val rows (${s.data.format})`],
      ['steps', `${s.steps} (${s.epochs.toFixed(2)} epochs)`],
      ['loss', `${s.finalLoss.toFixed(4)}${s.evalLoss === undefined ? '' : `  (eval ${s.evalLoss.toFixed(4)})`}`],
      ['speed', `${s.tokensPerSec.toFixed(0)} tokens/s, ${s.seconds.toFixed(1)} s`],
      ['peak memory', bytes(s.peakRssMiB * 1024 * 1024)],
      ['adapter', s.adapterDir ?? `not written (resume from ${s.lastCheckpoint})`],
    ]));
    return s;
  }
}
