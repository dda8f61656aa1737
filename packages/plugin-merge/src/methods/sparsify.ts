/**
 * mergekit's sparsification of a task vector (mergekit/sparsify.py), in place on an f32 delta:
 *   magnitude           keep the top int(density * n) by |δ| (TIES)
 *   random              keep each element with probability density (DARE), mergekit's `bernoulli`
 *   magnitude_outliers  drop the int(gamma * n) largest, then the smallest, to keep int(density * n)
 *                       (Model Breadcrumbs)
 *   della_magprune      per row, keep with probability (density - ε) + rank_norm · 2ε, where rank_norm
 *                       runs 0..1 over the ascending magnitude ranks (DELLA)
 * then, with `rescale`, mergekit's `rescaled_masked_tensor(..., norm=l1)`: multiply by
 * ‖δ‖₁ / ‖masked‖₁ unless either is below 1e-7. Every method returns the delta untouched when
 * density >= 1. Random draws come from `rng` in flat (row-major) order, one per element.
 *
 * One deviation, on purpose: for magnitude_outliers mergekit slices `indices[n_bot:-n_top]`, which
 * keeps NOTHING when int(gamma * n) is 0 (a Python `[a:-0]` is empty), e.g. every tensor under 100
 * elements at the default gamma 0.01. Here n_top = 0 drops no outlier, as the method intends.
 * Not here: the checks of density/epsilon ranges (task-arithmetic.ts), mixing.
 */
import { f32 } from './define.js';
import { keepRankWindow, keepTopK, rowRanks } from './rank.js';

export type SparsifyMethod = 'magnitude' | 'random' | 'magnitude_outliers' | 'della_magprune';

export interface SparsifyArgs {
  density: number;
  /** magnitude_outliers only */
  gamma: number;
  /** della_magprune only */
  epsilon: number;
  rescale: boolean;
  shape: readonly number[];
  rng: { nextFloat(): number };
  /** At least d.length values of scratch memory, contents undefined. */
  scratch: Float32Array;
}

/** mergekit's rescale threshold (sparsify.py rescaled_masked_tensor eps). */
const RESCALE_EPS = 1e-7;

function l1(d: Float32Array): number {
  let s = 0;
  for (let j = 0; j < d.length; j++) s += Math.abs(d[j]);
  return s;
}

export function sparsify(d: Float32Array, method: SparsifyMethod, a: SparsifyArgs): void {
  if (a.density >= 1) return;
  const before = a.rescale ? l1(d) : 0;
  const n = d.length;
  switch (method) {
    case 'magnitude':
      keepTopK(d, Math.trunc(a.density * n), a.scratch);
      break;
    case 'random':
      bernoulli(d, f32(a.density), a.rng); // torch.full_like(tensor, density): p is an f32
      break;
    case 'magnitude_outliers': {
      const target = Math.trunc(a.density * n);
      let top = Math.trunc(a.gamma * n);
      let bottom = n - target - top;
      if (bottom < 0) {
        // fewer large weights are dropped so that the target density is reached
        top += bottom;
        bottom = 0;
      }
      keepRankWindow(d, bottom, n - top, a.scratch);
      break;
    }
    case 'della_magprune':
      dellaProbabilities(d, a);
      for (let j = 0; j < n; j++) if (!(a.rng.nextFloat() < a.scratch[j])) d[j] = 0;
      break;
  }
  if (!a.rescale) return;
  const after = l1(d);
  if (before < RESCALE_EPS || after < RESCALE_EPS) return;
  const scale = f32(before / after);
  for (let j = 0; j < n; j++) d[j] *= scale;
}

function bernoulli(d: Float32Array, p: number, rng: { nextFloat(): number }): void {
  for (let j = 0; j < d.length; j++) if (!(rng.nextFloat() < p)) d[j] = 0;
}

/**
 * Keep probabilities into a.scratch, ranked along dim 1 as mergekit's `argsort(dim=1)` (a 1-D tensor
 * is one row): shape [outer, axis, inner...]. Computed in f32 in torch's order:
 * (density - ε) + ((rank - 1) / (axis - 1)) * 2 * ε.
 */
function dellaProbabilities(d: Float32Array, a: SparsifyArgs): void {
  const n = d.length;
  const outer = a.shape.length < 2 ? 1 : a.shape[0];
  const axis = a.shape.length < 2 ? n : a.shape[1];
  const inner = n / (outer * axis);
  const low = f32(a.density - a.epsilon);
  const eps = f32(a.epsilon);
  const row = new Float32Array(axis);
  const ranks = new Float64Array(axis);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const at = (k: number) => (o * axis + k) * inner + i;
      for (let k = 0; k < axis; k++) row[k] = d[at(k)];
      rowRanks(row, ranks);
      for (let k = 0; k < axis; k++) {
        const rankNorm = axis > 1 ? Math.min(1, Math.max(0, f32((ranks[k] - 1) / (axis - 1)))) : 0;
        a.scratch[at(k)] = f32(low + f32(f32(rankNorm * 2) * eps));
      }
    }
  }
}
