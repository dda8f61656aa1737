/**
 * Learning-rate schedules with Hugging Face `get_scheduler` semantics (huggingface/transformers
 * src/transformers/optimization.py: _get_constant_lambda, _get_constant_schedule_with_warmup_lr_lambda,
 * _get_linear_schedule_with_warmup_lr_lambda, _get_cosine_schedule_with_warmup_lr_lambda with
 * num_cycles 0.5). Pure functions of the step. `step` counts the optimizer steps already taken (0 for the
 * first update), as torch's LambdaLR does when the Trainer calls scheduler.step() after optimizer.step():
 * with warmup, the first update runs at lr 0.
 */
import { PeftError } from '../errors.js';

export const SCHEDULES = ['constant', 'constant_with_warmup', 'linear', 'cosine'] as const;
export type ScheduleName = (typeof SCHEDULES)[number];

export interface ScheduleOptions {
  /** The peak (base) learning rate. */
  lr: number;
  schedule: ScheduleName;
  /** num_training_steps: the run's optimizer steps. */
  totalSteps: number;
  /** num_warmup_steps (ignored by 'constant', as in transformers). */
  warmupSteps: number;
}

/** The multiplier of the base lr at `step` (the lambda of LambdaLR). */
export function lrFactor(step: number, o: Omit<ScheduleOptions, 'lr'>): number {
  const { totalSteps: n, warmupSteps: w } = o;
  if (o.schedule === 'constant') return 1;
  if (step < w) return step / Math.max(1, w);
  switch (o.schedule) {
    case 'constant_with_warmup':
      return 1;
    case 'linear':
      return Math.max(0, (n - step) / Math.max(1, n - w));
    case 'cosine': {
      const progress = (step - w) / Math.max(1, n - w);
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 0.5 * 2 * progress)));
    }
    default:
      throw new PeftError('E_INPUT', `unknown schedule "${String(o.schedule)}" (available: ${SCHEDULES.join(', ')})`);
  }
}

/** The learning rate of the update that follows `step` completed steps. */
export function lrAt(step: number, o: ScheduleOptions): number {
  return o.lr * lrFactor(step, o);
}

/**
 * Warmup steps from either setting, as TrainingArguments.get_warmup_steps: an explicit count wins,
 * else ceil(totalSteps * ratio).
 */
export function resolveWarmupSteps(totalSteps: number, o: { warmupSteps?: number; warmupRatio?: number }): number {
  if (o.warmupSteps !== undefined && o.warmupSteps > 0) return o.warmupSteps;
  return Math.ceil(totalSteps * (o.warmupRatio ?? 0));
}

export function isScheduleName(s: unknown): s is ScheduleName {
  return typeof s === 'string' && (SCHEDULES as readonly string[]).includes(s);
}
