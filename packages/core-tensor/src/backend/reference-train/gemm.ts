/**
 * Reference GEMM: the naive triple loop, each dot product summed in a JS double in k order and stored
 * once into C (so f64 arrays give f64 results, f32 arrays round once per element). The quantized
 * variants ARE gemm on the weight dequantized by the reference backend: that is their definition.
 * Not here: blocking, packing, threads (the native kernels do those).
 */
import { referenceBackend } from '../reference.js';
import type { F } from '../train-kernels.js';
import { trainChecks } from './checks.js';

/**
 * C[m,n] = alpha * op(A) @ op(B) + beta * C; A is [m,k] ([k,m] when transA), B is [k,n] ([n,k] when
 * transB). beta == 0 never reads C (so NaN there is overwritten, as BLAS and torch.addmm do).
 */
export function gemm(transA: boolean, transB: boolean, m: number, n: number, k: number,
  alpha: number, a: F, b: F, beta: number, c: F): void {
  trainChecks.gemm(transA, transB, m, n, k, alpha, a, b, beta, c);
  // element strides of op(A)[i,p] and op(B)[p,j]
  const [ai, ap] = transA ? [1, m] : [k, 1];
  const [bp, bj] = transB ? [1, k] : [n, 1];
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * ai + p * ap] * b[p * bp + j * bj];
      c[i * n + j] = beta === 0 ? alpha * s : alpha * s + beta * c[i * n + j];
    }
  }
}

/** W [n,k] when transB, else [k,n]: the dequantized weight as the B operand. */
export function gemmQuant4(transB: boolean, m: number, n: number, k: number, alpha: number, a: Float32Array,
  packed: Uint8Array, absmax: Float32Array, blocksize: number, type: 0 | 1, beta: number, c: Float32Array): void {
  trainChecks.gemmQuant4(transB, m, n, k, alpha, a, packed, absmax, blocksize, type, beta, c);
  const w = referenceBackend.dequantize4bit(packed, absmax, n * k, blocksize, type === 0 ? 'nf4' : 'fp4');
  gemm(false, transB, m, n, k, alpha, a, w, beta, c);
}

/** LLM.int8 rows: W[r] = cb[r] * scb[r] / 127, rows = n when transB (W [n,k]), else k (W [k,n]). */
export function gemmInt8(transB: boolean, m: number, n: number, k: number, alpha: number, a: Float32Array,
  cb: Int8Array, scb: Float32Array, beta: number, c: Float32Array): void {
  trainChecks.gemmInt8(transB, m, n, k, alpha, a, cb, scb, beta, c);
  const [rows, cols] = transB ? [n, k] : [k, n];
  const w = referenceBackend.dequantizeInt8Rows(cb, scb, rows, cols);
  gemm(false, transB, m, n, k, alpha, a, w, beta, c);
}

/** W as bf16 bits, widened exactly. */
export function gemmBf16(transB: boolean, m: number, n: number, k: number, alpha: number, a: Float32Array,
  w: Uint16Array, beta: number, c: Float32Array): void {
  trainChecks.gemmBf16(transB, m, n, k, alpha, a, w, beta, c);
  gemm(false, transB, m, n, k, alpha, a, referenceBackend.bf16ToF32(w), beta, c);
}
