/**
 * The pure-TS reference of the training-kernel contract (../train-kernels.ts): every kernel, generic over
 * Float32Array | Float64Array, computed in JS doubles and stored into the caller's arrays, so f64 arrays
 * give f64 results (gradient checks) and f32 arrays round once on store. It is the oracle for the native
 * kernels and the fallback when none are built. Written to be checked by reading, not to be fast.
 */
import type { TrainKernels } from '../train-kernels.js';
import { attentionBackward, attentionForward } from './attention.js';
import { gemm, gemmBf16, gemmInt8, gemmQuant4 } from './gemm.js';
import { crossEntropyRows } from './loss.js';
import { rmsnormBackward, rmsnormForward } from './norm.js';
import { adamwStep } from './optim.js';
import { dequantizeBlockwise8, quantizeBlockwise8 } from './quant8.js';
import { ropeBackward, ropeForward } from './rope.js';
import { rsvd } from './rsvd.js';
import { swigluBackward, swigluForward } from './swiglu.js';

export { trainChecks, TRAIN_KERNEL_NAMES, type TrainChecks } from './checks.js';

export const referenceTrainKernels: TrainKernels = {
  gemm, gemmQuant4, gemmInt8, gemmBf16,
  rmsnormForward, rmsnormBackward,
  swigluForward, swigluBackward,
  ropeForward, ropeBackward,
  attentionForward, attentionBackward,
  crossEntropyRows,
  adamwStep,
  quantizeBlockwise8, dequantizeBlockwise8,
  rsvd,
};
