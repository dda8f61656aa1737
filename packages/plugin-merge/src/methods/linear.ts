/**
 * linear (mergekit/merge_methods/linear.py, Model Soups): out = Σ wᵢ θᵢ, divided by Σ wᵢ when
 * `normalize` (default true). In f32 as torch: each wᵢ θᵢ rounded, sums accumulated model by model.
 * A base model, when a recipe names one that is not among the models, is one more input (mergekit
 * adds it with the global parameters); the driver does that. Weights summing to 0 with normalize
 * are refused (mergekit would write inf/NaN).
 */
import { defineMergeMethod, f32, num, paramError, WEIGHT } from './define.js';

function weightSum(perModel: readonly Record<string, unknown>[]): number {
  let sum = 0;
  for (const o of perModel) sum = f32(sum + f32(num(o, 'weight')));
  return sum;
}

export const linear = defineMergeMethod(
  {
    name: 'linear',
    description: 'Weighted average of the models (Model Soups)',
    paper: 'https://arxiv.org/abs/2203.05482',
    base: 'none',
    models: { min: 1 },
    options: { normalize: { type: 'boolean', default: true, description: 'Divide by the sum of the weights' } },
    perModelOptions: { weight: WEIGHT },
    required: ['weight'],
    checkParams(p) {
      if (p.global.normalize === true && Math.abs(weightSum(p.perModel)) < 1e-8) {
        throw paramError('linear', p, 'the weights sum to 0 and normalize is on');
      }
    },
  },
  ({ models, perModel, global, out }) => {
    const w = perModel.map((o) => f32(num(o, 'weight')));
    const sum = weightSum(perModel);
    const normalize = global.normalize === true;
    for (let j = 0; j < out.length; j++) {
      let acc = 0;
      for (let i = 0; i < models.length; i++) acc = f32(acc + f32(w[i] * models[i][j]));
      out[j] = normalize ? acc / sum : acc;
    }
    return out;
  },
);
