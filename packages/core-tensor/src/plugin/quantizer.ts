/**
 * The quantizer contract: what `registry.quantizer(...)` takes. A quantizer turns one 2-D
 * Linear weight into the tensors stored under its module prefix, reads them back, and names
 * the `quantization_config` that goes into config.json. The read-back half (QuantFormat,
 * quant/format.ts: quant_method lookup, stored layout, dequantize, an optional in-memory form with
 * a fused product) is what lets train / eval / generate / merge / fold use any quantizer's folders.
 * Streaming, file layout, progress and error statistics are the core's job (tasks/quantize-model.ts),
 * not the quantizer's.
 */
import type { Backend } from '../backend/types.js';
import type { NamedRawTensor } from '../dtype.js';
import type { QuantFormat, StoredTensors } from '../quant/format.js';
import type { EntryBase, ResolvedOptions } from './index.js';

export interface QuantizeContext {
  backend: Backend;
}

export interface QuantizerDef<O extends ResolvedOptions = ResolvedOptions> extends EntryBase, QuantFormat {
  /** `w` is the f32 weight `[out, in]` (row-major) of module `prefix` (e.g. `model.layers.0.mlp.up_proj`). */
  quantize(prefix: string, w: Float32Array, shape: readonly number[], opts: O, ctx: QuantizeContext): NamedRawTensor[];
  /** The object stored as `quantization_config` in config.json; its quant_method is `quantMethod` (default the name). */
  config(opts: O, skipModules: readonly string[]): Record<string, unknown>;
  /**
   * Options that re-quantize module `prefix` as the folder was (`peft merge --adapter --requantize`),
   * from quantization_config and the module's stored tensors. Default: the options named in quantization_config.
   */
  optionsFromConfig?(qc: Readonly<Record<string, unknown>>, prefix: string, get: StoredTensors): Record<string, unknown>;
}
