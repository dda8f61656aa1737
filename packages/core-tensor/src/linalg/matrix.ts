/**
 * Small dense f64 matrix helpers shared by the factorizations: row-major copies, transposes and
 * products. They are plain loops (no kernels): the factorizations here work on adapter-sized
 * matrices (a few thousand rows at most), where clarity beats speed.
 * Not here: anything autograd or Tensor-shaped (ops/), GEMM for training (backend/).
 */
import { PeftError } from '../errors.js';

/** Checks that `a` holds an m x n matrix (m, n positive integers). */
export function checkMatrix(what: string, a: ArrayLike<number>, m: number, n: number): void {
  if (!Number.isSafeInteger(m) || !Number.isSafeInteger(n) || m <= 0 || n <= 0) {
    throw new PeftError('E_SHAPE', `${what}: bad matrix shape [${m}, ${n}]`);
  }
  if (a.length !== m * n) throw new PeftError('E_SHAPE', `${what}: ${a.length} values do not fill [${m}, ${n}]`);
}

/** a [m, n] -> aᵀ [n, m], f64. */
export function transpose(a: ArrayLike<number>, m: number, n: number): Float64Array {
  const t = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j];
  return t;
}

/** c [m, n] = a [m, k] · b [k, n], f64 accumulation. */
export function matmul(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const ci = i * n;
    for (let p = 0; p < k; p++) {
      const aip = a[i * k + p];
      if (aip === 0) continue;
      const bp = p * n;
      for (let j = 0; j < n; j++) c[ci + j] += aip * b[bp + j];
    }
  }
  return c;
}

/** The first `cols` columns of a [m, n] (row-major), as [m, cols]. */
export function leadingColumns(a: Float64Array, m: number, n: number, cols: number): Float64Array {
  const out = new Float64Array(m * cols);
  for (let i = 0; i < m; i++) out.set(a.subarray(i * n, i * n + cols), i * cols);
  return out;
}
