/**
 * The core optimizers as registry entries (`peft train --optimizer adamw|sgd --set key=value`): option
 * schemas whose names and defaults follow torch / the HF Trainer, and `create`, one update rule per
 * parameter group, AdamW on the run's kernels. The learning rate is not an option here: the trainer's
 * schedule passes it to every step (times a group's lrScale). Not here: the rules (optim/).
 */
import { ADAMW_DEFAULTS, adamwRule } from '../optim/adamw.js';
import { createParamOptimizer, type UpdateRule } from '../optim/param-state.js';
import { sgdRule } from '../optim/sgd.js';
import type { ResolvedOptions } from './options.js';
import type { OptimizerContext, OptimizerDef } from './optimizer.js';

const num = (v: unknown): number => v as number;

/** One optimizer named `name` with `rule(group options)` for each of the context's groups. */
function perGroup(name: string, ctx: OptimizerContext, rule: (o: ResolvedOptions) => UpdateRule) {
  return createParamOptimizer(name, ctx.groups.map((g) => ({ name: g.name, params: g.params, lrScale: g.lrScale, rule: rule(g.options) })));
}

export const adamwOptimizer: OptimizerDef = {
  name: 'adamw',
  description: 'AdamW, decoupled weight decay (torch.optim.AdamW; the HF Trainer default)',
  options: {
    beta1: { type: 'number', min: 0, max: 1, default: ADAMW_DEFAULTS.beta1, description: 'Decay of the first-moment average, < 1' },
    beta2: { type: 'number', min: 0, max: 1, default: ADAMW_DEFAULTS.beta2, description: 'Decay of the second-moment average, < 1' },
    eps: { type: 'number', min: 0, default: ADAMW_DEFAULTS.eps, description: 'Added to the denominator for stability' },
    weight_decay: { type: 'number', min: 0, default: ADAMW_DEFAULTS.weightDecay, description: 'Decoupled weight decay (lr * wd per step)' },
  },
  create: (_params, _options, ctx) => perGroup('adamw', ctx, (o) => adamwRule({
    beta1: num(o.beta1), beta2: num(o.beta2), eps: num(o.eps), weightDecay: num(o.weight_decay), kernels: ctx.kernels,
  })),
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
  create: (_params, _options, ctx) => perGroup('sgd', ctx, (o) => sgdRule({
    momentum: num(o.momentum), dampening: num(o.dampening), nesterov: o.nesterov as boolean, weightDecay: num(o.weight_decay),
  })),
};

export const CORE_OPTIMIZERS: readonly OptimizerDef[] = [adamwOptimizer, sgdOptimizer];
