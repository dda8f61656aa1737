/**
 * Every backward kernel of the reference against central finite differences of its forward kernel, in
 * f64, on random small shapes (fast-check with a fixed seed, so a failure reproduces and shrinks).
 * The scalar checked is L = sum(dout * out) for a random dout, so dL/dinput is what backward returns.
 * Tolerance: normwise 1e-6 (central differences with h = 1e-6 are good to ~1e-9 here).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { referenceTrainKernels as ref } from '../src/backend/reference-train/index.js';
import { expectClose, randn, rng } from './train-kernels-util.js';

const RTOL = 1e-6;
const RUNS = { seed: 20240611, numRuns: 30 };

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** dL/dx by central differences; x is perturbed in place and restored. */
function numGrad(L: () => number, x: Float64Array, h = 1e-6): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const x0 = x[i];
    x[i] = x0 + h;
    const up = L();
    x[i] = x0 - h;
    const down = L();
    x[i] = x0;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

const seed = fc.integer({ min: 0, max: 2 ** 31 - 1 });

describe('reference backward kernels match finite differences (f64, rtol 1e-6)', () => {
  it('rmsnormBackward: dx, and dweight accumulates', () => {
    const dims = [fc.integer({ min: 1, max: 3 }), fc.integer({ min: 2, max: 9 }), fc.constantFrom(1e-5, 0.1)] as const;
    fc.assert(fc.property(...dims, seed, (N, C, eps, s) => {
      const r = rng(s);
      const [x, w, dout] = [randn(r, N * C, 2), randn(r, C), randn(r, N * C)];
      const [out, rstd] = [new Float64Array(N * C), new Float64Array(N)];
      const L = () => {
        ref.rmsnormForward(out, rstd, x, w, N, C, eps);
        return dot(out, dout);
      };
      L();
      const [dx, dw0] = [new Float64Array(N * C), randn(r, C)];
      const dw = dw0.slice();
      ref.rmsnormBackward(dx, dw, dout, x, w, rstd, N, C);
      expectClose(dx, numGrad(L, x), RTOL, 'dx');
      expectClose(dw.map((v, j) => v - dw0[j]), numGrad(L, w), RTOL, 'dweight increment');
    }), RUNS);
  });

  it('swigluBackward: dgate, dup', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 20 }), seed, (n, s) => {
      const r = rng(s);
      const [g, u, dout, out] = [randn(r, n, 4), randn(r, n), randn(r, n), new Float64Array(n)];
      const L = () => {
        ref.swigluForward(out, g, u, n);
        return dot(out, dout);
      };
      const [dg, du] = [new Float64Array(n), new Float64Array(n)];
      ref.swigluBackward(dg, du, dout, g, u, n);
      expectClose(dg, numGrad(L, g), RTOL, 'dgate');
      expectClose(du, numGrad(L, u), RTOL, 'dup');
    }), RUNS);
  });

  it('ropeBackward: dx at random positions', () => {
    const int = (max: number) => fc.integer({ min: 1, max });
    const dims = [int(3), int(3), int(4)] as const; // BT, heads, hd/2
    fc.assert(fc.property(...dims, seed, (BT, heads, half, s) => {
      const r = rng(s);
      const [hd, maxPos] = [2 * half, 7];
      const ang = randn(r, maxPos * half, 3);
      const [cos, sin] = [ang.map(Math.cos), ang.map(Math.sin)];
      const pos = Int32Array.from({ length: BT }, () => Math.floor(r() * maxPos));
      const n = BT * heads * hd;
      const [x, dout, out, dx] = [randn(r, n), randn(r, n), new Float64Array(n), new Float64Array(n)];
      const L = () => {
        ref.ropeForward(out, x, cos, sin, pos, BT, heads, hd);
        return dot(out, dout);
      };
      ref.ropeBackward(dx, dout, cos, sin, pos, BT, heads, hd);
      expectClose(dx, numGrad(L, x), RTOL, 'dx');
    }), RUNS);
  });

  it('attentionBackward: dq, dk, dv with GQA and a KV-cache offset', () => {
    const shape = fc.record({
      B: fc.integer({ min: 1, max: 2 }), T: fc.integer({ min: 1, max: 4 }), extra: fc.integer({ min: 0, max: 3 }),
      nkv: fc.integer({ min: 1, max: 2 }), group: fc.integer({ min: 1, max: 3 }), hd: fc.integer({ min: 1, max: 5 }),
    });
    fc.assert(fc.property(shape, seed, ({ B, T, extra, nkv, group, hd }, s) => {
      const r = rng(s);
      const [S, nh, scale] = [T + extra, nkv * group, 0.2 + r()];
      const [nq, nk] = [B * T * nh * hd, B * S * nkv * hd];
      const [q, k, v, dout] = [randn(r, nq), randn(r, nk), randn(r, nk), randn(r, nq)];
      const [out, lse] = [new Float64Array(nq), new Float64Array(B * nh * T)];
      const L = () => {
        ref.attentionForward(out, lse, q, k, v, B, T, S, nh, nkv, hd, scale);
        return dot(out, dout);
      };
      L();
      const [dq, dk, dv] = [new Float64Array(nq), new Float64Array(nk), new Float64Array(nk)];
      ref.attentionBackward(dq, dk, dv, dout, q, k, v, out, lse, B, T, S, nh, nkv, hd, scale);
      expectClose(dq, numGrad(L, q), RTOL, 'dq');
      expectClose(dk, numGrad(L, k), RTOL, 'dk');
      expectClose(dv, numGrad(L, v), RTOL, 'dv');
    }), RUNS);
  });

  it('crossEntropyRows: the in-place gradient of gradScale * sum(loss)', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 7 }), seed, (n, V, s) => {
      const r = rng(s);
      const targets = Int32Array.from({ length: n }, () => (r() < 0.25 ? -100 : Math.floor(r() * V)));
      const [logits, loss, scale] = [randn(r, n * V, 3), new Float64Array(n), 0.1 + r()];
      const L = () => {
        ref.crossEntropyRows(loss, logits.slice(), targets, n, V, -100, scale);
        return scale * loss.reduce((a, b) => a + b, 0);
      };
      const grad = logits.slice();
      ref.crossEntropyRows(loss, grad, targets, n, V, -100, scale);
      expectClose(grad, numGrad(L, logits), RTOL, 'dlogits');
    }), RUNS);
  });
});

describe('reference kernel properties', () => {
  it('attention with a KV cache equals the last T rows of attention over the whole prefix', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 4 }), seed, (T, extra, s) => {
      const r = rng(s);
      const [S, nh, nkv, hd] = [T + extra, 4, 2, 3];
      const [qAll, k, v] = [randn(r, S * nh * hd), randn(r, S * nkv * hd), randn(r, S * nkv * hd)];
      const [outAll, lseAll] = [new Float64Array(S * nh * hd), new Float64Array(nh * S)];
      ref.attentionForward(outAll, lseAll, qAll, k, v, 1, S, S, nh, nkv, hd, 0.5);
      const [out, lse] = [new Float64Array(T * nh * hd), new Float64Array(nh * T)];
      ref.attentionForward(out, lse, qAll.subarray(extra * nh * hd), k, v, 1, T, S, nh, nkv, hd, 0.5);
      expectClose(out, outAll.subarray(extra * nh * hd), 1e-14, 'out');
      const lastRows = Array.from({ length: nh * T }, (_, i) => lseAll[Math.floor(i / T) * S + extra + (i % T)]);
      expectClose(lse, lastRows, 1e-14, 'lse');
    }), RUNS);
  });

  it('ropeBackward is the adjoint of ropeForward and undoes it', () => {
    const r = rng(7);
    const [BT, heads, hd, maxPos] = [4, 2, 6, 9];
    const ang = randn(r, maxPos * 3, 5);
    const [cos, sin] = [ang.map(Math.cos), ang.map(Math.sin)];
    const pos = Int32Array.of(0, 8, 3, 3);
    const [x, y, rx, ry] = [randn(r, 48), randn(r, 48), new Float64Array(48), new Float64Array(48)];
    ref.ropeForward(rx, x, cos, sin, pos, BT, heads, hd);
    ref.ropeBackward(ry, y, cos, sin, pos, BT, heads, hd);
    expect(dot(rx, y)).toBeCloseTo(dot(x, ry), 12);
    ref.ropeBackward(rx, rx, cos, sin, pos, BT, heads, hd);
    expectClose(rx, x, 1e-14, 'R^T R x');
  });
});
