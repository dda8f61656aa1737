/**
 * Reference RMSNorm (HF LlamaRMSNorm, https://arxiv.org/abs/1910.07467), forward above backward, each row
 * in JS doubles. Not here: the input-dtype round trip of HF (the caller picks the array type).
 */
import type { F } from '../train-kernels.js';
import { trainChecks } from './checks.js';

/** out, x: [N,C]; weight: [C]; rstd: [N] = 1/sqrt(mean_j x[i,j]^2 + eps), saved for backward. */
export function rmsnormForward(out: F, rstd: F, x: F, weight: F, N: number, C: number, eps: number): void {
  trainChecks.rmsnormForward(out, rstd, x, weight, N, C, eps);
  for (let i = 0; i < N; i++) {
    const row = i * C;
    let ss = 0;
    for (let j = 0; j < C; j++) ss += x[row + j] * x[row + j];
    const r = 1 / Math.sqrt(ss / C + eps);
    rstd[i] = r;
    for (let j = 0; j < C; j++) out[row + j] = x[row + j] * r * weight[j];
  }
}

/**
 * With y_j = w_j x_j r and dr/dx_j = -r^3 x_j / C:
 *   dx_j = r w_j dy_j - (r^3 / C) x_j sum_l dy_l w_l x_l   (overwritten)
 *   dweight_j += sum_i dy_ij x_ij r_i                          (accumulated)
 * Uses the rstd saved by the forward pass, as the native kernel does.
 */
export function rmsnormBackward(dx: F, dweight: F, dout: F, x: F, weight: F, rstd: F, N: number, C: number): void {
  trainChecks.rmsnormBackward(dx, dweight, dout, x, weight, rstd, N, C);
  const dw = new Float64Array(C); // summed in doubles, added to dweight once
  for (let i = 0; i < N; i++) {
    const row = i * C;
    const r = rstd[i];
    let dot = 0;
    for (let j = 0; j < C; j++) {
      dot += dout[row + j] * weight[j] * x[row + j];
      dw[j] += dout[row + j] * x[row + j] * r;
    }
    const k = (r * r * r * dot) / C;
    for (let j = 0; j < C; j++) dx[row + j] = r * weight[j] * dout[row + j] - k * x[row + j];
  }
  for (let j = 0; j < C; j++) dweight[j] += dw[j];
}
