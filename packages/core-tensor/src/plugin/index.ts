export * from './options.js';
export * from './registry.js';
export * from './quantizer.js';
export { registerBuiltins } from './builtins.js';
