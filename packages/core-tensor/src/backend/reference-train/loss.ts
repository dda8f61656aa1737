/**
 * Reference cross-entropy over one chunk of logit rows, fused with its gradient (the chunk is
 * overwritten in place, so the caller never holds N x V logits and their gradient at once).
 * Not here: the mean over non-ignored rows; the caller folds 1/count into gradScale and sums loss.
 */
import type { F } from '../train-kernels.js';
import { trainChecks } from './checks.js';

/**
 * logits: [n,V] in, gradScale * (softmax - onehot(target)) out; loss: [n] = logsumexp(row) - row[target];
 * ignored rows (target == ignoreIndex) give loss 0 and a zero gradient row.
 */
export function crossEntropyRows(loss: F, logits: F, targets: Int32Array, n: number, V: number,
  ignoreIndex: number, gradScale: number): void {
  trainChecks.crossEntropyRows(loss, logits, targets, n, V, ignoreIndex, gradScale);
  for (let i = 0; i < n; i++) {
    const row = i * V;
    const t = targets[i];
    if (t === ignoreIndex) {
      loss[i] = 0;
      logits.fill(0, row, row + V);
      continue;
    }
    let max = -Infinity;
    for (let j = 0; j < V; j++) max = Math.max(max, logits[row + j]);
    let sum = 0;
    for (let j = 0; j < V; j++) sum += Math.exp(logits[row + j] - max);
    const lse = max + Math.log(sum);
    loss[i] = lse - logits[row + t]; // read the target logit before the row is overwritten
    for (let j = 0; j < V; j++) logits[row + j] = gradScale * (Math.exp(logits[row + j] - lse) - (j === t ? 1 : 0));
  }
}
