/** Non-fused ops: forward values, broadcasting, and a finite-difference gradcheck (f64) for each. */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { noGrad } from '../src/ops/tape.js';
import * as ops from '../src/ops/index.js';
import { memoryStats, tensor, tidy, type Tensor } from '../src/tensor/index.js';
import { expectGradcheck, expectNoLeak, f64, rand64 } from './ops-helpers.js';

/** |x| + 0.5: positive inputs for log / sqrt / rsqrt. */
function positive(shape: number[], seed: number): Tensor {
  const t = rand64(shape, seed, false);
  const p = f64(t.toArray().map((v) => Math.abs(v) + 0.5), shape);
  t.dispose();
  return p;
}

describe('broadcasting', () => {
  test('shapes follow numpy rules', () => {
    expect(ops.broadcastShape('t', [2, 3], [3])).toEqual([2, 3]);
    expect(ops.broadcastShape('t', [4, 1, 3], [2, 1])).toEqual([4, 2, 3]);
    expect(() => ops.broadcastShape('t', [2, 3], [2])).toThrow(/cannot broadcast/);
  });

  test('bias over rows, per-row scale, and both sides broadcast', () => {
    expectNoLeak(() => tidy(() => {
      const x = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
      expect(ops.add(x, tensor([10, 20, 30])).toArray()).toEqual([11, 22, 33, 14, 25, 36]);
      expect(ops.mul(x, tensor([2, -1], [2, 1])).toArray()).toEqual([2, 4, 6, -4, -5, -6]);
      const outer = ops.sub(tensor([1, 2], [2, 1]), tensor([10, 20, 30], [1, 3]));
      expect(outer.shape).toEqual([2, 3]);
      expect(outer.toArray()).toEqual([-9, -19, -29, -8, -18, -28]);
      expect(() => ops.add(x, tensor([1, 2]))).toThrow(/cannot broadcast/);
      expect(() => ops.add(x, tensor([1, 2, 3], [3], { dtype: 'f64' }))).toThrow(/mixed dtypes/);
    }));
  });

  const cases: [string, number[], number[]][] = [
    ['same', [2, 3], [2, 3]], ['trailing', [2, 3], [3]], ['column', [2, 3], [2, 1]],
    ['both', [3, 1, 2], [4, 1]], ['scalar', [2, 2], []],
  ];
  for (const [name, sa, sb] of cases) {
    test(`gradients of add / sub / mul / div sum back over broadcast dims (${name})`, () => {
      expectGradcheck((a, b) => ops.add(a, b), [rand64(sa, 1), rand64(sb, 2)]);
      expectGradcheck((a, b) => ops.sub(a, b), [rand64(sa, 3), rand64(sb, 4)]);
      expectGradcheck((a, b) => ops.mul(a, b), [rand64(sa, 5), rand64(sb, 6)]);
      expectGradcheck((a, b) => ops.div(a, b), [rand64(sa, 7), positive(sb, 8)]);
    });
  }

  test('sumTo is the adjoint of expandTo: <expand(x), y> = <x, sumTo(y)> (property)', () => {
    // An output shape and an input shape that broadcasts to it (dims set to 1, leading dims dropped).
    const shapes = fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 0, maxLength: 4 }).chain((out) => fc.tuple(
      fc.constant(out),
      fc.array(fc.boolean(), { minLength: out.length, maxLength: out.length }),
      fc.integer({ min: 0, max: out.length }),
    ).map(([o, ones, drop]) => [o, o.map((d, i) => (ones[i] ? 1 : d)).slice(drop)] as const));
    fc.assert(fc.property(shapes, fc.integer(), ([out, small], seed) => {
      expectNoLeak(() => tidy(() => {
        const x = rand64([...small], seed, false);
        const y = rand64([...out], seed + 1, false);
        const lhs = ops.sum(ops.mul(ops.expandTo(x, out), y)).item();
        const rhs = ops.sum(ops.mul(x, ops.sumTo(y, small))).item();
        expect(Math.abs(lhs - rhs)).toBeLessThan(1e-12 * (1 + Math.abs(lhs)));
        expect(ops.add(x, y).toArray()).toEqual(ops.add(ops.expandTo(x, out), y).toArray());
      }));
    }), { numRuns: 60 });
  });

  test('only the input that requires grad gets one', () => {
    const a = rand64([2, 3], 1);
    const b = rand64([3], 2, false);
    expectGradcheck((x) => ops.mul(x, b), [a]);
    expectGradcheck((x) => ops.div(b, x), [positive([2, 3], 3)]);
    b.dispose();
  });
});

describe('unary and scalar ops', () => {
  const unary: [string, (x: Tensor) => Tensor, boolean][] = [
    ['neg', ops.neg, false], ['exp', ops.exp, false], ['log', ops.log, true], ['sqrt', ops.sqrt, true],
    ['rsqrt', ops.rsqrt, true], ['sigmoid', ops.sigmoid, false], ['silu', ops.silu, false],
    ['mulScalar', (x) => ops.mulScalar(x, -2.5), false], ['addScalar', (x) => ops.addScalar(x, 3), false],
  ];
  for (const [name, f, pos] of unary) {
    test(`${name} gradient`, () => expectGradcheck(f, [pos ? positive([2, 3], 11) : rand64([2, 3], 11)]));
  }

  test('values, including sigmoid far from 0', () => {
    expectNoLeak(() => tidy(() => {
      const x = f64([-1000, -1, 0, 1, 1000], [5], false);
      expect(ops.sigmoid(x).toArray()).toEqual([0, 1 / (1 + Math.E), 0.5, 1 / (1 + Math.exp(-1)), 1]);
      expect(ops.silu(x).data[3]).toBeCloseTo(1 / (1 + Math.exp(-1)), 12);
      expect(ops.rsqrt(f64([4], [1], false)).item()).toBe(0.5);
      expect(ops.addScalar(ops.mulScalar(x, 2), 1).data[1]).toBe(-1);
    }));
  });
});

describe('reductions', () => {
  test('values', () => {
    expectNoLeak(() => tidy(() => {
      const x = tensor([1, 5, 3, 4, 2, 6], [2, 3]);
      expect(ops.sum(x).shape).toEqual([]);
      expect(ops.sum(x).item()).toBe(21);
      expect(ops.sum(x, 0).toArray()).toEqual([5, 7, 9]);
      expect(ops.sum(x, -1, true).shape).toEqual([2, 1]);
      expect(ops.mean(x, 1).toArray()).toEqual([3, 4]);
      expect(ops.max(x, 1).toArray()).toEqual([5, 6]);
      expect(ops.max(x, 0, true).toArray()).toEqual([4, 5, 6]);
      expect(() => ops.sum(x, 2)).toThrow(/axis 2 out of range/);
    }));
  });

  test('softmax is stable for large logits and sums to 1', () => {
    expectNoLeak(() => tidy(() => {
      const p = ops.softmax(f64([1000, 1001, 1002, -5, 0, 5], [2, 3], false));
      const e = [Math.exp(-2), Math.exp(-1), 1];
      const z = e[0] + e[1] + e[2];
      for (let i = 0; i < 3; i++) expect(p.data[i]).toBeCloseTo(e[i] / z, 14);
      expect(ops.sum(p, 1).toArray().map((v) => Math.round(v * 1e12) / 1e12)).toEqual([1, 1]);
      const lp = ops.logSoftmax(f64([1000, 1001, 1002], [3], false));
      expect(lp.data[2]).toBeCloseTo(-Math.log(z), 12);
    }));
  });

  test('gradients', () => {
    expectGradcheck((x) => ops.sum(x), [rand64([2, 3], 1)]);
    expectGradcheck((x) => ops.sum(x, 1), [rand64([2, 3, 2], 2)]);
    expectGradcheck((x) => ops.sum(x, 0, true), [rand64([2, 3], 3)]);
    expectGradcheck((x) => ops.mean(x, -1), [rand64([3, 4], 4)]);
    expectGradcheck((x) => ops.mean(x), [rand64([3, 4], 4)]);
    expectGradcheck((x) => ops.max(x, 1), [rand64([2, 4, 3], 5)]);
    expectGradcheck((x) => ops.softmax(x, -1), [rand64([3, 5], 6)]);
    expectGradcheck((x) => ops.softmax(x, 0), [rand64([3, 2], 7)]);
    expectGradcheck((x) => ops.logSoftmax(x), [rand64([2, 5], 8)]);
  });
});

describe('movement', () => {
  test('values', () => {
    expectNoLeak(() => tidy(() => {
      const x = tensor([0, 1, 2, 3, 4, 5], [1, 2, 3]);
      const t = ops.transpose(x, 2, 1);
      expect(t.shape).toEqual([1, 3, 2]);
      expect(t.toArray()).toEqual([0, 3, 1, 4, 2, 5]);
      expect(ops.transpose(tensor([...Array(24).keys()], [2, 3, 4]), 0, 2).data.slice(0, 4)).toEqual(
        new Float32Array([0, 12, 4, 16]));
      expect(ops.transpose(x, 1, -2).toArray()).toEqual(x.toArray());
      expect(ops.slice(x, 2, 1, 3).toArray()).toEqual([1, 2, 4, 5]);
      expect(ops.slice(x, 1, 1, 1).shape).toEqual([1, 0, 3]);
      expect(ops.concat([x, ops.slice(x, 2, 0, 1)], 2).toArray()).toEqual([0, 1, 2, 0, 3, 4, 5, 3]);
      expect(ops.concat([x, x], 1).shape).toEqual([1, 4, 3]);
      expect(() => ops.reshape(x, [4, -1])).toThrow(/cannot view/);
      expect(() => ops.slice(x, 1, 1, 3)).toThrow(/out of bounds/);
      expect(() => ops.concat([x, tensor([1, 2], [1, 2, 1])], 1)).toThrow(/does not match/);
    }));
  });

  test('gradients', () => {
    expectGradcheck((x) => ops.mul(ops.reshape(x, [3, -1]), ops.reshape(x, [3, 2])), [rand64([2, 3], 1)]);
    expectGradcheck((x) => ops.transpose(x, 0, 2), [rand64([2, 3, 2], 2)]);
    expectGradcheck((x) => ops.transpose(x, -1, -2), [rand64([2, 3, 4], 3)]);
    expectGradcheck((x) => ops.slice(x, 1, 1, 3), [rand64([2, 4, 2], 4)]);
    expectGradcheck((a, b) => ops.concat([a, b, a], 1), [rand64([2, 1, 3], 5), rand64([2, 2, 3], 6)]);
  });
});

describe('embedding and dropout', () => {
  test('embedding gathers rows; backward scatter-adds repeated ids', () => {
    expectNoLeak(() => {
      const w = tensor([0, 1, 10, 11, 20, 21], [3, 2], { requiresGrad: true });
      const e = tidy(() => ops.embedding(w, new Int32Array([2, 0, 2, 2]), [2, 2]));
      expect(e.shape).toEqual([2, 2, 2]);
      expect(e.toArray()).toEqual([20, 21, 0, 1, 20, 21, 20, 21]);
      e.backward();
      expect(w.grad!.toArray()).toEqual([1, 1, 0, 0, 3, 3]);
      expect(() => ops.embedding(w, new Int32Array([3]))).toThrow(/out of range/);
      e.dispose();
      w.dispose();
    });
    expectGradcheck((w) => ops.embedding(w, new Int32Array([1, 0, 1, 3, 1])), [rand64([4, 3], 1)]);
  });

  test('dropout: seeded mask, scaled survivors, identity in eval', () => {
    expectNoLeak(() => tidy(() => {
      const x = tensor(new Array(1000).fill(1), [1000]);
      const a = ops.dropout(x, 0.25, { seed: 7 }).toArray();
      expect(ops.dropout(x, 0.25, { seed: 7 }).toArray()).toEqual(a);
      expect(ops.dropout(x, 0.25, { seed: 8 }).toArray()).not.toEqual(a);
      expect(new Set(a)).toEqual(new Set([0, Math.fround(1 / 0.75)]));
      const dropped = a.filter((v) => v === 0).length;
      expect(dropped).toBeGreaterThan(180);
      expect(dropped).toBeLessThan(320);
      expect(ops.dropout(x, 0.5, { seed: 1, training: false }).toArray()).toEqual(x.toArray());
      expect(() => ops.dropout(x, 1.5, { seed: 1 })).toThrow(/p must be/);
    }));
    expectGradcheck((x) => ops.dropout(x, 0.5, { seed: 3 }), [rand64([4, 5], 1)]);
  });

  test('no-grad dropout saves no mask', () => {
    const x = rand64([8], 1);
    const base = memoryStats();
    const y = noGrad(() => ops.dropout(x, 0.5, { seed: 1 }));
    expect(memoryStats().storages).toBe(base.storages + 1);
    y.dispose();
    x.dispose();
  });
});
