/**
 * Gradient norm and clipping with torch.nn.utils.clip_grad_norm_ semantics (torch 1.13,
 * torch/nn/utils/clip_grad.py): the total L2 norm over every gradient; when maxNorm / (norm + 1e-6) < 1
 * each gradient is scaled by it, in f32 as torch multiplies. The norm is summed in f64 (torch sums in f32;
 * the two differ in the last bits only). Parameters without a grad are left out.
 */
import type { Tensor } from '../tensor/tensor.js';

/** The total L2 norm of the grads of `params` (0 when none has a grad; NaN/Infinity propagate). */
export function gradNorm(params: readonly Tensor[]): number {
  let sum = 0;
  for (const p of params) {
    const g = p.grad?.data;
    if (!g) continue;
    for (let i = 0; i < g.length; i++) sum += g[i] * g[i];
  }
  return Math.sqrt(sum);
}

/**
 * Clips the grads of `params` in place to a total norm of at most `maxNorm`; returns the norm before
 * clipping. A non-finite norm is returned without touching the grads (the trainer skips such a step).
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): number {
  const norm = gradNorm(params);
  if (!Number.isFinite(norm)) return norm;
  // torch: clip_coef = max_norm / (total_norm + 1e-6), all f32 tensor ops, clamped to 1
  const total = Math.fround(norm);
  const coef = Math.fround(Math.fround(maxNorm) / Math.fround(total + Math.fround(1e-6)));
  if (coef >= 1) return norm;
  for (const p of params) {
    const g = p.grad?.data;
    if (!g) continue;
    for (let i = 0; i < g.length; i++) g[i] = g[i] * coef;
  }
  return norm;
}
