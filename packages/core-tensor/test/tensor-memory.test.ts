/** Tensor creation, storage ownership, scopes and allocators (leak tests compare memoryStats). */
import { afterEach, describe, expect, test } from 'vitest';
import { backward } from '../src/autograd/index.js';
import { isPeftError } from '../src/errors.js';
import { exp, linear, mul, reshape, sum } from '../src/ops/index.js';
import {
  frozenTensor, keep, memoryStats, nativeAllocator, nativeMemory, ones, randn, scope, setAllocator, tensor, tidy, zeros,
} from '../src/tensor/index.js';
import { countingAllocator, expectNoLeak } from './ops-helpers.js';

afterEach(() => setAllocator(undefined));

describe('creation', () => {
  test('values, shape and dtype', () => {
    const t = tensor([1, 2, 3, 4, 5, 6], [2, 3], { dtype: 'f64' });
    expect(t.shape).toEqual([2, 3]);
    expect(t.data).toBeInstanceOf(Float64Array);
    expect(t.toArray()).toEqual([1, 2, 3, 4, 5, 6]);
    const z = zeros([2]);
    const o = ones([3]);
    expect(z.data).toBeInstanceOf(Float32Array);
    expect(o.toArray()).toEqual([1, 1, 1]);
    for (const u of [t, z, o]) u.dispose();
  });

  test('bad shapes are E_SHAPE', () => {
    expect(() => tensor([1, 2, 3], [2, 2])).toThrow(/do not fill/);
    expect(() => zeros([2, -1])).toThrow(/bad tensor shape/);
  });

  test('seeded random init is reproducible', () => {
    const [a, b, c] = tidy(() => [3, 3, 4].map((seed) => randn([5], { seed }).toArray()));
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
  });

  test('frozen weights: checked lengths, no float values, never require grad', () => {
    const w = frozenTensor({ kind: 'bf16', bits: new Uint16Array(6) }, [2, 3]);
    expect(w.dtype).toBe('bf16');
    expect(() => w.data).toThrow(/no float values/);
    expect(() => (w.requiresGrad = true)).toThrow(/cannot require grad/);
    expect(() => frozenTensor({ kind: 'int8', cb: new Int8Array(6), scb: new Float32Array(3) }, [2, 3])).toThrow(/scb/);
    const blocks = { kind: 'nf4' as const, packed: new Uint8Array(4), absmax: new Float32Array(1), blocksize: 64 };
    expect(() => frozenTensor(blocks, [3, 3])).toThrow(/packed/);
    w.dispose();
  });
});

describe('dispose and scopes', () => {
  test('dispose is idempotent and use after dispose throws', () => {
    expectNoLeak(() => {
      const t = ones([2]);
      t.dispose();
      t.dispose();
      expect(() => t.data).toThrow(/after dispose/);
      expect(() => exp(t)).toThrow(/after dispose/);
    });
  });

  test('tidy disposes what was created inside except what is returned', () => {
    expectNoLeak(() => {
      const x = ones([3]);
      const before = memoryStats();
      const { a, list } = tidy(() => {
        const t = exp(x);
        const u = mul(t, t);
        return { a: u, list: [exp(u)], n: 1 };
      });
      expect(memoryStats().tensors).toBe(before.tensors + 2);
      expect(a.isDisposed).toBe(false);
      expect(list[0].isDisposed).toBe(false);
      a.dispose();
      list[0].dispose();
      x.dispose();
    });
  });

  test('nested scopes hand returned tensors to the parent; keep() exempts', () => {
    expectNoLeak(() => {
      let inner: ReturnType<typeof ones> | undefined;
      const kept = scope(() => {
        inner = scope(() => ones([2]));
        expect(inner.isDisposed).toBe(false);
        return keep(ones([1]));
      });
      expect(inner!.isDisposed).toBe(true);
      expect(kept.isDisposed).toBe(false);
      kept.dispose();
    });
  });

  test('a throwing fn disposes its tensors; async fns are refused', () => {
    expectNoLeak(() => {
      expect(() => tidy(() => {
        ones([4]);
        throw new Error('boom');
      })).toThrow('boom');
      expect(() => tidy(() => Promise.resolve(ones([1])))).toThrow(/synchronous/);
    });
  });

  test('parameters are not disposed by scopes', () => {
    const p = tidy(() => tensor([1, 2], [2], { requiresGrad: true }));
    expect(p.isDisposed).toBe(false);
    expect(p.toArray()).toEqual([1, 2]);
    p.dispose();
  });

  test('reshape is a view: storage lives until its last handle goes', () => {
    expectNoLeak(() => {
      const x = tensor([1, 2, 3, 4], [4]);
      const before = memoryStats();
      const v = reshape(x, [2, -1]);
      expect(v.shape).toEqual([2, 2]);
      expect(memoryStats().storages).toBe(before.storages);
      x.dispose();
      expect(v.toArray()).toEqual([1, 2, 3, 4]);
      v.dispose();
    });
  });
});

describe('allocators', () => {
  test('every allocation of a train step is freed, deterministically', () => {
    const a = countingAllocator();
    setAllocator(a);
    expectNoLeak(() => {
      const w = randn([4, 3], { requiresGrad: true, seed: 1 });
      const x = randn([5, 3], { seed: 2 });
      const loss = tidy(() => sum(exp(linear(x, w))));
      backward(loss);
      loss.dispose();
      x.dispose();
      w.dispose();
    });
    expect(a.sizes.length).toBeGreaterThan(4);
    expect(a.live).toBe(0);
  });

  test('errors from the allocator surface as thrown errors', () => {
    setAllocator({ name: 'broken', alloc: () => { throw new Error('out of memory'); }, free: () => undefined });
    expect(() => zeros([3])).toThrow('out of memory');
    expect(isPeftError(new Error())).toBe(false);
  });

  // Skipped while the native build lacks alloc, unless PEFT_REQUIRE_NATIVE=1 (make test).
  const mem = nativeMemory();
  const skipNative = !mem && process.env.PEFT_REQUIRE_NATIVE !== '1';
  test.skipIf(skipNative)('native memory: allocatedBytes returns to baseline after tidy + backward', () => {
    if (!mem) throw new Error('@peft/kernels-napi does not export alloc / free / allocatedBytes (stale build?)');
    setAllocator(nativeAllocator(mem));
    const base = mem.allocatedBytes();
    const w = randn([8, 16], { requiresGrad: true, seed: 1 });
    const x = randn([4, 16], { seed: 2 });
    expect(mem.allocatedBytes()).toBeGreaterThanOrEqual(base + (8 * 16 + 4 * 16) * 4);
    const loss = tidy(() => sum(exp(linear(x, w))));
    backward(loss);
    for (const t of [loss, x, w]) t.dispose();
    expect(mem.allocatedBytes()).toBe(base);
  });
});
