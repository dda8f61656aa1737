/**
 * layernorm (ops/norm.ts), torch.nn.LayerNorm with weight and bias: f64 gradchecks of x, weight and
 * bias (each subset), forward values against the definition written out with the primitive ops, an
 * f32 run, shape errors, and no leaked tensors.
 */
import { describe, expect, test } from 'vitest';
import { backward } from '../src/autograd/index.js';
import { noGrad } from '../src/ops/tape.js';
import * as ops from '../src/ops/index.js';
import { tensor, tidy } from '../src/tensor/index.js';
import { expectGradcheck, expectNoLeak, maxAbsDiff, rand64 } from './ops-helpers.js';

describe('layernorm', () => {
  test('gradients of x, weight and bias (f64 central differences), also with only some requiring grad', () => {
    expectGradcheck((x, w, b) => ops.layernorm(x, w, b, 1e-5), [rand64([2, 3, 6], 1), rand64([6], 2), rand64([6], 3)]);
    const w = rand64([5], 4, false);
    const b = rand64([5], 5, false);
    expectGradcheck((x) => ops.layernorm(x, w, b), [rand64([4, 5], 6)]);
    const x = rand64([4, 5], 7, false);
    expectGradcheck((ww, bb) => ops.layernorm(x, ww, bb, 1e-3), [rand64([5], 8), rand64([5], 9)]);
    for (const t of [w, b, x]) t.dispose();
  });

  test('equals (x - mean) / sqrt(biased var + eps) * w + b built from primitives', () => {
    expectNoLeak(() => tidy(() => noGrad(() => {
      const x = rand64([3, 7], 1, false);
      const w = rand64([7], 2, false);
      const b = rand64([7], 3, false);
      const xc = ops.sub(x, ops.mean(x, -1, true));
      const want = ops.add(ops.mul(ops.mul(xc, ops.rsqrt(ops.addScalar(ops.mean(ops.mul(xc, xc), -1, true), 1e-5))), w), b);
      expect(maxAbsDiff(ops.layernorm(x, w, b).data, want.data)).toBeLessThan(1e-14);
    })));
  });

  test('f32: a constant row maps to the bias; gradients arrive at every input', () => {
    expectNoLeak(() => {
      const x = tensor([2, 2, 2, 1, 2, 3], [2, 3], { requiresGrad: true });
      const w = tensor([1, 2, 3], [3], { requiresGrad: true });
      const b = tensor([0.5, -1, 0], [3], { requiresGrad: true });
      tidy(() => {
        const y = ops.layernorm(x, w, b);
        expect(Array.from(y.data.subarray(0, 3))).toEqual([0.5, -1, 0]);
        const s = Math.sqrt(1.5); // row 2: mean 2, var 2/3, rstd ~ sqrt(1.5)
        expect(y.data[3]).toBeCloseTo(-s * 1 + 0.5, 3);
        backward(ops.sum(ops.mul(y, y)));
      });
      for (const t of [x, w, b]) {
        expect(t.grad?.shape).toEqual(t.shape);
        t.grad?.dispose();
        t.dispose();
      }
    });
  });

  test('a weight or bias of the wrong width is E_SHAPE', () => {
    const x = rand64([2, 4], 1, false);
    const [w, b] = [rand64([3], 2, false), rand64([4], 3, false)];
    expect(() => ops.layernorm(x, w, b)).toThrow(/layernorm: weight \/ bias \[3\] does not fit x \[2, 4\]/);
    for (const t of [x, w, b]) t.dispose();
  });
});
