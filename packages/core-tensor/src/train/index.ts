/**
 * The trainer (`peft train`'s loop): train(job, options) with accumulation, schedules, clipping,
 * checkpoints and bit-exact resume, metrics.jsonl and loss.svg, graceful Ctrl-C. Batches are data/'s `Batch`.
 */
export { train, ADAPTER_DIR } from './trainer.js';
export type {
  CheckpointReason, LossContext, TrainEvent, TrainJob, TrainOptions, TrainResult,
} from './types.js';
export { dropoutSeed, planRun, totalStepsOf, type RunPlan, type Settings } from './plan.js';
export {
  CHECKPOINTS_DIR, OPTIMIZER_FILE, PARAMS_FILE, STATE_FILE, listCheckpoints, type TrainerState,
} from './checkpoint.js';
export { METRICS_FILE, type EvalRecord, type StepRecord } from './metrics.js';
export { LOSS_SVG, lossCurveSvg } from './svg.js';
export { accumulate, evaluate, zeroGrads } from './step.js';
