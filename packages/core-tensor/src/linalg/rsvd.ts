/**
 * Randomized truncated SVD (Halko, Martinsson & Tropp 2011): the top `rank` singular triplets of a
 * large matrix for a few GEMMs, where the exact SVD (svd.ts, O(k³) Jacobi in JS) is far too slow —
 * GaLore's projector (4096 x 4096, rank 128: ~1.2 s natively here), WeLore, adapter merges.
 * It runs on the training kernels it is given (`TrainKernels.rsvd`: kernels-napi's src/linalg/rsvd.rs
 * natively, backend/reference-train/rsvd.ts in pure TS), so `--backend reference` reaches it.
 * Accuracy: exact (to f32 rounding) when rank(A) <= rank + oversample; otherwise σ_j is underestimated
 * by a factor that shrinks like (σ_{l+1}/σ_j)^(2·powerIters+1) (l = rank + oversample, Halko et al.
 * §10), so more power iterations buy accuracy on slowly decaying spectra.
 * Not here: the exact SVD (svd.ts), rank selection.
 */
import { getTrainKernels } from '../backend/native-train.js';
import type { TrainKernels } from '../backend/train-kernels.js';
import { checkMatrix } from './matrix.js';

export interface RandomizedSvdOptions {
  /** Extra columns of the range finder (default 10, as scikit-learn's n_oversamples). */
  oversample?: number;
  /** Power iterations, each re-orthonormalised (default 2, as torch.svd_lowrank's niter). */
  powerIters?: number;
  /** Seed of the Gaussian test matrix (u32, default 0): same seed, same bits. */
  seed?: number;
  /** The kernels to compute with (default getTrainKernels(): native when built). */
  kernels?: TrainKernels;
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

/** The top `rank` triplets of a [m, n] (row-major f32). */
export function randomizedSvd(a: Float32Array, m: number, n: number, rank: number, o: RandomizedSvdOptions = {}): RandomizedSvd {
  checkMatrix('randomizedSvd', a, m, n);
  const k = o.kernels ?? getTrainKernels();
  const U = new Float32Array(m * rank);
  const S = new Float32Array(rank);
  const Vt = new Float32Array(rank * n);
  k.rsvd(U, S, Vt, a, m, n, rank, o.oversample ?? RSVD_DEFAULTS.oversample, o.powerIters ?? RSVD_DEFAULTS.powerIters, o.seed ?? 0);
  return { U, S, Vt, m, n, k: rank };
}
