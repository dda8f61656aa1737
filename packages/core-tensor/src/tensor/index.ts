/** Tensors: creation, storage and allocators, scopes. */
export { getAllocator, heapAllocator, nativeAllocator, nativeMemory, setAllocator, type Allocator } from './allocator.js';
export {
  copyOf, frozenTensor, full, ones, randn, scalar, tensor, uniform, zeros, zerosLike, type CreateOptions, type RandomOptions,
} from './create.js';
export { keep, scope, tidy } from './scope.js';
export { memoryStats, type MemoryStats } from './storage.js';
export { Tensor } from './tensor.js';
export type { Bf16Data, F, FloatDtype, FrozenData, FrozenDtype, Int8Data, PackedData, Quant4Data, TensorDtype } from './types.js';
