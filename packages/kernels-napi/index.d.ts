// Types of the native kernels (src/binding.rs). All functions are synchronous,
// write into caller-allocated typed arrays, and throw an Error with
// `code === 'EINVAL'` on a wrong typed-array kind, length, or blocksize (the
// message names the argument), `'ENOTSUP'` for a SIMD level the CPU lacks.
// Outputs must not share memory with other arguments (EINVAL).
// Numerics are bitsandbytes-compatible and identical for every SIMD level and
// thread count; see src/quant/*.rs and src/convert.rs for the exact rules.

export type SimdLevel = 'avx512' | 'avx2' | 'scalar';
/** 0 = NF4, 1 = FP4. */
export type FourBitType = 0 | 1;

/** The instruction set the kernels use now (the best available unless set). */
export function simdLevel(): SimdLevel;
/** Process-wide override, for tests and benchmarks. Throws ENOTSUP if the CPU lacks it. */
export function setSimdLevel(level: SimdLevel): void;
/** Threads the kernels use, caller included (available_parallelism, or PEFT_NUM_THREADS). */
export function numThreads(): number;

/**
 * Blockwise 4-bit quantization of x (n,). blocksize: power of two in 32..4096.
 * outPacked: ceil(n/2) bytes, element 2j in the high nibble; outAbsmax: ceil(n/blocksize).
 */
export function quantize4bit(
  x: Float32Array,
  blocksize: number,
  type: FourBitType,
  outPacked: Uint8Array,
  outAbsmax: Float32Array,
): void;
/** Inverse of quantize4bit; n = out.length, packed: ceil(n/2), absmax: ceil(n/blocksize). */
export function dequantize4bit(
  packed: Uint8Array,
  absmax: Float32Array,
  blocksize: number,
  type: FourBitType,
  out: Float32Array,
): void;

/**
 * Blockwise 8-bit quantization against `code` (256 finite values, sorted ascending,
 * e.g. bitsandbytes' dynamic map). outCodes: n, outAbsmax: ceil(n/blocksize).
 */
export function quantizeBlockwise8(
  x: Float32Array,
  code: Float32Array,
  blocksize: number,
  outCodes: Uint8Array,
  outAbsmax: Float32Array,
): void;
/** out[i] = code[codes[i]] * absmax[i / blocksize]; n = out.length = codes.length. */
export function dequantizeBlockwise8(
  codes: Uint8Array,
  absmax: Float32Array,
  code: Float32Array,
  blocksize: number,
  out: Float32Array,
): void;

/** Row-wise absmax int8 of w (rows, cols): outCb (rows*cols), outScb (rows). */
export function quantizeInt8Rows(
  w: Float32Array,
  rows: number,
  cols: number,
  outCb: Int8Array,
  outScb: Float32Array,
): void;
/** out = cb * scb[row] / 127 (bitsandbytes int8_vectorwise_dequant). */
export function dequantizeInt8Rows(
  cb: Int8Array,
  scb: Float32Array,
  rows: number,
  cols: number,
  out: Float32Array,
): void;

/** IEEE half, round to nearest even; out.length must equal x.length. */
export function f32ToF16(x: Float32Array, out: Uint16Array): void;
export function f16ToF32(x: Uint16Array, out: Float32Array): void;
/** bfloat16, round to nearest even; NaN -> 0x7FC0 with the input's sign. */
export function f32ToBf16(x: Float32Array, out: Uint16Array): void;
export function bf16ToF32(x: Uint16Array, out: Float32Array): void;
