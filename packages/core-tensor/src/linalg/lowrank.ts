/**
 * Low-rank helpers on top of svd/qr:
 *   lowRankApprox(A, r)   the best rank-r approximation (Eckart-Young) as two factors with the
 *                         singular values split evenly, L = U_r diag(√S_r) [m, r], R = diag(√S_r) Vt_r
 *                         [r, n] — LoftQ's _low_rank_decomposition (peft/utils/loftq_utils.py) and
 *                         the usual way to turn a ΔW back into LoRA factors (B = L, A = R).
 *   svdOfProduct(B, A)    the thin SVD of B [m, k] · A [k, n] without forming the m x n product:
 *                         QR of B and of Aᵀ, then the SVD of the small k x k core. O((m + n)k²), so it
 *                         suits concatenated LoRA factors (merging adapters) of any layer size.
 * Not here: randomized SVD (PEFT's pissa_niter_K uses torch.svd_lowrank; we do the exact SVD).
 */
import { PeftError } from '../errors.js';
import { checkMatrix, matmul, transpose } from './matrix.js';
import { qr } from './qr.js';
import { svd, type Svd } from './svd.js';

export interface LowRankFactors {
  /** [m, r] = U_r diag(sqrt S_r) */
  L: Float64Array;
  /** [r, n] = diag(sqrt S_r) Vt_r */
  R: Float64Array;
  /** all k = min(m, n) singular values, descending (the discarded tail gives the error: sqrt(Σ_{i>=r} S_i²)) */
  S: Float64Array;
  r: number;
}

/** Splits a thin SVD into rank-r factors L [m, r], R [r, n] with L·R the best rank-r approximation. */
export function factorsOf(f: Svd, r: number): LowRankFactors {
  if (!Number.isSafeInteger(r) || r < 1 || r > f.k) {
    throw new PeftError('E_INPUT', `rank ${r} must be an integer in 1..${f.k} for a [${f.m}, ${f.n}] matrix`);
  }
  const L = new Float64Array(f.m * r);
  const R = new Float64Array(r * f.n);
  for (let j = 0; j < r; j++) {
    const s = Math.sqrt(f.S[j]);
    for (let i = 0; i < f.m; i++) L[i * r + j] = f.U[i * f.k + j] * s;
    for (let i = 0; i < f.n; i++) R[j * f.n + i] = f.Vt[j * f.n + i] * s;
  }
  return { L, R, S: f.S, r };
}

/** The best rank-r approximation of a [m, n] as L [m, r] · R [r, n] (f64). */
export function lowRankApprox(a: ArrayLike<number>, m: number, n: number, r: number): LowRankFactors {
  return factorsOf(svd(a, m, n), r);
}

/**
 * Thin SVD of the product b [m, k] · a [k, n]. Returns kk = min(m, n, k) singular triplets: the
 * product has rank <= k, so the rest are zero. B = Qb Rb, Aᵀ = Qa Ra  =>  B·A = Qb (Rb Raᵀ) Qaᵀ.
 */
export function svdOfProduct(b: ArrayLike<number>, a: ArrayLike<number>, m: number, k: number, n: number): Svd {
  checkMatrix('svdOfProduct (B)', b, m, k);
  checkMatrix('svdOfProduct (A)', a, k, n);
  const fb = qr(b, m, k); // Qb [m, kb], Rb [kb, k]
  const fa = qr(transpose(a, k, n), n, k); // Qa [n, ka], Ra [ka, k]
  const core = matmul(fb.R, transpose(fa.R, fa.k, k), fb.k, k, fa.k); // [kb, ka]
  const c = svd(core, fb.k, fa.k); // Uc [kb, kk], Vtc [kk, ka]
  const U = matmul(fb.Q, c.U, m, fb.k, c.k); // [m, kk]
  const Vt = matmul(c.Vt, transpose(fa.Q, n, fa.k), c.k, fa.k, n); // [kk, n]
  return { U, S: c.S, Vt, m, n, k: c.k };
}
