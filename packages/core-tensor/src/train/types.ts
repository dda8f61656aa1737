/**
 * What the trainer takes and gives: the job (trainable tensors, optimizer, loss functions, the caller's
 * data pipeline, how to save the adapter), the run's options, progress events and the result.
 * Not here: the loop (trainer.ts), checkpoints (checkpoint.ts), metrics files (metrics.ts).
 */
import type { Optimizer } from '../optim/types.js';
import type { ScheduleName } from '../optim/schedule.js';
import type { Tensor } from '../tensor/tensor.js';

/** One batch as data/ produces it ([B, T] row-major, HF labels: -100 ignored, the model shifts). */
export type { Batch } from '../data/example.js';
import type { Batch } from '../data/example.js';

export interface LossContext {
  /** 1-based optimizer step. */
  step: number;
  /** 0-based micro-batch within the step. */
  micro: number;
  /** Seed for every dropout mask of this micro-batch: a function of (seed, step, micro), so runs repeat. */
  dropoutSeed: number;
}

/** The command named in a run folder's marker and lock (io/output-marker.ts, io/output-lock.ts). */
export const TRAIN_COMMAND = 'train';

export type CheckpointReason = 'periodic' | 'interrupt' | 'nonfinite' | 'final';

export type TrainEvent =
  | { type: 'start'; step: number; totalSteps: number; stepsPerEpoch: number; resumedFrom?: string }
  | {
    type: 'step'; step: number; totalSteps: number; epoch: number; loss: number; lr: number; gradNorm: number;
    /** trained tokens of this step */
    tokens: number;
    /** trained tokens per second since this run started (or resumed) */
    tokensPerSec: number;
    etaSeconds: number;
    /** seconds since the run started, including the time before a resume */
    elapsed: number;
  }
  | { type: 'eval'; step: number; evalLoss: number; evalPpl: number; tokens: number }
  | { type: 'checkpoint'; step: number; dir: string; reason: CheckpointReason }
  | { type: 'warning'; message: string };

export interface TrainJob {
  /** The trainable tensors by name (AttachedAdapter.parameters()); f32, requiresGrad. */
  params: [string, Tensor][];
  /** Created by the caller (createOptimizer from the registry) over exactly `params`. */
  optimizer: Optimizer;
  /**
   * Records the graph of one micro-batch and returns the scalar mean loss over its trained tokens.
   * Called inside a scope: every tensor it makes but the loss is disposed after backward.
   */
  lossFn(batch: Batch, ctx: LossContext): Tensor;
  /** Summed loss and scored tokens of a validation batch; called under noGrad. Needed with valBatches. */
  evalLossFn?(batch: Batch): { lossSum: number; tokens: number };
  /** The training batches of an epoch, in order: deterministic for a given epoch (shuffled with the seed). */
  trainBatches(epoch: number): Batch[];
  valBatches?(): Batch[];
  /** Writes the adapter (a PEFT folder) into `dir`, an existing empty folder. */
  save(dir: string): Promise<void>;
  onEvent?(e: TrainEvent): void;
}

export interface TrainOptions {
  /** Receives metrics.jsonl, loss.svg, checkpoints/ and, when done, adapter/. */
  outDir: string;
  /** Optimizer steps to run (wins over epochs when both are given, as HF max_steps). */
  steps?: number;
  /** Full passes over trainBatches; steps = epochs * ceil(batches / gradAccum). */
  epochs?: number;
  /** Peak learning rate. */
  lr: number;
  /** Default 'linear' (the HF Trainer's). */
  schedule?: ScheduleName;
  /** Warmup steps; or a fraction of all steps (warmupRatio), as HF TrainingArguments. */
  warmupSteps?: number;
  warmupRatio?: number;
  /** Micro-batches per optimizer step (default 1). */
  gradAccum?: number;
  /** Clip the total grad norm to this (default 1.0, 0 = off). */
  maxGradNorm?: number;
  /** Evaluate on valBatches every N steps (and at the end). */
  evalEvery?: number;
  /** Checkpoint every N steps. */
  saveEvery?: number;
  /** Checkpoints kept (default 2: the newest). */
  keepCheckpoints?: number;
  seed: number;
  /** Continue from the newest checkpoint in outDir/checkpoints. */
  resume?: boolean;
  /** Start over in an outDir that holds a previous run (its metrics, checkpoints and adapter are removed). */
  force?: boolean;
  /** Emit a step event every N steps (default 1); metrics.jsonl gets every step. */
  logEvery?: number;
  /** First Ctrl-C finishes the step, checkpoints and returns; a second one kills (default true). */
  handleSigint?: boolean;
  /** Aborting it stops the run like Ctrl-C. */
  signal?: AbortSignal;
  /** The caller's settings that must also match on resume (model, method options, data, ...). */
  fingerprint?: Record<string, string | number | boolean>;
}

export interface TrainResult {
  /** Optimizer steps done in all (including those before a resume). */
  steps: number;
  /** Epochs done, fractional (HF's `epoch`). */
  epochs: number;
  /** The last step's loss. */
  finalLoss: number;
  /** The last evaluation's loss. */
  evalLoss?: number;
  /** Wall time, trained tokens and throughput of this call (a resumed run counts from the resume). */
  seconds: number;
  tokens: number;
  tokensPerSec: number;
  stoppedBy: 'done' | 'interrupt';
  lastCheckpoint?: string;
  /** outDir/adapter: the trained adapter, written when the run is done. */
  adapterDir?: string;
}
