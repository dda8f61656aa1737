/**
 * Thin QR in f64 by Householder reflections: A [m, n] = Q R with k = min(m, n), Q [m, k] with
 * orthonormal columns and R [k, n] upper trapezoidal — torch.linalg.qr(A, mode='reduced').
 *
 * The reflectors follow LAPACK's dlarfg/dgeqr2 (what torch calls on CPU): for the column x below the
 * diagonal, beta = -sign(x_0)·||x|| (sign(0) = +1) becomes R's diagonal entry, and a column already
 * zero below the diagonal gets no reflection (R_jj = x_0, whatever its sign). Q is accumulated
 * backwards as dorg2r does. QR of a full-rank matrix is unique only up to the signs of R's diagonal;
 * with the same convention our signs normally agree with torch's, but round-off (a leading entry
 * near 0), LAPACK's blocked variant or its under/overflow rescaling may flip one. Tests therefore
 * compare Q·R, or Q and R after making diag(R) >= 0 on both sides (canonicalQr).
 * Cost ~2mn² flops; fine for any adapter-sized matrix.
 * Not here: pivoting, least squares, complex numbers.
 */
import { checkMatrix } from './matrix.js';

export interface Qr {
  /** [m, k] row-major, orthonormal columns */
  Q: Float64Array;
  /** [k, n] row-major, zero below the diagonal */
  R: Float64Array;
  m: number;
  n: number;
  k: number;
}

/** One Householder reflector H = I - tau v vᵀ (v_0 = 1) acting on rows j..m-1. */
interface Reflector { v: Float64Array; tau: number }

/** dlarfg on column j of the column-major work array c ([n, m]); zeroes it below the diagonal. */
function reflect(c: Float64Array, m: number, j: number): Reflector {
  const off = j * m + j;
  const len = m - j;
  const alpha = c[off];
  let xnorm2 = 0;
  for (let i = 1; i < len; i++) xnorm2 += c[off + i] * c[off + i];
  const v = new Float64Array(len);
  v[0] = 1;
  if (xnorm2 === 0) return { v, tau: 0 };
  const beta = -(alpha >= 0 ? 1 : -1) * Math.hypot(alpha, Math.sqrt(xnorm2));
  const scale = 1 / (alpha - beta);
  for (let i = 1; i < len; i++) {
    v[i] = c[off + i] * scale;
    c[off + i] = 0;
  }
  c[off] = beta;
  return { v, tau: (beta - alpha) / beta };
}

/** Applies H (acting on rows j..) to the length-m column starting at `col` of `c`. */
function applyTo(h: Reflector, c: Float64Array, col: number, j: number): void {
  if (h.tau === 0) return;
  const len = h.v.length;
  let wsum = 0;
  for (let i = 0; i < len; i++) wsum += h.v[i] * c[col + j + i];
  const f = h.tau * wsum;
  for (let i = 0; i < len; i++) c[col + j + i] -= f * h.v[i];
}

/** Thin QR of a [m, n] (row-major, any numeric array; computed in f64). */
export function qr(a: ArrayLike<number>, m: number, n: number): Qr {
  checkMatrix('qr', a, m, n);
  const k = Math.min(m, n);
  // Column-major copy: reflections work down columns, which are then contiguous.
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) c[j * m + i] = a[i * n + j];
  const hs: Reflector[] = [];
  for (let j = 0; j < k; j++) {
    const h = reflect(c, m, j);
    for (let col = j + 1; col < n; col++) applyTo(h, c, col * m, j);
    hs.push(h);
  }
  const R = new Float64Array(k * n);
  for (let i = 0; i < k; i++) for (let j = i; j < n; j++) R[i * n + j] = c[j * m + i];
  // Q = H_0 ... H_{k-1} I[:, :k], applied right to left; H_j leaves columns < j (still e_col) alone.
  const q = new Float64Array(k * m);
  for (let col = 0; col < k; col++) q[col * m + col] = 1;
  for (let j = k - 1; j >= 0; j--) for (let col = j; col < k; col++) applyTo(hs[j], q, col * m, j);
  const Q = new Float64Array(m * k);
  for (let i = 0; i < m; i++) for (let col = 0; col < k; col++) Q[i * k + col] = q[col * m + i];
  return { Q, R, m, n, k };
}

/**
 * The QR with diag(R) >= 0: row i of R and column i of Q flipped where R_ii < 0. Unique for a
 * full-rank A, so two libraries' results can be compared entry by entry after this.
 */
export function canonicalQr(f: Qr): Qr {
  const Q = f.Q.slice();
  const R = f.R.slice();
  for (let i = 0; i < f.k; i++) {
    if (R[i * f.n + i] >= 0) continue;
    for (let j = 0; j < f.n; j++) R[i * f.n + j] = -R[i * f.n + j];
    for (let r = 0; r < f.m; r++) Q[r * f.k + i] = -Q[r * f.k + i];
  }
  return { ...f, Q, R };
}
