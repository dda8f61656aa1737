/**
 * Reference rotary embedding (HF rotate_half layout: the pair of element i is i + hd/2, not 2i+1;
 * https://arxiv.org/abs/2104.09864). The tables hold one half, [maxPos, hd/2]: HF's cat(freqs, freqs)
 * repeats it. Building the tables (default / llama3 scaling) is model code, not a kernel.
 */
import type { F } from '../train-kernels.js';
import { trainChecks } from './checks.js';

/**
 * Rotates every (i, i+hd/2) pair of y's rows by the angle of its row's position: sign +1 applies R
 * (forward), -1 applies R^T = R^-1 (backward). x: [BT, heads, hd]; y may alias x (both halves of a pair
 * are read before either is written).
 */
function rotate(y: F, x: F, cos: F, sin: F, pos: Int32Array, BT: number, heads: number, hd: number,
  sign: 1 | -1): void {
  const half = hd / 2;
  for (let r = 0; r < BT; r++) {
    const tab = pos[r] * half;
    for (let h = 0; h < heads; h++) {
      const base = (r * heads + h) * hd;
      for (let i = 0; i < half; i++) {
        const c = cos[tab + i];
        const s = sign * sin[tab + i];
        const x1 = x[base + i];
        const x2 = x[base + i + half];
        y[base + i] = x1 * c - x2 * s;
        y[base + i + half] = x2 * c + x1 * s;
      }
    }
  }
}

/** out[i] = x[i] cos - x[i+hd/2] sin; out[i+hd/2] = x[i+hd/2] cos + x[i] sin. */
export function ropeForward(out: F, x: F, cos: F, sin: F, pos: Int32Array,
  BT: number, heads: number, hd: number): void {
  trainChecks.ropeForward(out, x, cos, sin, pos, BT, heads, hd);
  rotate(out, x, cos, sin, pos, BT, heads, hd, 1);
}

/** The rotation is orthogonal, so its adjoint is the inverse rotation: dx = R^T dout. */
export function ropeBackward(dx: F, dout: F, cos: F, sin: F, pos: Int32Array,
  BT: number, heads: number, hd: number): void {
  trainChecks.ropeBackward(dx, dout, cos, sin, pos, BT, heads, hd);
  rotate(dx, dout, cos, sin, pos, BT, heads, hd, -1);
}
