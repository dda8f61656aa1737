/**
 * Adapter jobs: compression into `.peftz` containers and back (compress.ts, decompress.ts, container.ts),
 * merging adapters into one (merge-adapters.ts) and folding them into a base model (fold.ts).
 */
export * from './container.js';
export * from './compress.js';
export * from './decompress.js';
export { adapterUpdate, modelDeltaUpdate, type UpdateSource } from './update-source.js';
export * from './fold.js';
export * from './merge-adapters.js';
export { addProduct, methodFor, readAdapterDeltas, type AdapterDeltas } from './deltas.js';
