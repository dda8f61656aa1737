/**
 * Reading a quantizer's folders back: the part of the quantizer contract that loaders use (train,
 * eval and generate through io/var-builder.ts; merge inputs; fold). plugin/quantizer.ts
 * QuantizerDef extends it with quantize and config. It lives here, below io/ and models/, so the
 * loaders take it without importing the plugin layer: they are handed a QuantizerLookup (a
 * Registry, or builtinQuantizers for library users), and both answer with findQuantizer (lookup.ts).
 *
 * A quantized module P keeps a non-float `P.weight` (its packed codes; transformers' shape check
 * and ours, io/hf-config.ts, rely on it) plus whatever tensors its format stores under `P.`.
 * Not here: the bitsandbytes formats themselves (bnb4bit.ts, int8.ts, builtin-formats.ts).
 */
import type { Backend } from '../backend/types.js';
import type { Dtype, RawTensor } from '../dtype.js';
import type { FrozenData } from '../tensor/types.js';

/** The stored tensors of one module, as read; undefined for a name that is not there. */
export type StoredTensors = (name: string) => RawTensor | undefined;

export interface DequantizeContext {
  backend: Backend;
  /** A buffer of exactly numel elements the result may be written into (to reuse memory); optional to honour. */
  out?: Float32Array;
}

/** A folder's tensors by name: headers at once, data on request (an io/ ModelFolder is one). */
export interface StoredIndex {
  readonly tensorNames: readonly string[];
  has(name: string): boolean;
  info(name: string): { dtype: Dtype; shape: readonly number[] };
  read(name: string): Promise<RawTensor>;
}

/** How module P of a folder is stored. */
export interface StoredLayout {
  /** Every stored tensor of the module, its packed `P.weight` included. */
  parts: string[];
  /** The weight's logical shape [out, in], when headers or a small tensor tell it (else the core dequantizes to learn it). */
  shape?: number[];
  /** The float dtype the weight had before quantization, when the format records it. */
  sourceDtype?: 'F32' | 'F16' | 'BF16';
}

export interface FrozenContext {
  backend: Backend;
  /** "<dir>/<file>" holding a stored tensor (the folder for a missing one), for messages. */
  where(name: string): string;
}

export interface QuantFormat {
  name: string;
  /** `quantization_config.quant_method` of the folders this quantizer writes; default its name. Quantizers may share one. */
  quantMethod?: string;
  /** Among quantizers sharing a quant_method, whether this quantization_config is this one's; default true. */
  matches?(qc: Readonly<Record<string, unknown>>): boolean;
  /** Inverse of `quantize` from the stored tensors (`get` returns undefined for a missing key). */
  dequantize(prefix: string, get: StoredTensors, ctx: DequantizeContext): { data: Float32Array; shape: number[] };
  /**
   * Module `prefix` as stored, or undefined when it is not stored quantized (a skipped module).
   * Default (storedLayout): a non-float `prefix.weight`, with every `prefix.*` tensor but the bias.
   */
  layout?(prefix: string, index: StoredIndex): StoredLayout | undefined | Promise<StoredLayout | undefined>;
  /**
   * The weight in memory for train / eval / generate, checked against `shape`: the core kernels'
   * layouts (the bitsandbytes built-ins), or a PackedData with the format's own product (a fused
   * `gemm`, or `readRows` blocks the core multiplies one by one). Default (quant/packed.ts): the
   * stored tensors stay as read and `dequantize` runs per product into a scratch buffer.
   */
  frozen?(prefix: string, get: StoredTensors, shape: readonly number[], ctx: FrozenContext): FrozenData;
}

/** Finds the quantizer of a folder's quantization_config (E_INPUT naming quant_method when none is installed). */
export interface QuantizerLookup {
  quantizerFor(qc: unknown, where?: string): QuantFormat;
}

const FLOAT: ReadonlySet<Dtype> = new Set(['F64', 'F32', 'F16', 'BF16']);

/** The format's layout of module `prefix`, or the default rule. */
export async function storedLayout(f: QuantFormat, prefix: string, index: StoredIndex): Promise<StoredLayout | undefined> {
  if (f.layout) return f.layout(prefix, index);
  const w = `${prefix}.weight`;
  if (!index.has(w) || FLOAT.has(index.info(w).dtype)) return undefined;
  const mine = index.tensorNames.filter((n) => n !== w && n.startsWith(`${prefix}.`) && n !== `${prefix}.bias`);
  return { parts: [w, ...mine] };
}

/** Module prefixes of a folder that may hold a Linear weight: every `P.weight` tensor, in file order. */
export function weightModules(names: readonly string[]): string[] {
  return names.filter((n) => n.endsWith('.weight')).map((n) => n.slice(0, -'.weight'.length));
}
