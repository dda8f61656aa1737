/**
 * Tensor element types. 'f32' is what training computes in; 'f64' exists so gradient checks can
 * run finite differences without f32 round-off. The frozen kinds hold base-model weights exactly as
 * stored (bf16 bits, bitsandbytes 4-bit blocks, LLM.int8 rows, or a plugin quantizer's own packed
 * form): they never get gradients and only `linear` (and the cross-entropy LM head) consume them,
 * through the fused dequant-GEMM kernels (ops/weights.ts) or, for 'packed', the format's own product.
 */
import type { F, TrainKernels } from '../backend/train-kernels.js';

export type { F };

export type FloatDtype = 'f32' | 'f64';
export type FrozenDtype = 'bf16' | 'nf4' | 'fp4' | 'int8' | 'packed';
export type TensorDtype = FloatDtype | FrozenDtype;

/** bf16 weight: the raw bit patterns, [numel] (exact widening to f32 on use). */
export interface Bf16Data {
  kind: 'bf16';
  bits: Uint16Array;
}

/** bitsandbytes 4-bit weight, flattened row-major in blocks of `blocksize`. */
export interface Quant4Data {
  kind: 'nf4' | 'fp4';
  /** uint8 [ceil(numel/2)]: element 2j in the high nibble */
  packed: Uint8Array;
  /** f32 [ceil(numel/blocksize)]: per-block absmax, double quantization already undone */
  absmax: Float32Array;
  blocksize: number;
}

/** LLM.int8 weight [rows, cols]: W[r] = cb[r] * scb[r] / 127. */
export interface Int8Data {
  kind: 'int8';
  /** int8 [rows*cols] */
  cb: Int8Array;
  /** f32 [rows] */
  scb: Float32Array;
}

/**
 * A frozen weight W [out, in] in a format the core's kernels do not know: a plugin quantizer's
 * (QuantizerDef.frozen), or the core's wrapper around a quantizer that only has `dequantize`
 * (quant/packed.ts). The packed arrays stay the format's own; these members are all the core calls.
 * How a product runs (ops/packed-gemm.ts): `gemm` when given (the format's fused path); else W is
 * read `readRows` block by block into a scratch block; else `dequantize`d whole into a scratch
 * buffer. Scratch is freed when the product returns, so no dense copy of W outlives one call.
 */
export interface PackedData {
  kind: 'packed';
  /** The quantizer's name, e.g. "int4-sym" (for messages). */
  format: string;
  /** All of W as f32 into `out` (exactly out * in elements). */
  dequantize(out: Float32Array): void;
  /** Optional: rows [row0, row0 + rows) of W as f32 into `out` (exactly rows * in elements). */
  readRows?(row0: number, rows: number, out: Float32Array): void;
  /** readRows's row0 (and rows, but for the last block) are multiples of this; default 1. */
  rowStep?: number;
  /**
   * Optional fused product with f32 activations, the TrainKernels.gemmBf16 contract without alpha:
   * c[m, n] = a[m, k] · Wᵀ + beta · c when transB (W is [n, k]), a[m, k] · W + beta · c otherwise
   * (W is [k, n]); beta 0 overwrites c. `kernels` is the backend the caller chose, for the format's
   * own blocks.
   */
  gemm?(transB: boolean, m: number, n: number, k: number, a: Float32Array, beta: number, c: Float32Array, kernels: TrainKernels): void;
}

export type FrozenData = Bf16Data | Quant4Data | Int8Data | PackedData;

export function isFloatDtype(d: TensorDtype): d is FloatDtype {
  return d === 'f32' || d === 'f64';
}

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}
