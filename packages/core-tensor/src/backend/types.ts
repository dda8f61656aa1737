/**
 * The kernel contract. Every backend (pure-TS reference, native Rust) implements exactly these
 * functions with bit-identical results; the reference backend is the oracle in tests.
 *
 * Conventions: outputs are returned (freshly allocated unless `out` is given); shapes are
 * row-major; `n` is an element count. Inputs are never modified.
 */
export type QuantType4 = 'nf4' | 'fp4';

export interface Quantized4 {
  /** uint8 [ceil(n/2)]: element 2j in the HIGH nibble, 2j+1 in the low nibble (bitsandbytes order). */
  packed: Uint8Array;
  /** f32 [ceil(n/blocksize)]: max |x| of each block of the flattened tensor. */
  absmax: Float32Array;
}

export interface Quantized8 {
  /** uint8 [n]: index into the 256-entry code. */
  codes: Uint8Array;
  /** f32 [ceil(n/blocksize)] */
  absmax: Float32Array;
}

export interface QuantizedInt8Rows {
  /** int8 [rows*cols]: round-half-even(w * (127 / scb[row])) */
  cb: Int8Array;
  /** f32 [rows]: max |w| of each row */
  scb: Float32Array;
}

export interface Backend {
  readonly name: 'reference' | 'native';
  /** e.g. 'avx512', 'avx2', 'scalar', 'js' */
  readonly simd: string;

  quantize4bit(x: Float32Array, blocksize: number, type: QuantType4): Quantized4;
  dequantize4bit(
    packed: Uint8Array, absmax: Float32Array, n: number, blocksize: number, type: QuantType4, out?: Float32Array,
  ): Float32Array;

  /** Blockwise 8-bit against a sorted 256-entry code (bitsandbytes' dynamic map for double quant). */
  quantizeBlockwise8(x: Float32Array, code: Float32Array, blocksize: number): Quantized8;
  dequantizeBlockwise8(
    codes: Uint8Array, absmax: Float32Array, code: Float32Array, blocksize: number, out?: Float32Array,
  ): Float32Array;

  quantizeInt8Rows(w: Float32Array, rows: number, cols: number): QuantizedInt8Rows;
  dequantizeInt8Rows(cb: Int8Array, scb: Float32Array, rows: number, cols: number, out?: Float32Array): Float32Array;

  /** IEEE conversions, round-to-nearest-even, NaN stays NaN (quiet), inf stays inf. */
  f32ToF16(x: Float32Array, out?: Uint16Array): Uint16Array;
  f16ToF32(x: Uint16Array, out?: Float32Array): Float32Array;
  f32ToBf16(x: Float32Array, out?: Uint16Array): Uint16Array;
  bf16ToF32(x: Uint16Array, out?: Float32Array): Float32Array;
}
