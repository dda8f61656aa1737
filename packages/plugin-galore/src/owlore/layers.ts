/**
 * OwLore's layers and their sampling probabilities (Li et al. 2024, arXiv 2405.18380):
 * - a parameter belongs to decoder layer ℓ when its name has `layers.ℓ.` (HF `model.layers.ℓ.`, PEFT
 *   `base_model.model.model.layers.ℓ.`); parameters outside the layers (embeddings, final norm, LM
 *   head) are never frozen, as OwLore's callback leaves them trainable (LISA);
 * - the outlier ratio of a layer (Layerwise Outlier Distribution, OWL's lib/prune_all.py
 *   check_outlier_mean): D_ℓ = 100 · #{A > M · mean(A)} / #A over the scores A of all its 2-D weights.
 *   OWL's score is Wanda's |W_ij| · ||X_j||₂ with activation norms from calibration data; an optimizer
 *   sees weights only, so here ||X_j|| = 1 (A = |W|). OwLore itself reads precomputed ratios from a file
 *   (metric_cache/llama2_7b_ratio_13.txt: M = 13 by its name): `outlier_scores` takes such values;
 * - p by prob_mode (switch_active_layers): owl D / ΣD; owl_reverse (max p - p) / Σ; uniform; increase /
 *   decrease linear in depth. (OwLore's uniform mode calls numpy with p=None, a permutation; the same
 *   distribution is drawn here through the p path.)
 * Not here: the draw (sampling.ts), freezing (optimizer.ts).
 */
import { PeftError, type Tensor } from '@peft/core-tensor';

export const PROB_MODES = ['owl', 'owl_reverse', 'uniform', 'increase', 'decrease'] as const;
export type ProbMode = (typeof PROB_MODES)[number];

const LAYER = /(?:^|\.)layers\.(\d+)\./;

/** The decoder layer a parameter name belongs to, or undefined. */
export function layerOf(name: string): number | undefined {
  const m = LAYER.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** OWL's check_outlier_mean over |W| of `weights`: 100 · #{|w| > M · mean|w|} / count. */
export function outlierRatio(weights: readonly ArrayLike<number>[], threshold: number): number {
  let sum = 0;
  let count = 0;
  for (const w of weights) {
    for (let i = 0; i < w.length; i++) sum += Math.abs(w[i]);
    count += w.length;
  }
  if (count === 0) return 0;
  const cut = (sum / count) * threshold;
  let above = 0;
  for (const w of weights) for (let i = 0; i < w.length; i++) if (Math.abs(w[i]) > cut) above++;
  return (100 * above) / count;
}

export interface LayerPlan {
  /** The layer indices with trainable parameters, ascending. */
  layers: number[];
  /** Sampling probability of each of `layers`. */
  probs: number[];
}

export interface ProbOptions {
  mode: ProbMode;
  threshold: number;
  /** One score per model layer (index = layer), or empty: the ratios of the trainable 2-D weights. */
  scores: readonly number[];
}

function scoresOf(byLayer: Map<number, [string, Tensor][]>, layers: number[], o: ProbOptions): number[] {
  const bad = (msg: string) => new PeftError('E_INPUT', `owlore: ${msg}`);
  if (o.scores.length > 0) {
    if (o.scores.length <= layers[layers.length - 1]) throw bad(`outlier_scores has ${o.scores.length} values, the model has layer ${layers[layers.length - 1]}`);
    if (!o.scores.every((s) => Number.isFinite(s) && s >= 0)) throw bad('outlier_scores must be finite numbers >= 0');
    return layers.map((l) => o.scores[l]);
  }
  const ratios = layers.map((l) => outlierRatio(byLayer.get(l)!.filter(([, t]) => t.shape.length === 2).map(([, t]) => t.data), o.threshold));
  if (ratios.every((r) => r === 0)) {
    throw bad(`no layer's trainable weights have values above ${o.threshold} x their mean magnitude (LoRA factors have none): ` +
      'give outlier_scores (one per layer, e.g. OwLore\'s metric_cache file) or another prob_mode');
  }
  return ratios;
}

function normalised(w: number[]): number[] {
  const s = w.reduce((a, b) => a + b, 0);
  return w.map((x) => x / s);
}

/** The layers of `params` and the probability OwLore samples each with. */
export function planLayers(params: readonly [string, Tensor][], o: ProbOptions): LayerPlan {
  const byLayer = new Map<number, [string, Tensor][]>();
  for (const p of params) {
    const l = layerOf(p[0]);
    if (l !== undefined) byLayer.set(l, [...(byLayer.get(l) ?? []), p]);
  }
  const layers = [...byLayer.keys()].sort((a, b) => a - b);
  if (layers.length === 0) throw new PeftError('E_INPUT', 'owlore: no trainable parameter belongs to a decoder layer (names with "layers.N.")');
  const L = layers.length;
  let probs: number[];
  if (o.mode === 'uniform') probs = layers.map(() => 1 / L);
  else if (o.mode === 'increase') probs = normalised(layers.map((_, i) => i + 1));
  else if (o.mode === 'decrease') probs = normalised(layers.map((_, i) => L - i));
  else {
    probs = normalised(scoresOf(byLayer, layers, o));
    if (o.mode === 'owl_reverse') {
      const max = probs.reduce((m, p) => Math.max(m, p), -Infinity);
      probs = normalised(probs.map((p) => max - p));
    }
  }
  return { layers, probs };
}
