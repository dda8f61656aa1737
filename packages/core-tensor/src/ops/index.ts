/** The differentiable ops, by family. */
export type { ElementwiseOp, FusedOp, FusedTsOp, IndexOp, MovementOp, OpKind, PrimitiveOp, ReduceOp } from './kinds.js';
export { add, addScalar, div, exp, log, mul, mulScalar, neg, rsqrt, sigmoid, silu, sqrt, sub } from './elementwise.js';
export { logSoftmax, max, mean, softmax, sum } from './reduce.js';
export { concat, reshape, slice, transpose } from './movement.js';
export { dropout, embedding, type DropoutOptions } from './embedding.js';
export { linear } from './linear.js';
export { layernorm, rmsnorm } from './norm.js';
export { rope } from './rope.js';
export { attention, type AttentionOptions } from './attention.js';
export { swiglu } from './swiglu.js';
export { crossEntropy, type CrossEntropyOptions } from './cross-entropy.js';
export { kernelsFor, type KernelOptions } from './kernels.js';
export { broadcastShape, expandTo, sumTo } from './loops.js';
