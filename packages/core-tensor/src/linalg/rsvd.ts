/**
 * Randomized truncated SVD (Halko, Martinsson & Tropp 2011): the top `rank` singular triplets of a
 * large matrix for a few GEMMs, where the exact SVD (svd.ts, O(k³) Jacobi in JS) is far too slow —
 * GaLore's projector (4096 x 4096, rank 128: ~1.2 s natively here), WeLore, adapter merges.
 * It runs on the training kernels it is given (`TrainKernels.rsvd`: kernels-napi's src/linalg/rsvd.rs
 * natively, backend/reference-train/rsvd.ts in pure TS), so `--backend reference` reaches it. (linalg/
 * sits below backend/: the reference kernel builds on qr.ts and svd.ts, so this wrapper takes the
 * kernels as an argument instead of choosing them.)
 * Accuracy: exact (to f32 rounding) when rank(A) <= rank + oversample; otherwise σ_j is underestimated
 * by a factor that shrinks like (σ_{l+1}/σ_j)^(2·powerIters+1) (l = rank + oversample, Halko et al.
 * §10), so more power iterations buy accuracy on slowly decaying spectra.
 * Not here: the exact SVD (svd.ts), rank selection.
 */
import { checkMatrix } from './matrix.js';

/** The kernel this calls: TrainKernels.rsvd (backend/train-kernels.ts documents it), native or reference. */
export interface RsvdKernels {
  rsvd(u: Float32Array, s: Float32Array, vt: Float32Array, a: Float32Array, m: number, n: number, rank: number,
    oversample: number, powerIters: number, seed: number): void;
}

export interface RandomizedSvdOptions {
  /** Extra columns of the range finder (default 10, as scikit-learn's n_oversamples). */
  oversample?: number;
  /** Power iterations, each re-orthonormalised (default 2, as torch.svd_lowrank's niter). */
  powerIters?: number;
  /** Seed of the Gaussian test matrix (u32, default 0): same seed, same bits. */
  seed?: number;
}

export const RSVD_DEFAULTS = { oversample: 10, powerIters: 2 } as const;

export interface RandomizedSvd {
  /** [m, k] row-major, orthonormal columns, each with its largest-|.| entry positive */
  U: Float32Array;
  /** [k] descending */
  S: Float32Array;
  /** [k, n] row-major, orthonormal rows */
  Vt: Float32Array;
  m: number;
  n: number;
  k: number;
}

/** The top `rank` triplets of a [m, n] (row-major f32) on `k` (a run's TrainKernels, or getTrainKernels()). */
export function randomizedSvd(k: RsvdKernels, a: Float32Array, m: number, n: number, rank: number,
  o: RandomizedSvdOptions = {}): RandomizedSvd {
  checkMatrix('randomizedSvd', a, m, n);
  const U = new Float32Array(m * rank);
  const S = new Float32Array(rank);
  const Vt = new Float32Array(rank * n);
  k.rsvd(U, S, Vt, a, m, n, rank, o.oversample ?? RSVD_DEFAULTS.oversample, o.powerIters ?? RSVD_DEFAULTS.powerIters, o.seed ?? 0);
  return { U, S, Vt, m, n, k: rank };
}
