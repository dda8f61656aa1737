/**
 * `peft train` as a library call: resolve the method and optimizer from the registry, check every
 * option and the data before any model is loaded (bad input fails fast, nothing written), load the
 * base (4-bit weights stay packed), let the method attach itself, and run the trainer.
 * Not here: the loop (train/), batching (data/), what a method does (plugins), printing (the CLI).
 */
import { noGrad } from '../ops/tape.js';
import { getTrainKernels } from '../backend/native-train.js';
import type { TrainKernels } from '../backend/train-kernels.js';
import { batchesFor, loadDataset, padIdFor, type Batch, type DatasetStats, type FileFingerprint } from '../data/index.js';
import { inputError, PeftError } from '../errors.js';
import { guardOutput } from '../io/output-guard.js';
import { Llama } from '../models/llama.js';
import type { MethodDef } from '../plugin/method.js';
import { createOptimizer } from '../plugin/optimizer.js';
import { resolveOptions } from '../plugin/options.js';
import type { Registry } from '../plugin/registry.js';
import { isScheduleName, type ScheduleName } from '../optim/schedule.js';
import { totalStepsOf } from '../train/plan.js';
import { train } from '../train/trainer.js';
import { TRAIN_COMMAND, type TrainEvent, type TrainResult } from '../train/types.js';
import { Tokenizer } from '../tokenizer/tokenizer.js';
import { maxPositionsOf, resolveSeqLen } from './positions.js';

export interface TrainRunOptions {
  modelDir: string;
  dataFile: string;
  outDir: string;
  /** Registry method name (default "lora") and its options (from --set / a recipe; checked against its schema). */
  method?: string;
  methodOptions?: Record<string, unknown>;
  /** Registry optimizer name (default "adamw") and its options. */
  optimizer?: string;
  optimizerOptions?: Record<string, unknown>;
  steps?: number;
  epochs?: number;
  lr: number;
  batchSize: number;
  gradAccum?: number;
  /** Longest row (default min(512, max_position_embeddings); above it is E_INPUT, positions.ts). */
  seqLen?: number;
  /** Longest JSONL line in bytes (default MAX_ROW_BYTES, 8 MiB). */
  maxRowBytes?: number;
  packing?: boolean;
  seed: number;
  schedule?: string;
  warmupSteps?: number;
  warmupRatio?: number;
  maxGradNorm?: number;
  valSplit?: number;
  valFile?: string;
  evalEvery?: number;
  saveEvery?: number;
  resume?: boolean;
  force?: boolean;
  /** Files the caller read for these settings (a recipe): --out may not hold them either. */
  inputs?: string[];
  kernels?: TrainKernels;
  signal?: AbortSignal;
  onEvent?: (e: TrainEvent) => void;
  /** Phases before the first step ("loading model", "attaching lora", ...). */
  onStatus?: (what: string) => void;
}

export interface TrainRunSummary extends TrainResult {
  method: string;
  trainableParams: number;
  adaptedModules: number;
  data: DatasetStats & { format: string };
  /** Peak resident memory of this process so far (MiB). */
  peakRssMiB: number;
}

function checkNumbers(o: TrainRunOptions): ScheduleName | undefined {
  const positiveInt = (v: number | undefined, name: string) => {
    if (v !== undefined && !(Number.isSafeInteger(v) && v > 0)) throw new PeftError('E_INPUT', `${name} must be a positive integer, got ${v}`);
  };
  positiveInt(o.steps, 'steps');
  positiveInt(o.epochs, 'epochs');
  positiveInt(o.batchSize, 'batch');
  positiveInt(o.gradAccum, 'grad-accum');
  positiveInt(o.seqLen, 'seq-len');
  positiveInt(o.evalEvery, 'eval-every');
  positiveInt(o.saveEvery, 'save-every');
  if (o.steps === undefined && o.epochs === undefined) throw new PeftError('E_INPUT', 'give --steps N or --epochs N');
  if (!(o.lr > 0 && Number.isFinite(o.lr))) throw new PeftError('E_INPUT', `lr must be a positive number, got ${o.lr}`);
  if (o.valSplit !== undefined && !(o.valSplit >= 0 && o.valSplit < 0.5)) throw new PeftError('E_INPUT', `val-split must be in [0, 0.5), got ${o.valSplit}`);
  if (o.schedule !== undefined && !isScheduleName(o.schedule)) {
    throw new PeftError('E_INPUT', `unknown schedule "${o.schedule}" (valid: constant, constant_with_warmup, linear, cosine)`);
  }
  return o.schedule as ScheduleName | undefined;
}

/**
 * A data file's bytes as a resume setting: a checkpoint trained on other bytes is refused by it, the
 * message naming the file (train/plan.ts settingsMismatch).
 */
function contentOf(file: string, f: FileFingerprint): string {
  return `${file}: ${f.bytes} bytes, sha256 ${f.sha256}`;
}

const tokensOf = (examples: readonly { ids: Int32Array }[]): number => examples.reduce((n, ex) => n + ex.ids.length, 0);

/** Mean loss of one batch (the method's modules read dropoutSeed). */
function lossOf(model: Llama, b: Batch, kernels: TrainKernels | undefined, dropoutSeed?: number) {
  const shape = [b.B, b.T] as const;
  return model.loss({ data: b.inputIds, shape }, { data: b.labels, shape }, { kernels, dropoutSeed });
}

/** Guards --out against the inputs and holds its lock (io/output-guard.ts) from before the data is read. */
export async function runTrain(o: TrainRunOptions, registry: Registry): Promise<TrainRunSummary> {
  const inputs = [o.modelDir, o.dataFile, o.valFile, ...(o.inputs ?? [])];
  const output = await guardOutput({ command: TRAIN_COMMAND, out: o.outDir, inputs });
  try {
    return await trainRun(o, registry);
  } finally {
    await output.close();
  }
}

async function trainRun(o: TrainRunOptions, registry: Registry): Promise<TrainRunSummary> {
  const schedule = checkNumbers(o);
  const method: MethodDef = registry.get('method', o.method ?? 'lora');
  const methodOptions = resolveOptions(method.name, method.options, o.methodOptions ?? {});
  const optimizerDef = registry.get('optimizer', o.optimizer ?? 'adamw');
  const optimizerOptions = resolveOptions(optimizerDef.name, optimizerDef.options, o.optimizerOptions ?? {});

  const seqLen = resolveSeqLen(o.seqLen, 512, await maxPositionsOf(o.modelDir), o.modelDir);
  o.onStatus?.('reading data');
  const tokenizer = await Tokenizer.fromFolder(o.modelDir);
  const data = await loadDataset(o.dataFile, tokenizer, {
    seqLen, valSplit: o.valSplit, valFile: o.valFile, seed: o.seed, packing: o.packing, maxRowBytes: o.maxRowBytes,
  });
  const padId = padIdFor(tokenizer);
  const batching = { batchSize: o.batchSize, seqLen, seed: o.seed, packing: o.packing, padId };
  const valBatches = data.val.length ? batchesFor(data.val, { ...batching, epoch: 0, shuffle: false }) : [];

  o.onStatus?.('loading model');
  const model = await Llama.fromFolder(o.modelDir, { quantizers: registry }); // a plugin quantizer's base loads too
  try {
    if (tokenizer.vocabSize > model.config.vocabSize) {
      throw inputError('E_FORMAT', `the tokenizer has ${tokenizer.vocabSize} ids, the model's vocab_size is ${model.config.vocabSize}`, o.modelDir);
    }
    o.onStatus?.(`attaching ${method.name}`);
    const adapter = await method.attach(model, methodOptions, {
      baseModelDir: o.modelDir, seed: o.seed, lr: o.lr, kernels: o.kernels, outDir: o.outDir,
      dataTokens: tokensOf(data.train) + tokensOf(data.val),
      onProgress: (what, done, total) => o.onStatus?.(`${what} ${done}/${total}`),
    });
    const virtual = model.virtualTokens();
    if (seqLen + virtual > model.config.maxPositionEmbeddings) {
      throw inputError('E_INPUT', `seq-len ${seqLen} + ${virtual} virtual tokens of ${method.name} exceed max_position_embeddings ` +
        `${model.config.maxPositionEmbeddings}`, o.modelDir);
    }
    const params = adapter.parameters();
    const k = o.kernels ?? getTrainKernels();
    // Token weights of accumulation and eval sums are what the model's loss scores (virtual tokens also score labels[0]).
    const scored = (bs: Batch[]): Batch[] => bs.map((b) => ({ ...b, trainedTokens: model.scoredLabels({ data: b.labels, shape: [b.B, b.T] }) }));
    const firstEpoch = scored(batchesFor(data.train, { ...batching, epoch: 0 }));
    const valScored = scored(valBatches);
    const optimizer = createOptimizer(optimizerDef, params, optimizerOptions, {
      kernels: k, seed: o.seed, totalSteps: totalStepsOf(o, firstEpoch.length), groups: adapter.paramGroups?.(),
    });
    try {
      const result = await train({
        params, optimizer,
        lossFn: (b, ctx) => lossOf(model, b, k, ctx.dropoutSeed),
        evalLossFn: (b) => noGrad(() => {
          const l = lossOf(model, b, k);
          const v = l.item();
          l.dispose();
          return { lossSum: v * b.trainedTokens, tokens: b.trainedTokens };
        }),
        trainBatches: (epoch) => (epoch === 0 ? firstEpoch : scored(batchesFor(data.train, { ...batching, epoch }))),
        valBatches: valScored.length ? () => valScored : undefined,
        save: (dir) => adapter.save(dir),
        onEvent: o.onEvent,
      }, {
        outDir: o.outDir, steps: o.steps, epochs: o.epochs, lr: o.lr, schedule, warmupSteps: o.warmupSteps,
        warmupRatio: o.warmupRatio, gradAccum: o.gradAccum, maxGradNorm: o.maxGradNorm, evalEvery: o.evalEvery,
        saveEvery: o.saveEvery, seed: o.seed, resume: o.resume, force: o.force, signal: o.signal,
        fingerprint: {
          model: o.modelDir, data: o.dataFile, data_content: contentOf(o.dataFile, data.fingerprint),
          ...(o.valFile !== undefined && data.valFingerprint ? { val_data_content: contentOf(o.valFile, data.valFingerprint) } : {}),
          val_split: o.valSplit ?? 0, method: method.name, options: JSON.stringify(methodOptions),
          optimizer: optimizerDef.name, optimizer_options: JSON.stringify(optimizerOptions), seq_len: seqLen, packing: !!o.packing,
        },
      });
      const summary = adapter.summary();
      return {
        ...result, method: method.name, trainableParams: summary.trainableParams, adaptedModules: summary.modules.length,
        data: { ...data.stats, format: data.format },
        peakRssMiB: process.resourceUsage().maxRSS / 1024,
      };
    } finally {
      optimizer.dispose();
    }
  } finally {
    model.dispose();
  }
}
