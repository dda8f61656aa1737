/**
 * The compressor contract: what `registry.compressor(...)` takes (ComPEFT, sparsify, ...). A
 * compressor turns an adapter's update into a container of bytes and back; reading the adapter,
 * atomic writing and reporting are the driver's job.
 */
import type { NamedRawTensor } from '../dtype.js';
import type { PeftAdapter } from '../io/peft-adapter.js';
import type { EntryBase } from './registry.js';
import type { ResolvedOptions } from './options.js';

export interface CompressorDef extends EntryBase {
  /** The container's bytes for `adapter` (tensors compressed against `reference`, 0 when absent). */
  compress(adapter: PeftAdapter, options: ResolvedOptions, reference?: (key: string) => Float32Array | undefined): Uint8Array;
  /** The adapter back (config + PEFT-keyed tensors) from a container this compressor wrote. */
  decompress(bytes: Uint8Array): { config: Record<string, unknown>; tensors: NamedRawTensor[] };
}
