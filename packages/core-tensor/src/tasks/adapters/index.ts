/**
 * Adapter jobs: compression into `.peftz` containers and back (compress.ts, decompress.ts, container.ts),
 * merging adapters into one (merge-adapters.ts), folding them into a base model (fold.ts) and applying
 * one for inference (apply.ts).
 */
export * from './container.js';
export * from './compress.js';
export * from './decompress.js';
export { adapterUpdate, modelDeltaUpdate, type UpdateSource } from './update-source.js';
export * from './fold.js';
export * from './merge-adapters.js';
export { addProduct, readAdapterDeltas, adapterWarnings, type AdapterDeltas } from './deltas.js';
export * from './apply.js';
