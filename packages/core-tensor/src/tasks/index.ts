export * from './select-modules.js';
export * from './quantize-model.js';
export * from './inspect.js';
