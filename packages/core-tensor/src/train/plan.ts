/**
 * The run's plan from TrainOptions and the first epoch's batches: validated options with defaults,
 * steps (from steps, or epochs * ceil(batches / gradAccum)), warmup, the schedule, the per-micro-batch
 * dropout seed, and the settings that must match when a run is resumed. Bad options are E_INPUT (exit 2)
 * before anything is written. Not here: the loop (trainer.ts).
 */
import { PeftError } from '../errors.js';
import { isScheduleName, resolveWarmupSteps, SCHEDULES, type ScheduleOptions } from '../optim/schedule.js';
import type { Batch, TrainJob, TrainOptions } from './types.js';

export type Settings = Record<string, string | number | boolean>;

export interface RunPlan {
  totalSteps: number;
  stepsPerEpoch: number;
  gradAccum: number;
  maxGradNorm: number;
  seed: number;
  schedule: ScheduleOptions;
  evalEvery?: number;
  saveEvery?: number;
  keepCheckpoints: number;
  logEvery: number;
  /** What a resumed run must repeat exactly (option name -> value), the caller's fingerprint included. */
  settings: Settings;
}

const bad = (msg: string) => new PeftError('E_INPUT', `train: ${msg}`);

function positiveInt(name: string, v: number | undefined): number | undefined {
  if (v !== undefined && !(Number.isSafeInteger(v) && v >= 1)) throw bad(`${name} must be an integer >= 1, got ${v}`);
  return v;
}

function checkNumbers(o: TrainOptions): void {
  if (!(Number.isFinite(o.lr) && o.lr >= 0)) throw bad(`lr must be a finite number >= 0, got ${o.lr}`);
  if (!Number.isSafeInteger(o.seed)) throw bad(`seed must be an integer, got ${o.seed}`);
  if (o.maxGradNorm !== undefined && !(o.maxGradNorm >= 0 && Number.isFinite(o.maxGradNorm))) {
    throw bad(`maxGradNorm must be >= 0 (0 = off), got ${o.maxGradNorm}`);
  }
  if (o.warmupSteps !== undefined && !(Number.isSafeInteger(o.warmupSteps) && o.warmupSteps >= 0)) {
    throw bad(`warmupSteps must be an integer >= 0, got ${o.warmupSteps}`);
  }
  if (o.warmupRatio !== undefined && !(o.warmupRatio >= 0 && o.warmupRatio <= 1)) {
    throw bad(`warmupRatio must be in [0, 1], got ${o.warmupRatio}`);
  }
  if (o.schedule !== undefined && !isScheduleName(o.schedule)) {
    throw bad(`unknown schedule "${String(o.schedule)}" (available: ${SCHEDULES.join(', ')})`);
  }
  for (const k of ['steps', 'epochs', 'gradAccum', 'evalEvery', 'saveEvery', 'keepCheckpoints', 'logEvery'] as const) {
    positiveInt(k, o[k]);
  }
}

function checkJob(job: TrainJob, firstEpoch: readonly Batch[]): void {
  if (firstEpoch.length === 0) throw bad('the training data gives no batches');
  if (job.params.length === 0) throw bad('nothing to train: the job has no parameters');
  if (job.valBatches && !job.evalLossFn) throw bad('valBatches is given without evalLossFn');
}

/** The run's optimizer steps: `steps`, else epochs * ceil(batches per epoch / gradAccum) (HF max_steps wins). */
export function totalStepsOf(o: Pick<TrainOptions, 'steps' | 'epochs' | 'gradAccum'>, batchesPerEpoch: number): number {
  return o.steps ?? (o.epochs ?? 0) * Math.ceil(batchesPerEpoch / (o.gradAccum ?? 1));
}

/** Validates `o` and plans the run; `firstEpoch` = job.trainBatches(0). */
export function planRun(job: TrainJob, o: TrainOptions, firstEpoch: readonly Batch[]): RunPlan {
  checkNumbers(o);
  checkJob(job, firstEpoch);
  const gradAccum = o.gradAccum ?? 1;
  const stepsPerEpoch = Math.ceil(firstEpoch.length / gradAccum);
  if (o.steps === undefined && o.epochs === undefined) throw bad('give steps or epochs');
  const totalSteps = totalStepsOf(o, firstEpoch.length);
  const schedule: ScheduleOptions = {
    lr: o.lr, schedule: o.schedule ?? 'linear', totalSteps, warmupSteps: resolveWarmupSteps(totalSteps, o),
  };
  const maxGradNorm = o.maxGradNorm ?? 1;
  const settings: Settings = {
    ...o.fingerprint,
    seed: o.seed, lr: o.lr, schedule: schedule.schedule, warmupSteps: schedule.warmupSteps, steps: totalSteps,
    gradAccum, maxGradNorm, batchSize: firstEpoch[0].B, batchesPerEpoch: firstEpoch.length,
  };
  return {
    totalSteps, stepsPerEpoch, gradAccum, maxGradNorm, seed: o.seed, schedule, settings,
    evalEvery: o.evalEvery, saveEvery: o.saveEvery, keepCheckpoints: o.keepCheckpoints ?? 2, logEvery: o.logEvery ?? 1,
  };
}

/** murmur3's 32-bit finalizer: a bijection that spreads every input bit over the output. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The dropout seed of one micro-batch: depends only on (seed, step, micro), so a resumed run repeats it. */
export function dropoutSeed(seed: number, step: number, micro: number): number {
  return fmix32(fmix32(fmix32(seed ^ 0x9e3779b9) ^ step) ^ micro);
}

/** The first difference between a checkpoint's settings and this run's, as [name, saved, now]. */
export function settingsMismatch(saved: Settings, now: Settings): [string, unknown, unknown] | undefined {
  for (const key of new Set([...Object.keys(now), ...Object.keys(saved)])) {
    if (saved[key] !== now[key]) return [key, saved[key], now[key]];
  }
  return undefined;
}
