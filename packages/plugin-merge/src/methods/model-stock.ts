/**
 * model_stock (mergekit/merge_methods/model_stock.py, Model Stock): with offsets δᵢ = θᵢ - θ_base
 * of N >= 2 models, cos = mean over pairs i < j of δᵢ·δⱼ / max(‖δᵢ‖‖δⱼ‖, 1e-6) clamped to [-1, 1],
 * t = N cos / (1 + (N - 1) cos), out = t · mean(θᵢ) + (1 - t) · θ_base. Over the whole flattened
 * tensor, or per row with `filter_wise` (rows = all leading dimensions; a 1-D tensor is one row).
 * Dot products accumulate in f64 (mergekit: torch f32); the mix is rounded to f32 as torch does.
 */
import { defineMergeMethod, f32 } from './define.js';

/** Model Stock's interpolation factor for one row [at, at + len). */
function rowT(base: Float32Array, ws: readonly Float32Array[], at: number, len: number): number {
  const n = ws.length;
  const sq = ws.map((w) => {
    let s = 0;
    for (let j = at; j < at + len; j++) s += (w[j] - base[j]) ** 2;
    return Math.sqrt(s);
  });
  let cosSum = 0;
  for (let a = 0; a < n; a++) {
    for (let b = a + 1; b < n; b++) {
      let dot = 0;
      for (let j = at; j < at + len; j++) dot += f32(ws[a][j] - base[j]) * f32(ws[b][j] - base[j]);
      cosSum += Math.min(1, Math.max(-1, dot / Math.max(sq[a] * sq[b], 1e-6)));
    }
  }
  const cos = cosSum / ((n * (n - 1)) / 2);
  return (n * cos) / (1 + (n - 1) * cos);
}

export const modelStock = defineMergeMethod(
  {
    name: 'model_stock',
    description: 'Model Stock: interpolate the models\' mean toward the base by the angle between their offsets',
    paper: 'https://arxiv.org/abs/2403.19522',
    base: 'required',
    models: { min: 2 },
    options: { filter_wise: { type: 'boolean', default: false, description: 'One interpolation factor per row instead of per tensor' } },
  },
  ({ base, models, global, shape, out }) => {
    const w0 = base!;
    const n = w0.length;
    const len = global.filter_wise === true && shape.length >= 2 ? shape[shape.length - 1] : n;
    for (let at = 0; at < n; at += len) {
      const t = f32(rowT(w0, models, at, len));
      const u = f32(1 - t);
      for (let j = at; j < at + len; j++) {
        let sum = 0;
        for (const w of models) sum = f32(sum + w[j]);
        out[j] = f32(t * f32(sum / models.length)) + f32(u * w0[j]);
      }
    }
    return out;
  },
);
