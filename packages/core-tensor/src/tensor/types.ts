/**
 * Tensor element types. 'f32' is what training computes in; 'f64' exists so gradient checks can
 * run finite differences without f32 round-off. The frozen kinds hold base-model weights exactly as
 * stored (bf16 bits, bitsandbytes 4-bit blocks, LLM.int8 rows): they never get gradients and only
 * `linear` (and the cross-entropy LM head) consume them, through the fused dequant-GEMM kernels.
 */
import type { F } from '../backend/train-kernels.js';

export type { F };

export type FloatDtype = 'f32' | 'f64';
export type FrozenDtype = 'bf16' | 'nf4' | 'fp4' | 'int8';
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

export type FrozenData = Bf16Data | Quant4Data | Int8Data;

export function isFloatDtype(d: TensorDtype): d is FloatDtype {
  return d === 'f32' || d === 'f64';
}

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}
