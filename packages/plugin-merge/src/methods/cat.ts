/**
 * cat (PEFT's add_weighted_adapter combination_type="cat", without its cross terms): an exact merge of
 * low-rank adapters by concatenating their factors, so nothing is truncated:
 *
 *   A = [A₁; A₂; ...]  (rows stacked, [Σ rᵢ, in])      B = [w₁s₁B₁, w₂s₂B₂, ...]  (side by side, [out, Σ rᵢ])
 *   B·A = Σ wᵢ sᵢ Bᵢ Aᵢ, scale 1, rank Σ rᵢ
 *
 * Adapter merges use `mergeFactors`; on dense tensors (a model merge) cat is the weighted sum Σ wᵢ θᵢ
 * that the concatenated factors multiply to.
 */
import type { LowRankDelta, MergeFactorsInput } from '@peft/core-tensor';
import { defineMergeMethod, f32, num } from './define.js';

function mergeFactors({ module, outFeatures: out, inFeatures: n, parts }: MergeFactorsInput): LowRankDelta {
  const r = parts.reduce((s, p) => s + p.delta.r, 0);
  const A = new Float32Array(r * n);
  const B = new Float32Array(out * r);
  let k0 = 0;
  for (const { delta: d, options } of parts) {
    A.set(d.A, k0 * n);
    const c = num(options, 'weight') * d.scale; // wᵢ sᵢ in f64, rounded once per entry of B
    for (let i = 0; i < out; i++) for (let k = 0; k < d.r; k++) B[i * r + k0 + k] = c * d.B[i * d.r + k];
    k0 += d.r;
  }
  return { module, inFeatures: n, outFeatures: out, r, A, B, scale: 1 };
}

const dense = defineMergeMethod(
  {
    name: 'cat',
    description: 'Adapters: concatenate the low-rank factors (exact, rank Σ rᵢ); dense tensors: Σ wᵢ θᵢ',
    base: 'none',
    models: { min: 1 },
    perModelOptions: { weight: { type: 'number', default: 1, description: 'Weight of this adapter' } },
  },
  ({ models, perModel, out }) => {
    const w = perModel.map((o) => f32(num(o, 'weight')));
    for (let j = 0; j < out.length; j++) {
      let acc = 0;
      for (let i = 0; i < models.length; i++) acc = f32(acc + f32(w[i] * models[i][j]));
      out[j] = acc;
    }
    return out;
  },
);

export const cat = { ...dense, mergeFactors };
