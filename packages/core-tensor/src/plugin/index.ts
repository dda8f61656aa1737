export * from './options.js';
export * from './registry.js';
export * from './quantizer.js';
export * from './method.js';
export * from './optimizer.js';
export * from './merger.js';
export * from './compressor.js';
export { registerBuiltins } from './builtins.js';
export { adamwOptimizer, sgdOptimizer, CORE_OPTIMIZERS } from './builtin-optimizers.js';
