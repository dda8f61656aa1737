/** Adapter jobs: compression into `.peftz` containers and back (merging and folding: merge-adapters.ts, fold.ts). */
export * from './container.js';
export * from './compress.js';
export * from './decompress.js';
export { adapterUpdate, modelDeltaUpdate, type UpdateSource } from './update-source.js';
export * from './fold.js';
export * from './merge-adapters.js';
export { addProduct, methodFor, readAdapterDeltas, type AdapterDeltas } from './deltas.js';
