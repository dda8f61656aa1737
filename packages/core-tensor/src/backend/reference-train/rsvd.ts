/**
 * Reference randomized truncated SVD (Halko, Martinsson & Tropp 2011, Algorithms 4.4 + 5.1), the same
 * steps as kernels-napi's src/linalg/rsvd.rs so both backends agree to f32 rounding:
 *   l = min(rank + oversample, m, n); Ω [n, l] ~ N(0, 1) from Xoshiro128(seed) (random/rng.ts)
 *   Q = orth(A Ω); powerIters times Q = orth(A orth(Aᵀ Q))     (products: the reference gemm, f32)
 *   B = Qᵀ A [l, n]; Bᵀ = Q₂ R₂; R₂ᵀ = Ũ Σ Ṽᵀ                 (linalg/qr.ts, linalg/svd.ts, f64)
 *   U = Q Ũ_r, Vt = Ṽ_rᵀ Q₂ᵀ, each column of U with its largest-|.| entry positive (svd_flip, u-based).
 * Not here: the user-facing wrapper (linalg/rsvd.ts), the exact SVD (linalg/svd.ts).
 */
import { Xoshiro128 } from '../../random/rng.js';
import { transpose } from '../../linalg/matrix.js';
import { qr } from '../../linalg/qr.js';
import { svd } from '../../linalg/svd.js';
import { trainChecks } from './checks.js';
import { gemm } from './gemm.js';

function product(ta: boolean, tb: boolean, m: number, n: number, k: number, a: Float32Array, b: Float32Array): Float32Array {
  const c = new Float32Array(m * n);
  gemm(ta, tb, m, n, k, 1, a, b, 0, c);
  return c;
}

/** An orthonormal basis of the columns of y [rows, l] (Householder Q, f64), as f32. */
function orth(y: Float32Array, rows: number, l: number): Float32Array {
  return Float32Array.from(qr(y, rows, l).Q);
}

/** svd_flip (u-based): column j of u [m, r] gets its largest-|.| entry (the first, on ties) positive; row j of vt follows. */
export function flipSigns(u: Float32Array, vt: Float32Array, m: number, n: number, r: number): void {
  for (let j = 0; j < r; j++) {
    let at = 0;
    for (let i = 1; i < m; i++) if (Math.abs(u[i * r + j]) > Math.abs(u[at * r + j])) at = i;
    if (!(u[at * r + j] < 0)) continue;
    for (let i = 0; i < m; i++) u[i * r + j] = -u[i * r + j];
    for (let c = 0; c < n; c++) vt[j * n + c] = -vt[j * n + c];
  }
}

export function rsvd(u: Float32Array, s: Float32Array, vt: Float32Array, a: Float32Array, m: number, n: number,
  rank: number, oversample: number, powerIters: number, seed: number): void {
  trainChecks.rsvd(u, s, vt, a, m, n, rank, oversample, powerIters, seed);
  const l = Math.min(rank + oversample, m, n);
  const omega = new Float32Array(n * l);
  new Xoshiro128(seed, 0).fillNormal(omega);
  let q = orth(product(false, false, m, l, n, a, omega), m, l);
  for (let it = 0; it < powerIters; it++) {
    const z = orth(product(true, false, n, l, m, a, q), n, l);
    q = orth(product(false, false, m, l, n, a, z), m, l);
  }
  const b = product(true, false, l, n, m, q, a); // [l, n]
  if (!b.every(Number.isFinite)) {
    for (const x of [u, s, vt]) x.fill(NaN);
    return;
  }
  const f2 = qr(transpose(b, l, n), n, l); // Bᵀ = Q₂ [n, l] R₂ [l, l]
  const c = svd(transpose(f2.R, l, l), l, l); // R₂ᵀ = Ũ Σ Ṽᵀ (Ṽᵀ = c.Vt), f64
  const ur = new Float32Array(l * rank);
  for (let i = 0; i < l; i++) for (let j = 0; j < rank; j++) ur[i * rank + j] = c.U[i * l + j];
  gemm(false, false, m, rank, l, 1, q, ur, 0, u);
  gemm(false, true, rank, n, l, 1, Float32Array.from(c.Vt.subarray(0, rank * l)), Float32Array.from(f2.Q), 0, vt);
  for (let j = 0; j < rank; j++) s[j] = c.S[j];
  flipSigns(u, vt, m, n, rank);
}
