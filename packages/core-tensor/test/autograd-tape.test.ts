/** The tape: backward, accumulation, no-grad, release of saved activations, gradcheck itself. */
import { describe, expect, test } from 'vitest';
import { backward, gradcheck } from '../src/autograd/index.js';
import { isGradEnabled, noGrad } from '../src/ops/tape.js';
import { add, exp, linear, mul, mulScalar, sum } from '../src/ops/index.js';
import { copyOf, memoryStats, ones, randn, tensor, tidy } from '../src/tensor/index.js';
import { expectNoLeak, f64, rand64 } from './ops-helpers.js';

describe('backward', () => {
  test('chain rule through shared inputs, and += across calls', () => {
    expectNoLeak(() => {
      const x = tensor([1, 2, 3], [3], { requiresGrad: true });
      // d/dx sum((x + x) * x) = 4x
      const loss = tidy(() => sum(mul(add(x, x), x)));
      expect(loss.item()).toBe(28);
      loss.backward();
      expect(x.grad!.toArray()).toEqual([4, 8, 12]);
      const again = tidy(() => sum(mulScalar(x, 2)));
      backward(again);
      expect(x.grad!.toArray()).toEqual([6, 10, 14]);
      for (const t of [loss, again, x]) t.dispose();
    });
  });

  test('an explicit upstream gradient; the root may be a leaf', () => {
    expectNoLeak(() => {
      const x = tensor([1, 2], [2], { requiresGrad: true });
      const y = exp(x);
      const g = tensor([1, -1], [2]);
      backward(y, g);
      expect(x.grad!.toArray()).toEqual([Math.fround(Math.exp(1)), -Math.fround(Math.exp(2))]);
      expect(g.toArray()).toEqual([1, -1]); // not consumed
      x.grad!.dispose();
      x.grad = undefined;
      backward(x);
      expect(x.grad!.toArray()).toEqual([1, 1]);
      for (const t of [x, y, g]) t.dispose();
    });
  });

  test('refuses tensors without grad and graphs already consumed', () => {
    expectNoLeak(() => {
      const c = ones([2]);
      expect(() => backward(c)).toThrow(/does not require grad/);
      const x = tensor([1], [1], { requiresGrad: true });
      const y = exp(x);
      backward(y);
      expect(() => backward(y)).toThrow(/already consumed/);
      const z = exp(y); // y is live but its graph is gone
      expect(() => backward(z)).toThrow(/already consumed/);
      for (const t of [c, x, y, z]) t.dispose();
    });
  });

  test('leaves that do not require grad get no gradient buffer', () => {
    expectNoLeak(() => {
      const w = randn([3, 2], { requiresGrad: true, seed: 1 });
      const frozen = randn([2, 3], { seed: 2 });
      const x = randn([4, 2], { seed: 3 });
      const loss = tidy(() => sum(linear(linear(x, w), frozen)));
      backward(loss);
      expect(w.grad?.shape).toEqual([3, 2]);
      expect(frozen.grad).toBeUndefined();
      expect(x.grad).toBeUndefined();
      for (const t of [w, frozen, x, loss]) t.dispose();
    });
  });
});

describe('saved activations', () => {
  test('no-grad records and saves nothing', () => {
    const x = tensor([0.5, 1], [2], { requiresGrad: true });
    const base = memoryStats();
    const y = noGrad(() => {
      expect(isGradEnabled()).toBe(false);
      return tidy(() => exp(exp(exp(x))));
    });
    expect(isGradEnabled()).toBe(true);
    expect(y.requiresGrad).toBe(false);
    expect(y.node).toBeUndefined();
    expect(memoryStats().storages).toBe(base.storages + 1); // only y
    y.dispose();
    x.dispose();
  });

  test('backward releases what each node saved; the tape keeps it until then', () => {
    const x = tensor([0.5, 1], [2], { requiresGrad: true });
    const base = memoryStats();
    const y = tidy(() => exp(exp(exp(x)))); // each exp saves its output
    expect(memoryStats().storages).toBe(base.storages + 3);
    expect(memoryStats().tensors).toBe(base.tensors + 4); // y + the tape's 3 private handles
    backward(y);
    expect(memoryStats().storages).toBe(base.storages + 2); // y and x.grad
    expect(memoryStats().tensors).toBe(base.tensors + 2);
    y.dispose();
    x.dispose();
    expect(memoryStats()).toEqual({ ...base, tensors: base.tensors - 1, storages: base.storages - 1, bytes: base.bytes - 8 });
  });

  test('disposing a graph without backward frees its saved activations', () => {
    expectNoLeak(() => {
      const x = tensor([0.5, 1], [2], { requiresGrad: true });
      const [a, b] = tidy(() => {
        const h = exp(x);
        return [exp(h), mul(h, h)];
      });
      a.dispose(); // b still needs h's graph
      const gx = tidy(() => {
        backward(b);
        return copyOf(x.grad!);
      });
      const h = Math.exp(0.5);
      expect(gx.data[0]).toBeCloseTo(2 * h * h, 5);
      for (const t of [b, x, gx]) t.dispose();
    });
  });
});

describe('gradcheck', () => {
  test('passes a correct gradient and leaves no .grad behind', () => {
    const x = rand64([3], 1);
    const r = gradcheck((t) => exp(mul(t, t)), [x]);
    expect(r.ok).toBe(true);
    expect(r.maxAbsError).toBeLessThan(1e-6);
    expect(x.grad).toBeUndefined();
    x.dispose();
  });

  test('catches a wrong gradient', () => {
    // y = x * stop_gradient(x): backward sees d/dx = x, finite differences see 2x.
    const x = f64([1, -2, 0.5], [3]);
    const r = gradcheck((t) => mul(t, noGrad(() => copyOf(t))), [x]);
    expect(r.ok).toBe(false);
    expect(r.failures.length).toBe(3);
    expect(r.failures[0]).toMatch(/^input 0 \[0\]: analytic/);
    x.dispose();
  });

  test('insists on f64', () => {
    const x = randn([2], { requiresGrad: true });
    expect(() => gradcheck((t) => exp(t), [x])).toThrow(/needs f64/);
    x.dispose();
    const y = rand64([2], 2);
    expect(gradcheck((t) => exp(t), [y]).ok).toBe(true);
    y.dispose();
  });
});
