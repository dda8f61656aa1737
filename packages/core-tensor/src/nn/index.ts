/**
 * The training engine's public surface, re-exported from the package root: nn layers (the top of
 * these layers, so re-exporting what lies below keeps imports flowing downward), tensors and
 * scopes, autograd, and the differentiable ops as the `ops` namespace (also Tensor methods).
 */
export { Embedding } from './embedding.js';
export { isLinear, Linear, type LinearInit } from './linear.js';
export { Module, ModuleList, type ParameterFilter } from './module.js';
export { RMSNorm } from './rmsnorm.js';
export { forEachRowBlock, replaceWeight, rowNorms, weightF32 } from './frozen-weight.js';
export {
  describeTargets, matchesTarget, parseTargets, peftTargetRules, selectTargets, targetsForConfig, type TargetRules, type TargetSpec,
} from './targets.js';

export * as ops from '../ops/index.js';
export { backward, gradcheck, gradients, type GradcheckOptions, type GradcheckResult } from '../autograd/index.js';
export { isGradEnabled, needsGrad, noGrad, record } from '../ops/tape.js';
export type { GradFn, Grads, Node } from '../ops/node.js';
export {
  copyOf, frozenTensor, full, getAllocator, heapAllocator, keep, memoryStats, nativeAllocator, nativeMemory, ones, randn,
  scalar, scope, setAllocator, tensor, tidy, uniform, zeros, zerosLike, Tensor,
  type Allocator, type Bf16Data, type CreateOptions, type F, type FloatDtype as TensorFloatDtype, type FrozenData,
  type FrozenDtype, type Int8Data, type MemoryStats, type PackedData, type Quant4Data, type RandomOptions, type TensorDtype,
} from '../tensor/index.js';
