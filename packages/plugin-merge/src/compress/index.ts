/**
 * The compressors this plugin registers: `compeft` (ComPEFT: top-K, ternary sign · alpha · std)
 * and `sparsify` (the same top-K, values kept as f16). Both code the kept positions as
 * Golomb-Rice gaps; the core wraps their payload in the `.peftz` container.
 */
import type { Registry } from '@peft/core-tensor';
import { compeft } from './compeft.js';
import { sparsify } from './sparsify.js';

export { compeft } from './compeft.js';
export { sparsify } from './sparsify.js';
export { decodePositions, encodePositions } from './gaps.js';

export function registerCompressors(registry: Registry): void {
  registry.compressor(compeft);
  registry.compressor(sparsify);
}
