/** Optimizers (AdamW, SGD and the shared per-parameter state), learning-rate schedules, gradient clipping. */
export { adamwRule, createAdamW, ADAMW_DEFAULTS, type AdamWOptions } from './adamw.js';
export { createSgd, sgdRule, type SgdOptions } from './sgd.js';
export { createParamOptimizer, type Hyper, type UpdateRule } from './param-state.js';
export { adamwOptimizer, sgdOptimizer, CORE_OPTIMIZERS } from './defs.js';
export {
  isScheduleName, lrAt, lrFactor, resolveWarmupSteps, SCHEDULES, type ScheduleName, type ScheduleOptions,
} from './schedule.js';
export { clipGradNorm, gradNorm } from './clip.js';
