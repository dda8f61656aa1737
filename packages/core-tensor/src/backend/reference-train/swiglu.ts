/**
 * Reference SwiGLU (LlamaMLP's act_fn(gate) * up with act_fn = silu, https://arxiv.org/abs/2002.05202),
 * elementwise over n = N*H, forward above backward.
 */
import type { F } from '../train-kernels.js';
import { trainChecks } from './checks.js';

/** 1 / (1 + e^-g): for g -> -inf, e^-g = inf and the result is 0, not NaN. */
function sigmoid(g: number): number {
  return 1 / (1 + Math.exp(-g));
}

/** out = silu(gate) * up = gate * sigmoid(gate) * up. */
export function swigluForward(out: F, gate: F, up: F, n: number): void {
  trainChecks.swigluForward(out, gate, up, n);
  for (let i = 0; i < n; i++) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

/** dup = dout silu(g); dgate = dout up s (1 + g (1 - s)) with s = sigmoid(g); both overwritten. */
export function swigluBackward(dgate: F, dup: F, dout: F, gate: F, up: F, n: number): void {
  trainChecks.swigluBackward(dgate, dup, dout, gate, up, n);
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    const s = sigmoid(g);
    const d = dout[i];
    const u = up[i];
    dgate[i] = d * u * s * (1 + g * (1 - s));
    dup[i] = d * g * s;
  }
}
