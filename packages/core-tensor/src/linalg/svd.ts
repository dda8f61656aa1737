/**
 * Thin singular value decomposition in f64 by one-sided (Hestenes) Jacobi: A [m, n] = U diag(S) Vt
 * with k = min(m, n), U [m, k] and Vt [k, n] with orthonormal columns / rows, S [k] descending.
 *
 * Why Jacobi: it is short, needs no bidiagonalization, and computes every singular value to high
 * relative accuracy (Demmel & Veselić 1992), which is what PiSSA / LoftQ / merge truncations need
 * on the adapter-sized matrices they see. Cost: about 6-10 sweeps of k²/2 column-pair rotations of
 * length k (a matrix more than twice as tall as wide, or wide as tall, is first reduced to k x k by
 * QR), i.e. O(k³) per sweep, growing 8x per doubling of k. Measured in pure JS on one core: ~0.1 s
 * at 128², ~0.4 s at 256², ~4 s at 512²; so ~30-60 s at 1024² and far too slow at 4096² (a 7B
 * model's projections): there, use svdOfProduct (lowrank.ts) when the matrix is a low-rank product
 * B·A, or precompute offline.
 *
 * Signs are not unique: (u_i, v_i) and (-u_i, -v_i) are both valid, and the basis of a repeated
 * singular value is arbitrary; compare U diag(S) Vt or |u_i·u'_i|, never raw vectors, with another
 * library's output. Columns of U for zero singular values are completed to an orthonormal set.
 * Not here: truncation helpers (lowrank.ts), QR (qr.ts), anything on Tensors.
 */
import { PeftError } from '../errors.js';
import { checkMatrix, matmul, transpose } from './matrix.js';
import { qr } from './qr.js';

export interface Svd {
  /** [m, k] row-major, orthonormal columns */
  U: Float64Array;
  /** [k] descending, >= 0 */
  S: Float64Array;
  /** [k, n] row-major, orthonormal rows */
  Vt: Float64Array;
  m: number;
  n: number;
  k: number;
}

const EPS = 2.220446049250313e-16;
const MAX_SWEEPS = 100;

function dot(x: Float64Array, xo: number, y: Float64Array, yo: number, len: number): number {
  let s = 0;
  for (let i = 0; i < len; i++) s += x[xo + i] * y[yo + i];
  return s;
}

/** x <- c x - s y, y <- s x + c y over `len` elements. */
function rotate(x: Float64Array, xo: number, y: Float64Array, yo: number, len: number, c: number, s: number): void {
  for (let i = 0; i < len; i++) {
    const a = x[xo + i];
    const b = y[yo + i];
    x[xo + i] = c * a - s * b;
    y[yo + i] = s * a + c * b;
  }
}

/**
 * Orthogonalizes the k vectors of length `len` stored as rows of `w` ([k, len]) by plane rotations,
 * accumulating them in v ([k, k], row j = column j of V). On return w_j = σ_j u_j.
 */
function jacobi(w: Float64Array, k: number, len: number): Float64Array {
  const v = new Float64Array(k * k);
  for (let j = 0; j < k; j++) v[j * k + j] = 1;
  const tol = Math.sqrt(len) * EPS;
  const norms = new Float64Array(k);
  for (let sweep = 0; sweep < MAX_SWEEPS; sweep++) {
    // Norms are recomputed each sweep and updated in closed form inside it (saves 2 of 3 dot products).
    let maxNorm = 0;
    for (let j = 0; j < k; j++) maxNorm = Math.max(maxNorm, (norms[j] = dot(w, j * len, w, j * len, len)));
    // A column below eps·len·σ_max is round-off (e.g. what is left of a dependent column): rotating it
    // against the others only stirs noise and never converges, so it is left alone (and replaced by an
    // orthonormal completion in normalizeRows).
    const negligible = maxNorm * (EPS * len) ** 2;
    let rotations = 0;
    for (let p = 0; p < k - 1; p++) {
      for (let q = p + 1; q < k; q++) {
        const alpha = norms[p];
        const beta = norms[q];
        const gamma = dot(w, p * len, w, q * len, len);
        if (gamma === 0 || alpha <= negligible || beta <= negligible || Math.abs(gamma) <= tol * Math.sqrt(alpha * beta)) continue;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        rotate(w, p * len, w, q * len, len, c, s);
        rotate(v, p * k, v, q * k, k, c, s);
        norms[p] = alpha - t * gamma;
        norms[q] = beta + t * gamma;
        // The closed form cancels when a column nearly vanishes: measure it again then.
        if (norms[p] < 1e-3 * alpha) norms[p] = dot(w, p * len, w, p * len, len);
        rotations++;
      }
    }
    if (rotations === 0) return v;
  }
  throw new PeftError('E_RUNTIME', `svd: one-sided Jacobi did not converge in ${MAX_SWEEPS} sweeps (${k} x ${len})`);
}

/**
 * Turns w (rows = σ_j u_j, length len) into unit vectors in place and returns σ. A row at round-off
 * level (σ_j <= eps·len·σ_max, its direction is noise) is replaced by a unit vector orthogonal to all
 * others (Gram-Schmidt on the standard basis, twice); its σ_j is kept as computed.
 */
function normalizeRows(w: Float64Array, k: number, len: number): Float64Array {
  const sigma = new Float64Array(k);
  const done: number[] = [];
  const zero: number[] = [];
  let max = 0;
  for (let j = 0; j < k; j++) max = Math.max(max, (sigma[j] = Math.sqrt(dot(w, j * len, w, j * len, len))));
  const negligible = max * EPS * len; // the threshold jacobi stopped rotating at
  for (let j = 0; j < k; j++) {
    if (sigma[j] <= negligible) zero.push(j);
    else {
      for (let i = 0; i < len; i++) w[j * len + i] /= sigma[j];
      done.push(j);
    }
  }
  let e = 0;
  for (const j of zero) {
    const off = j * len;
    for (; e < len; e++) {
      w.fill(0, off, off + len);
      w[off + e] = 1;
      for (let pass = 0; pass < 2; pass++) {
        for (const o of done) {
          const d = dot(w, off, w, o * len, len);
          for (let i = 0; i < len; i++) w[off + i] -= d * w[o * len + i];
        }
      }
      const norm = Math.sqrt(dot(w, off, w, off, len));
      if (norm > 0.5) {
        for (let i = 0; i < len; i++) w[off + i] /= norm;
        done.push(j);
        e++;
        break;
      }
    }
  }
  return sigma;
}

/** Order of the singular values, largest first (ties keep their index order). */
function descending(sigma: Float64Array): number[] {
  return [...sigma.keys()].sort((a, b) => sigma[b] - sigma[a] || a - b);
}

/** Jacobi on the k vectors of A (its columns when tall, else its rows), sorted; no pre-reduction. */
function jacobiSvd(a: ArrayLike<number>, m: number, n: number): Svd {
  const tall = m >= n;
  // Jacobi works on k vectors of length len stored as rows: the columns of A when tall, else its rows
  // (the columns of Aᵀ, so A = V' S U'ᵀ). Either way the vectors are contiguous.
  const k = Math.min(m, n);
  const len = Math.max(m, n);
  const w = new Float64Array(k * len);
  if (tall) for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) w[j * m + i] = a[i * n + j];
  else for (let i = 0; i < m * n; i++) w[i] = a[i];
  const v = jacobi(w, k, len);
  const sigma = normalizeRows(w, k, len);
  const order = descending(sigma);
  const U = new Float64Array(m * k);
  const Vt = new Float64Array(k * n);
  const S = new Float64Array(k);
  order.forEach((src, dst) => {
    S[dst] = sigma[src];
    // tall: U[:, dst] = w_src, Vt[dst, :] = v_src.  wide: U[:, dst] = v_src, Vt[dst, :] = w_src.
    const left = tall ? w.subarray(src * len, (src + 1) * len) : v.subarray(src * k, (src + 1) * k);
    const right = tall ? v.subarray(src * k, (src + 1) * k) : w.subarray(src * len, (src + 1) * len);
    for (let i = 0; i < m; i++) U[i * k + dst] = left[i];
    Vt.set(right, dst * n);
  });
  return { U, S, Vt, m, n, k };
}

/**
 * Thin SVD of a [m, n] (row-major, any numeric array; computed in f64).
 * Returns U [m, k], S [k] (descending), Vt [k, n], k = min(m, n).
 * A matrix at least twice as tall as wide is first reduced by QR (A = Q R, then R = Ur S Vt and
 * U = Q Ur; likewise Aᵀ for a wide one), so the Jacobi sweeps run on k x k instead of k x max(m, n).
 */
export function svd(a: ArrayLike<number>, m: number, n: number): Svd {
  checkMatrix('svd', a, m, n);
  if (m >= 2 * n) {
    const f = qr(a, m, n); // Q [m, n], R [n, n]
    const c = jacobiSvd(f.R, n, n);
    return { U: matmul(f.Q, c.U, m, n, n), S: c.S, Vt: c.Vt, m, n, k: n };
  }
  if (n >= 2 * m) {
    const f = qr(transpose(a, m, n), n, m); // Aᵀ = Q [n, m] R [m, m]  =>  A = Rᵀ Qᵀ
    const c = jacobiSvd(transpose(f.R, m, m), m, m);
    return { U: c.U, S: c.S, Vt: matmul(c.Vt, transpose(f.Q, n, m), m, m, n), m, n, k: m };
  }
  return jacobiSvd(a, m, n);
}
