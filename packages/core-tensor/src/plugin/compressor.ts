/**
 * The compressor contract: what `registry.compressor(...)` takes (ComPEFT, sparsify, ...). A
 * compressor codes the update of a list of tensors (an adapter's tensors against 0, or a
 * fine-tuned model against its base) into method fields + a payload of bytes, and back.
 * Not the compressor's job: reading adapters / models, subtracting or adding the reference,
 * the container around the payload (magic, header, checksum: core tasks/adapters/container.ts),
 * atomic writing and the report (tasks/adapters/compress.ts).
 */
import type { Dtype } from '../dtype.js';
import type { EntryBase } from './registry.js';
import type { ResolvedOptions } from './options.js';

/** One tensor of the update as the container lists it. */
export interface CompressTensor {
  name: string;
  shape: number[];
  /** The dtype the tensor was stored in (decompression may restore it). */
  dtype: Dtype;
}

export interface CompressInput {
  /** Sorted by name (ComPEFT's `OrderedDict(sorted(state_dict.items()))`), so flattening is reproducible. */
  tensors: readonly CompressTensor[];
  /** The update of each tensor (tensor − reference), f32 row-major, one per entry of `tensors`. */
  updates: readonly Float32Array[];
}

export interface CompressedUpdate {
  /** JSON-serialisable fields the method needs to decode the payload (scales, code parameters, counts). */
  codec: Record<string, unknown>;
  payload: Uint8Array;
  /**
   * Values actually stored (kept nonzeros), for the report. Each costs at least one payload bit: the
   * container refuses a header whose kept count exceeds 8 x payload bytes before anything is decoded.
   */
  kept: number;
  /** Bits per parameter a perfect code of what was kept would need (the entropy bound), for the report. */
  boundBits: number;
}

export interface CompressorDef extends EntryBase {
  compress(input: CompressInput, options: ResolvedOptions): CompressedUpdate;
  /**
   * The updates back, one per tensor, from what `compress` returned. A payload that does not fit
   * `codec` or `tensors` (counts, lengths, positions out of range) is E_FORMAT, never a wrong tensor.
   */
  decompress(tensors: readonly CompressTensor[], codec: Record<string, unknown>, payload: Uint8Array): Float32Array[];
}
