/** Optimizers (the run-time interface, AdamW, SGD and the shared per-parameter state), learning-rate schedules, gradient clipping. */
export { adamwRule, createAdamW, ADAMW_DEFAULTS, type AdamWOptions } from './adamw.js';
export { createSgd, sgdRule, type SgdOptions } from './sgd.js';
export { createParamOptimizer, type Hyper, type RuleGroup, type SlotSpec, type UpdateRule } from './param-state.js';
export {
  stateSpecMismatch, type Optimizer, type OptimizerState, type StateArray, type StateDtype, type StateSpec, type StateTensor,
} from './types.js';
export {
  isScheduleName, lrAt, lrFactor, resolveWarmupSteps, SCHEDULES, type ScheduleName, type ScheduleOptions,
} from './schedule.js';
export { clipGradNorm, gradNorm } from './clip.js';
export { fma32 } from './f32.js';
