/**
 * Reference AdamW step, exactly torch.optim.AdamW's single-tensor update (decoupled weight decay,
 * https://arxiv.org/abs/1711.05101), one element at a time in doubles.
 * Not here: parameter groups, amsgrad, the flat offset table (the caller passes one contiguous range).
 */
import type { F } from '../train-kernels.js';
import { trainChecks } from './checks.js';

/** step: the 1-based number of this step (torch increments state['step'] before using it). */
export function adamwStep(param: F, grad: F, m: F, v: F, n: number, lr: number, beta1: number, beta2: number,
  eps: number, weightDecay: number, step: number): void {
  trainChecks.adamwStep(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, step);
  const stepSize = lr / (1 - beta1 ** step);
  const bc2Sqrt = Math.sqrt(1 - beta2 ** step);
  const decay = 1 - lr * weightDecay;
  for (let i = 0; i < n; i++) {
    const g = grad[i];
    const mi = beta1 * m[i] + (1 - beta1) * g;
    const vi = beta2 * v[i] + (1 - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] * decay - (stepSize * mi) / (Math.sqrt(vi) / bc2Sqrt + eps);
  }
}
