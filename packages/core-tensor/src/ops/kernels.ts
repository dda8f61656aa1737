/**
 * Which TrainKernels a fused op runs on: the per-call override (tests pin reference or native),
 * else the process-wide choice (native when built, PEFT_BACKEND otherwise). f64 tensors always run
 * on the reference kernels, the only ones generic over Float64Array.
 */
import { getTrainKernels } from '../backend/native-train.js';
import { referenceTrainKernels } from '../backend/reference-train/index.js';
import type { TrainKernels } from '../backend/train-kernels.js';
import type { FloatDtype } from '../tensor/types.js';

export interface KernelOptions {
  /** Kernels for this call (f32 only; f64 always uses the reference). */
  kernels?: TrainKernels;
  /** Seed of this step's dropout masks (the trainer sets one per step); modules mix in their own index. */
  dropoutSeed?: number;
}

export function kernelsFor(dtype: FloatDtype, override?: TrainKernels): TrainKernels {
  if (dtype === 'f64') return referenceTrainKernels;
  return override ?? getTrainKernels();
}
