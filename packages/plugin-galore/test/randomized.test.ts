/**
 * svd=randomized (the default) against svd=exact: on gradients of rank <= rank the randomized SVD finds
 * the same top-r singular vectors (same canonical signs), so the GaLore trajectory is the exact-SVD one
 * to f32 rounding, bases recomputed (update_proj_gap 2) and moments carried over included; on full-rank
 * gradients the randomized basis is an approximation and the trajectories differ.
 */
import type { Tensor } from '@peft/core-tensor';
import { describe, expect, it } from 'vitest';
import { galoreOptimizer } from '../src/index.js';
import { KERNELS, makeParams, maxAbsDiff, optimizerFor, stepWith } from './helpers.js';

const SHAPES: [string, number[]][] = [['model.layers.0.self_attn.q_proj.weight', [60, 40]], ['model.layers.0.mlp.down_proj.weight', [32, 90]]];

/** A gradient of rank `k`: Σ_j c_j a_j b_jᵀ with step-dependent factors. */
const lowRank = (k: number, step: number) => (name: string, t: Tensor) => {
  const [m, n] = t.shape;
  const g = new Float32Array(m * n);
  for (let j = 0; j < k; j++) {
    for (let i = 0; i < m; i++) for (let c = 0; c < n; c++) g[i * n + c] += (3 / (1 + j)) * Math.sin(i * (j + 1) + step) * Math.cos(c * (j + 2) - name.length);
  }
  return g;
};

function trajectory(svd: string, grads: (step: number) => (n: string, t: Tensor) => Float32Array, kernels: (typeof KERNELS)[number][1]) {
  const params = makeParams(SHAPES.map(([n, s]) => [n, s, new Float32Array(s[0] * s[1])]));
  const opt = optimizerFor(galoreOptimizer, params, { rank: 3, update_proj_gap: 2, scale: 1, svd }, kernels, 5);
  for (let s = 1; s <= 6; s++) stepWith(opt, params, 1e-2, grads(s));
  opt.dispose();
  return params.map(([, t]) => t.data);
}

describe.each(KERNELS)('on the %s kernels', (_label, kernels) => {
  it('equals the exact-SVD trajectory on gradients of rank <= rank', () => {
    const exact = trajectory('exact', (s) => lowRank(3, s), kernels);
    const fast = trajectory('randomized', (s) => lowRank(3, s), kernels);
    exact.forEach((x, i) => expect(maxAbsDiff(fast[i], x)).toBeLessThan(1e-5));
  });

  it('approximates it on full-rank gradients', () => {
    const exact = trajectory('exact', (s) => lowRank(30, s), kernels);
    const fast = trajectory('randomized', (s) => lowRank(30, s), kernels);
    const d = exact.map((x, i) => maxAbsDiff(fast[i], x));
    expect(Math.max(...d)).toBeGreaterThan(1e-6);
    expect(Math.max(...d)).toBeLessThan(0.2);
  });
});
