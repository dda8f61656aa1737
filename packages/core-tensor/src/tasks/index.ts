export * from './select-modules.js';
export * from './quantize-model.js';
export * from './inspect.js';
export * from './generate.js';
export * from './generate-run.js';
export * from './eval-data.js';
export * from './eval.js';
export * from './adapters/index.js';
