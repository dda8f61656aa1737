/**
 * The reference backend: every kernel of types.ts in plain TypeScript, one element at a time, with
 * Math.fround after every f32 operation. It is the oracle the native backend is tested against and
 * the fallback when no native build exists. Written to be checked by reading, not to be fast.
 *
 * Numerics follow bitsandbytes' CUDA kernels (csrc/kernels.cu kQuantizeBlockwise with dQuantizeNF4 /
 * dQuantizeFP4 / dQuantize): s = x * f32(1 / absmax) for every block, code by thresholds (a value on
 * a threshold takes the lower code). Deviations of other bitsandbytes paths, which we do not follow:
 *  - backends/default/ops.py (its CPU/Python fallback) clamps s to [-1, 1] and picks the code by
 *    argmin |s - code|; the NF4 thresholds are not exact f32 midpoints, so rare values differ.
 *  - older functional.py/default ops divided the partial tail block by absmax instead of multiplying
 *    by the reciprocal; that can move a value sitting next to a threshold by one code.
 * f32 +,-,*,/ are exact under Math.fround: a double result of two f32 operands rounds correctly to f32.
 */
import { FP4, FP4_BITS, FP4_THRESHOLDS, NF4, NF4_THRESHOLDS } from './quant-tables.js';
import { f16ToF32, f32ToBf16, f32ToF16, bf16ToF32 } from './reference-half.js';
import { roundHalfEven } from './round.js';
import type { Backend, Quantized4, Quantized8, QuantizedInt8Rows, QuantType4 } from './types.js';
import {
  blockCount, checkAtLeast, checkBlocksize, checkCode256, checkCount, checkLength, checkOut, checkRows, checkType4,
} from './validate.js';

const fr = Math.fround;

/** max |x| over [lo, hi); NaN never wins (like CUDA fmaxf). */
function absmaxOf(x: Float32Array, lo: number, hi: number): number {
  let m = 0;
  for (let i = lo; i < hi; i++) {
    const a = Math.abs(x[i]);
    if (a > m) m = a;
  }
  return m;
}

/** dQuantizeNF4: the number of thresholds strictly below s (NaN: 0). */
export function nf4Code(s: number): number {
  let c = 0;
  for (let k = 0; k < NF4_THRESHOLDS.length; k++) if (s > NF4_THRESHOLDS[k]) c++;
  return c;
}

/** dQuantizeFP4: sign bit from s < 0 (so -0 and NaN are positive), magnitude by thresholds on |s|. */
export function fp4Code(s: number): number {
  const sign = s < 0 ? 8 : 0;
  const a = Math.abs(s);
  let c = 0;
  for (let k = 0; k < FP4_THRESHOLDS.length; k++) if (a > FP4_THRESHOLDS[k]) c++;
  return sign + FP4_BITS[c];
}

function quantize4bit(x: Float32Array, blocksize: number, type: QuantType4): Quantized4 {
  checkBlocksize('quantize4bit', blocksize);
  checkType4('quantize4bit', type);
  const n = x.length;
  const packed = new Uint8Array(Math.ceil(n / 2));
  const absmax = new Float32Array(blockCount(n, blocksize));
  const code = type === 'nf4' ? nf4Code : fp4Code;
  for (let b = 0; b < absmax.length; b++) {
    const lo = b * blocksize;
    const hi = Math.min(n, lo + blocksize);
    absmax[b] = absmaxOf(x, lo, hi);
    const inv = fr(1 / absmax[b]); // absmax 0: inv = inf, s = 0 * inf = NaN, code 0 (as CUDA)
    for (let i = lo; i < hi; i++) {
      const q = code(fr(x[i] * inv));
      packed[i >> 1] |= (i & 1) === 0 ? q << 4 : q; // element 2j in the high nibble
    }
  }
  return { packed, absmax };
}

function dequantize4bit(
  packed: Uint8Array, absmax: Float32Array, n: number, blocksize: number, type: QuantType4, out?: Float32Array,
): Float32Array {
  const op = 'dequantize4bit';
  checkCount(op, 'n', n);
  checkBlocksize(op, blocksize);
  checkType4(op, type);
  checkAtLeast(op, 'packed', packed, Math.ceil(n / 2));
  checkAtLeast(op, 'absmax', absmax, blockCount(n, blocksize));
  checkOut(op, out, n);
  const table = type === 'nf4' ? NF4 : FP4;
  const y = out ?? new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const byte = packed[i >> 1];
    const q = (i & 1) === 0 ? byte >> 4 : byte & 15;
    y[i] = fr(table[q] * absmax[Math.floor(i / blocksize)]);
  }
  return y;
}

/** m_k = f32((C[k] + C[k+1]) * 0.5), k = 0..254. */
function midpoints(code: Float32Array): Float32Array {
  const m = new Float32Array(255);
  for (let k = 0; k < 255; k++) m[k] = fr(fr(code[k] + code[k + 1]) * 0.5);
  return m;
}

/** #{k : s > m_k} for ascending m, by binary search (NaN: 0; a value on a midpoint goes lower). */
function countBelow(m: Float32Array, s: number): number {
  let lo = 0;
  let hi = m.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (m[mid] < s) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function quantizeBlockwise8(x: Float32Array, code: Float32Array, blocksize: number): Quantized8 {
  checkBlocksize('quantizeBlockwise8', blocksize);
  checkCode256('quantizeBlockwise8', code);
  const n = x.length;
  const m = midpoints(code);
  const codes = new Uint8Array(n);
  const absmax = new Float32Array(blockCount(n, blocksize));
  for (let b = 0; b < absmax.length; b++) {
    const lo = b * blocksize;
    const hi = Math.min(n, lo + blocksize);
    absmax[b] = absmaxOf(x, lo, hi);
    const inv = fr(1 / absmax[b]);
    for (let i = lo; i < hi; i++) codes[i] = countBelow(m, fr(x[i] * inv));
  }
  return { codes, absmax };
}

function dequantizeBlockwise8(
  codes: Uint8Array, absmax: Float32Array, code: Float32Array, blocksize: number, out?: Float32Array,
): Float32Array {
  const op = 'dequantizeBlockwise8';
  checkBlocksize(op, blocksize);
  checkLength(op, 'code', code, 256);
  checkAtLeast(op, 'absmax', absmax, blockCount(codes.length, blocksize));
  checkOut(op, out, codes.length);
  const y = out ?? new Float32Array(codes.length);
  for (let i = 0; i < codes.length; i++) y[i] = fr(code[codes[i]] * absmax[Math.floor(i / blocksize)]);
  return y;
}

function quantizeInt8Rows(w: Float32Array, rows: number, cols: number): QuantizedInt8Rows {
  checkRows('quantizeInt8Rows', w.length, rows, cols, 'w');
  const cb = new Int8Array(rows * cols);
  const scb = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const lo = r * cols;
    scb[r] = absmaxOf(w, lo, lo + cols);
    if (scb[r] === 0) continue; // a zero row stays 0 (127 / 0 would give 0 * inf = NaN)
    const f = fr(127 / scb[r]);
    for (let i = lo; i < lo + cols; i++) cb[i] = roundHalfEven(fr(w[i] * f));
  }
  return { cb, scb };
}

/** 1/127 as bitsandbytes' kernels spell it (csrc: 7.874015718698502e-3). */
const INV127 = fr(7.874015718698502e-3);

function dequantizeInt8Rows(cb: Int8Array, scb: Float32Array, rows: number, cols: number, out?: Float32Array): Float32Array {
  const op = 'dequantizeInt8Rows';
  checkRows(op, cb.length, rows, cols, 'cb');
  checkAtLeast(op, 'scb', scb, rows);
  checkOut(op, out, rows * cols);
  const y = out ?? new Float32Array(rows * cols);
  for (let i = 0; i < rows * cols; i++) y[i] = fr(fr(cb[i] * scb[Math.floor(i / cols)]) * INV127);
  return y;
}

export const referenceBackend: Backend = {
  name: 'reference',
  simd: 'js',
  quantize4bit,
  dequantize4bit,
  quantizeBlockwise8,
  dequantizeBlockwise8,
  quantizeInt8Rows,
  dequantizeInt8Rows,
  f32ToF16,
  f16ToF32,
  f32ToBf16,
  bf16ToF32,
};
