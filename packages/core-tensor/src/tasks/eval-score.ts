/**
 * The one scoring step of `peft eval`: a teacher-forced forward over right-padded inputs, and the
 * negative log-likelihood (f64, from f32 logits) and argmax hit of each scored next-token prediction.
 * Causal attention: padding after a row never changes its positions. Logits exist only for the scored
 * positions, a chunk of rows at a time (never [B, T, V]).
 * Used by prompt/completion rows (eval.ts) and text windows (eval-text.ts). Not here: what to score.
 */
import type { TrainKernels } from '../backend/train-kernels.js';
import type { Llama } from '../models/llama.js';
import { noGrad } from '../ops/tape.js';
import { zeros } from '../tensor/create.js';
import { tidy } from '../tensor/scope.js';
import { argmax } from './generate.js';

/** One forward input; the predictions of its last targets.length positions are scored against targets (in order). */
export interface ScoredInput {
  input: readonly number[];
  targets: readonly number[];
}

export interface Score {
  /** Σ -log p(target) */
  lossSum: number;
  /** targets that are the argmax of their predicting logits */
  correct: number;
  /** targets scored */
  count: number;
}

/** -log softmax(row)[target] (f64) and whether target is the row's argmax. */
function scoreRow(row: Float32Array, target: number): [number, boolean] {
  const best = argmax(row);
  let sum = 0;
  for (let v = 0; v < row.length; v++) sum += Math.exp(row[v] - row[best]);
  return [row[best] + Math.log(sum) - row[target], best === target];
}

/** Teacher-forced scores of one batch of inputs, right-padded with padId. */
export function scoreBatch(model: Llama, batch: readonly ScoredInput[], padId: number, kernels?: TrainKernels): Score {
  const B = batch.length;
  const T = batch.reduce((m, r) => Math.max(m, r.input.length), 0);
  const data = new Int32Array(B * T).fill(padId);
  const predictors: number[] = []; // flat [B*T] index of the position predicting each scored token
  const targets: number[] = [];
  batch.forEach((r, b) => {
    if (r.targets.length > r.input.length) throw new RangeError(`${r.targets.length} targets for an input of ${r.input.length} positions`);
    data.set(r.input, b * T);
    const first = r.input.length - r.targets.length;
    r.targets.forEach((t, i) => {
      predictors.push(b * T + first + i);
      targets.push(t);
    });
  });
  const V = model.config.vocabSize;
  const score: Score = { lossSum: 0, correct: 0, count: targets.length };
  noGrad(() => tidy(() => {
    const hidden = model.forward({ data, shape: [B, T] }, { kernels }).hidden; // [B, T, C]
    const C = hidden.shape[2];
    const chunk = Math.max(1, Math.floor(2 ** 22 / V)); // logits of at most ~4M values at a time
    for (let r0 = 0; r0 < targets.length; r0 += chunk) {
      const n = Math.min(chunk, targets.length - r0);
      tidy(() => {
        const sel = zeros([n, C]); // the scored rows of hidden
        for (let i = 0; i < n; i++) sel.data.set(hidden.data.subarray(predictors[r0 + i] * C, (predictors[r0 + i] + 1) * C), i * C);
        const logits = model.logits(sel, { kernels }).data as Float32Array; // [n, V]
        for (let i = 0; i < n; i++) {
          const [loss, hit] = scoreRow(logits.subarray(i * V, (i + 1) * V), targets[r0 + i]);
          score.lossSum += loss;
          if (hit) score.correct++;
        }
      });
    }
  }));
  return score;
}
