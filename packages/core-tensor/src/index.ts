/**
 * @peft/core-tensor: the core of peft. Backends (native kernels and the TS reference),
 * quantization formats, safetensors I/O, model fixtures, the plugin contract, and the
 * whole-model tasks the CLI runs.
 */
export * from './errors.js';
export * from './dtype.js';
export { hashString, Xoshiro128 } from './fixtures/rng.js';
export * from './backend/index.js';
export * from './quant/index.js';
export * from './io/index.js';
export * from './models/index.js';
export * from './tokenizer/index.js';
export * from './data/index.js';
export * from './plugin/index.js';
export * from './tasks/index.js';
export * from './nn/index.js';
export * from './fixtures/index.js';
export * from './linalg/index.js';
export * from './optim/index.js';
export * from './train/index.js';
