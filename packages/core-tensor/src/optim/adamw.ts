/**
 * torch.optim.AdamW through the training kernel `adamwStep` (backend/train-kernels.ts): the native kernel
 * reproduces torch 1.13's f32 update bit for bit; the TS reference computes the same formula in f64 per
 * element; which one runs is the caller's choice (the registry entry passes the run's kernels). Defaults
 * are the HF Trainer's (betas 0.9 / 0.999, eps 1e-8, weight_decay 0.0, transformers TrainingArguments).
 * State: exp_avg, exp_avg_sq per parameter, shaped like it, as torch names them.
 */
import { getTrainKernels } from '../backend/native-train.js';
import type { TrainKernels } from '../backend/train-kernels.js';
import { PeftError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { createParamOptimizer, type UpdateRule } from './param-state.js';
import type { Optimizer } from './types.js';

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Default: getTrainKernels() (native when built). */
  kernels?: TrainKernels;
}

export const ADAMW_DEFAULTS = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 } as const;

function check(o: Required<Omit<AdamWOptions, 'kernels'>>): void {
  const bad = (msg: string) => new PeftError('E_INPUT', `adamw: ${msg}`);
  // the ranges torch.optim.AdamW accepts
  if (!(o.beta1 >= 0 && o.beta1 < 1)) throw bad(`beta1 must be in [0, 1), got ${o.beta1}`);
  if (!(o.beta2 >= 0 && o.beta2 < 1)) throw bad(`beta2 must be in [0, 1), got ${o.beta2}`);
  if (!(o.eps >= 0)) throw bad(`eps must be >= 0, got ${o.eps}`);
  if (!(o.weightDecay >= 0)) throw bad(`weight_decay must be >= 0, got ${o.weightDecay}`);
}

export function adamwRule(options: AdamWOptions = {}): UpdateRule {
  const D = ADAMW_DEFAULTS;
  const o = { beta1: options.beta1 ?? D.beta1, beta2: options.beta2 ?? D.beta2, eps: options.eps ?? D.eps,
    weightDecay: options.weightDecay ?? D.weightDecay };
  check(o);
  const k = options.kernels ?? getTrainKernels();
  return {
    name: 'adamw',
    slotShapes: (shape) => [{ name: 'exp_avg', dtype: 'F32', shape }, { name: 'exp_avg_sq', dtype: 'F32', shape }],
    hyper: { beta1: o.beta1, beta2: o.beta2, eps: o.eps, weight_decay: o.weightDecay },
    update: (p, g, [m, v], lr, step) =>
      k.adamwStep(p, g, m as Float32Array, v as Float32Array, p.length, lr, o.beta1, o.beta2, o.eps, o.weightDecay, step),
  };
}

/** One group of `params` (trainable f32 tensors by name); for groups, createParamOptimizer with adamwRule per group. */
export function createAdamW(params: readonly [string, Tensor][], options?: AdamWOptions): Optimizer {
  return createParamOptimizer('adamw', [{ name: 'default', params, rule: adamwRule(options) }]);
}
