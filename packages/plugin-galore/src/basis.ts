/**
 * The projection bases: the top-r left (U_r [m, r]) and right (V_rᵀ [r, n]) singular vectors of a
 * gradient G [m, n], by core's exact SVD (`svd=exact`, galore-torch's get_orthogonal_matrix takes a full
 * torch.linalg.svd) or by the randomized truncated SVD on the run's kernels (`svd=randomized`, the
 * default: a few GEMMs instead of an O(min(m,n)³) factorisation; seeded from the run's seed, the
 * parameter and the step, so a resumed run draws the same test matrix).
 * Sign convention: every vector is flipped so that its largest-|.| entry (the first on ties) is
 * positive — tensorly's svd_flip, which Natural GaLore's Tucker factors get; galore-torch keeps
 * LAPACK's arbitrary signs. GaLore keeps its moments across a change of basis, so the trajectory after
 * a subspace change depends on these signs: fixing them makes it reproducible (and comparable with the
 * torch reference, scripts/ref/galore_reference.py, which uses the same convention).
 * Not here: projecting with the bases (projection.ts).
 */
import { hashString, svd, Xoshiro128, type TrainKernels } from '@peft/core-tensor';

export type SvdMode = 'exact' | 'randomized';

export interface BasisSettings {
  svd: SvdMode;
  oversample: number;
  powerIters: number;
  /** The run's seed (OptimizerContext.seed). */
  seed: number;
}

/** The u32 seed of the randomized SVD of `param` at `step`: a function of (run seed, name, step) only. */
export function svdSeed(runSeed: number, param: string, step: number): number {
  return new Xoshiro128(runSeed >>> 0, (hashString(param) ^ Math.imul(step, 0x9e3779b9)) >>> 0).nextU32();
}

/** The sign that makes the vector x[base + i·stride] (i < len) have its largest-|.| entry (the first on ties) positive. */
function canonicalSign(x: ArrayLike<number>, base: number, len: number, stride: number): 1 | -1 {
  let at = 0;
  for (let i = 1; i < len; i++) if (Math.abs(x[base + i * stride]) > Math.abs(x[base + at * stride])) at = i;
  return x[base + at * stride] < 0 ? -1 : 1;
}

/** Where refresh() writes: either side may be absent (one-sided projections need one). */
export interface BasisOut {
  left?: Float32Array;
  right?: Float32Array;
}

/** Writes the top-`rank` canonical singular vectors of g [m, n] into `out` (left [m, rank], right [rank, n]). */
export function refreshBasis(k: TrainKernels, g: Float32Array, m: number, n: number, rank: number, s: BasisSettings,
  param: string, step: number, out: BasisOut): void {
  let U: ArrayLike<number>;
  let Vt: ArrayLike<number>;
  let uCols: number;
  if (s.svd === 'exact') {
    const f = svd(g, m, n); // f64; U [m, min(m, n)]
    [U, Vt, uCols] = [f.U, f.Vt, f.k];
  } else {
    const u = new Float32Array(m * rank);
    const vt = new Float32Array(rank * n);
    k.rsvd(u, new Float32Array(rank), vt, g, m, n, rank, s.oversample, s.powerIters, svdSeed(s.seed, param, step));
    [U, Vt, uCols] = [u, vt, rank];
  }
  for (let j = 0; j < rank; j++) {
    if (out.left) {
      const sign = canonicalSign(U, j, m, uCols);
      for (let i = 0; i < m; i++) out.left[i * rank + j] = sign * U[i * uCols + j];
    }
    if (out.right) {
      const sign = canonicalSign(Vt, j * n, n, 1);
      for (let c = 0; c < n; c++) out.right[j * n + c] = sign * Vt[j * n + c];
    }
  }
}
