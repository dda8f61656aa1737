/**
 * The core optimizers as registry entries (`peft train --optimizer adamw|sgd --set key=value`): option
 * schemas whose names and defaults follow torch / the HF Trainer, and `create` from resolved options.
 * The learning rate is not an option here: the trainer's schedule passes it to every step.
 */
import type { OptimizerDef } from '../plugin/optimizer.js';
import { ADAMW_DEFAULTS, createAdamW } from './adamw.js';
import { createSgd } from './sgd.js';

const num = (v: unknown): number => v as number;

export const adamwOptimizer: OptimizerDef = {
  name: 'adamw',
  description: 'AdamW, decoupled weight decay (torch.optim.AdamW; the HF Trainer default)',
  options: {
    beta1: { type: 'number', min: 0, max: 1, default: ADAMW_DEFAULTS.beta1, description: 'Decay of the first-moment average, < 1' },
    beta2: { type: 'number', min: 0, max: 1, default: ADAMW_DEFAULTS.beta2, description: 'Decay of the second-moment average, < 1' },
    eps: { type: 'number', min: 0, default: ADAMW_DEFAULTS.eps, description: 'Added to the denominator for stability' },
    weight_decay: { type: 'number', min: 0, default: ADAMW_DEFAULTS.weightDecay, description: 'Decoupled weight decay (lr * wd per step)' },
  },
  create: (params, o) => createAdamW(params, {
    beta1: num(o.beta1), beta2: num(o.beta2), eps: num(o.eps), weightDecay: num(o.weight_decay),
  }),
};

export const sgdOptimizer: OptimizerDef = {
  name: 'sgd',
  description: 'Stochastic gradient descent with optional (Nesterov) momentum (torch.optim.SGD)',
  options: {
    momentum: { type: 'number', min: 0, default: 0, description: 'Momentum factor (0 = plain SGD)' },
    dampening: { type: 'number', default: 0, description: 'Dampening of the momentum update' },
    nesterov: { type: 'boolean', default: false, description: 'Nesterov momentum (needs momentum > 0, dampening 0)' },
    weight_decay: { type: 'number', min: 0, default: 0, description: 'L2 penalty added to the gradient' },
  },
  create: (params, o) => createSgd(params, {
    momentum: num(o.momentum), dampening: num(o.dampening), nesterov: o.nesterov as boolean, weightDecay: num(o.weight_decay),
  }),
};

export const CORE_OPTIMIZERS: readonly OptimizerDef[] = [adamwOptimizer, sgdOptimizer];
