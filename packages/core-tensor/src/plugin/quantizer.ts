/**
 * The quantizer contract: what `registry.quantizer(...)` takes. A quantizer turns one 2-D
 * Linear weight into the tensors stored under its module prefix, reads them back, and names
 * the `quantization_config` that goes into config.json. Streaming, file layout, progress and
 * error statistics are the core's job (tasks/quantize-model.ts), not the quantizer's.
 */
import type { Backend } from '../backend/types.js';
import type { NamedRawTensor, RawTensor } from '../dtype.js';
import type { EntryBase, ResolvedOptions } from './index.js';

export interface QuantizeContext {
  backend: Backend;
}

export interface DequantizeContext extends QuantizeContext {
  /** A buffer of exactly numel elements the result may be written into (to reuse memory); optional to honour. */
  out?: Float32Array;
}

export interface QuantizerDef<O extends ResolvedOptions = ResolvedOptions> extends EntryBase {
  /** `w` is the f32 weight `[out, in]` (row-major) of module `prefix` (e.g. `model.layers.0.mlp.up_proj`). */
  quantize(prefix: string, w: Float32Array, shape: readonly number[], opts: O, ctx: QuantizeContext): NamedRawTensor[];
  /** Inverse of `quantize` from the stored tensors (`get` returns undefined for a missing key). */
  dequantize(
    prefix: string, get: (name: string) => RawTensor | undefined, ctx: DequantizeContext,
  ): { data: Float32Array; shape: number[] };
  /** The object stored as `quantization_config` in config.json. */
  config(opts: O, skipModules: readonly string[]): Record<string, unknown>;
}
