/**
 * Fused ops (TrainKernels): f64 gradchecks on the reference kernels, forward values against naive
 * loops, frozen weight kinds, chunked cross-entropy, per-call kernel override, native vs reference.
 */
import { describe, expect, test } from 'vitest';
import { backward } from '../src/autograd/index.js';
import { noGrad } from '../src/ops/tape.js';
import { getTrainKernels, referenceBackend, referenceTrainKernels, type TrainKernels } from '../src/backend/index.js';
import * as ops from '../src/ops/index.js';
import { copyOf, frozenTensor, memoryStats, randn, setAllocator, tensor, tidy, type Tensor } from '../src/tensor/index.js';
import { countingAllocator, expectGradcheck, expectNoLeak, f64, maxAbsDiff, rand64 } from './ops-helpers.js';

/** cos / sin tables [maxPos, hd/2] with HF's inv_freq = theta^(-2i/hd). */
function ropeTables(maxPos: number, hd: number, dtype: 'f32' | 'f64'): [Tensor, Tensor] {
  const half = hd / 2;
  const c: number[] = [];
  const s: number[] = [];
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * 10000 ** ((-2 * i) / hd);
      c.push(Math.cos(a));
      s.push(Math.sin(a));
    }
  }
  return [tensor(c, [maxPos, half], { dtype }), tensor(s, [maxPos, half], { dtype })];
}

/** Causal GQA attention by the definition: softmax over keys 0..S-T+t of scale * q.k, times v. */
function naiveAttention(q: Tensor, k: Tensor, v: Tensor, scale: number): number[] {
  const [B, T, nh, hd] = q.shape;
  const [, S, nkv] = k.shape;
  const out: number[] = [];
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let h = 0; h < nh; h++) {
    const kh = Math.floor(h / (nh / nkv));
    const at = (x: Tensor, s: number, heads: number, hh: number, d: number): number =>
      x.data[((b * x.shape[1] + s) * heads + hh) * hd + d];
    const scores: number[] = [];
    for (let s = 0; s <= S - T + t; s++) {
      let dot = 0;
      for (let d = 0; d < hd; d++) dot += at(q, t, nh, h, d) * at(k, s, nkv, kh, d);
      scores.push(dot * scale);
    }
    const m = Math.max(...scores);
    const e = scores.map((x) => Math.exp(x - m));
    const z = e.reduce((a, x) => a + x, 0);
    for (let d = 0; d < hd; d++) out.push(e.reduce((a, p, s) => a + (p / z) * at(v, s, nkv, kh, d), 0));
  }
  return out;
}

describe('gradients (f64, reference kernels)', () => {
  test('linear: with and without bias, any leading dims, any subset requiring grad', () => {
    expectGradcheck((x, w, b) => ops.linear(x, w, b), [rand64([2, 3, 4], 1), rand64([5, 4], 2), rand64([5], 3)]);
    expectGradcheck((x, w) => ops.linear(x, w), [rand64([3, 4], 4), rand64([2, 4], 5)]);
    const w = rand64([2, 4], 6, false);
    expectGradcheck((x) => ops.linear(x, w), [rand64([3, 4], 7)]);
    w.dispose();
  });

  test('rmsnorm', () => {
    const w = f64([0.9, 1.1, -0.5, 1.3, 0.7, 1], [6]);
    expectGradcheck((x, g) => ops.rmsnorm(x, g, 1e-5), [rand64([2, 2, 6], 1), w]);
  });

  test('rope (gradient to x only; the tables are constants)', () => {
    const [cos, sin] = ropeTables(8, 4, 'f64');
    const pos = new Int32Array([0, 1, 5, 2, 3, 7]);
    expectGradcheck((x) => ops.rope(x, cos, sin, pos), [rand64([2, 3, 2, 4], 1)]);
    cos.dispose();
    sin.dispose();
  });

  test('attention: GQA, and queries that are the last T of S positions', () => {
    expectGradcheck((q, k, v) => ops.attention(q, k, v),
      [rand64([2, 3, 4, 2], 1), rand64([2, 3, 2, 2], 2), rand64([2, 3, 2, 2], 3)]);
    expectGradcheck((q, k, v) => ops.attention(q, k, v, { scale: 0.3 }),
      [rand64([1, 2, 2, 3], 4), rand64([1, 4, 1, 3], 5), rand64([1, 4, 1, 3], 6)]);
  });

  test('swiglu', () => {
    expectGradcheck((g, u) => ops.swiglu(g, u), [rand64([2, 5], 1), rand64([2, 5], 2)]);
  });

  test('crossEntropy: hidden and head weight, ignored targets, uneven chunks', () => {
    const targets = new Int32Array([3, -100, 0, 6, -100, 2]);
    expectGradcheck((h, w) => ops.crossEntropy(h, w, targets, { chunkRows: 4 }), [rand64([2, 3, 4], 1), rand64([7, 4], 2)]);
    expectGradcheck((h, w) => ops.crossEntropy(h, w, new Int32Array([1, 5, 5]), { ignoreIndex: 5, chunkRows: 1 }),
      [rand64([3, 4], 3), rand64([6, 4], 4)]);
  });
});

describe('forward values', () => {
  test('rmsnorm matches the composite x * rsqrt(mean(x^2) + eps) * w', () => {
    expectNoLeak(() => tidy(() => {
      const x = rand64([3, 5], 1, false);
      const w = rand64([5], 2, false);
      const want = ops.mul(ops.mul(x, ops.rsqrt(ops.addScalar(ops.mean(ops.mul(x, x), -1, true), 1e-6))), w);
      expect(maxAbsDiff(ops.rmsnorm(x, w).data, want.data)).toBeLessThan(1e-14);
    }));
  });

  test('rope rotates halves by the position angle', () => {
    expectNoLeak(() => tidy(() => {
      const [cos, sin] = ropeTables(6, 4, 'f64');
      const x = rand64([1, 2, 1, 4], 1, false);
      const y = ops.rope(x, cos, sin, new Int32Array([0, 5]));
      expect(Array.from(y.data.subarray(0, 4))).toEqual(Array.from(x.data.subarray(0, 4))); // position 0
      const [a, b] = [x.data[4], x.data[6]];
      expect(y.data[4]).toBeCloseTo(a * Math.cos(5) - b * Math.sin(5), 14);
      expect(y.data[6]).toBeCloseTo(b * Math.cos(5) + a * Math.sin(5), 14);
      expect(() => ops.rope(x, cos, sin, new Int32Array([0, 6]))).toThrow(/pos\[1\]/);
    }));
  });

  test('attention matches the definition', () => {
    expectNoLeak(() => tidy(() => {
      const [q, k, v] = [rand64([2, 2, 4, 3], 1, false), rand64([2, 3, 2, 3], 2, false), rand64([2, 3, 2, 3], 3, false)];
      expect(maxAbsDiff(ops.attention(q, k, v).data, naiveAttention(q, k, v, 1 / Math.sqrt(3)))).toBeLessThan(1e-13);
      expect(() => ops.attention(q, k, rand64([2, 3, 1, 3], 4, false))).toThrow(/attention/);
    }));
  });

  test('swiglu is silu(gate) * up', () => {
    expectNoLeak(() => tidy(() => {
      const [g, u] = [rand64([7], 1, false), rand64([7], 2, false)];
      expect(maxAbsDiff(ops.swiglu(g, u).data, ops.mul(ops.silu(g), u).data)).toBeLessThan(1e-15);
    }));
  });

  test('crossEntropy is the mean of logsumexp - target logit over kept rows', () => {
    expectNoLeak(() => tidy(() => {
      const h = rand64([4, 3], 1, false);
      const w = rand64([5, 3], 2, false);
      const targets = new Int32Array([4, -100, 0, 2]);
      const logp = ops.logSoftmax(ops.linear(h, w));
      const want = -(logp.data[4] + logp.data[10] + logp.data[17]) / 3;
      expect(ops.crossEntropy(h, w, targets).item()).toBeCloseTo(want, 13);
      expect(ops.crossEntropy(h, w, new Int32Array(4).fill(-100)).item()).toBeNaN();
      expect(() => ops.crossEntropy(h, w, new Int32Array([0, 1, 5, 0]))).toThrow(/target/);
    }));
  });
});

describe('chunked cross-entropy', () => {
  function run(chunkRows: number): { loss: number; dh: Float32Array; dw: Float32Array } {
    const h = randn([10, 8], { seed: 1, requiresGrad: true });
    const w = randn([33, 8], { seed: 2, requiresGrad: true });
    const targets = new Int32Array([1, 32, -100, 0, 5, 5, 17, -100, 30, 2]);
    const loss = tidy(() => ops.mulScalar(ops.crossEntropy(h, w, targets, { chunkRows }), 3));
    backward(loss);
    const r = { loss: loss.item(), dh: Float32Array.from(h.grad!.data), dw: Float32Array.from(w.grad!.data) };
    for (const t of [loss, h, w]) t.dispose();
    return r;
  }

  test('any chunk size gives the unchunked loss and gradients', () => {
    const whole = run(10);
    for (const rows of [1, 3, 4]) {
      const c = run(rows);
      expect(c.loss).toBe(whole.loss);
      expect(c.dh).toEqual(whole.dh); // rows are independent: bit-identical
      expect(maxAbsDiff(c.dw, whole.dw)).toBeLessThan(1e-6); // dW sums chunks in another order
    }
  });

  test('never allocates the N x V logits, and frees everything', () => {
    const a = countingAllocator();
    setAllocator(a);
    try {
      expectNoLeak(() => {
        const h = randn([64, 16], { seed: 1, requiresGrad: true });
        const w = randn([100, 16], { seed: 2, requiresGrad: true });
        const targets = Int32Array.from({ length: 64 }, (_, i) => (i * 7) % 100);
        const loss = ops.crossEntropy(h, w, targets, { chunkRows: 8 });
        backward(loss);
        for (const t of [loss, h, w]) t.dispose();
      });
      expect(Math.max(...a.sizes)).toBeLessThan(64 * 100 * 4);
      expect(a.sizes).toContain(8 * 100 * 4);
      expect(a.live).toBe(0);
    } finally {
      setAllocator(undefined);
    }
  });
});

describe('frozen weights', () => {
  const kinds = ['bf16', 'nf4', 'fp4', 'int8'] as const;
  for (const kind of kinds) {
    test(`${kind}: linear equals linear on the dequantized weight, and only dx flows`, () => {
      expectNoLeak(() => {
        const { frozen, dense } = makeFrozen(kind, 6, 64);
        const x = randn([3, 64], { seed: 3, requiresGrad: true });
        const xd = randn([3, 64], { seed: 3, requiresGrad: true });
        const y = tidy(() => ops.sum(ops.mul(ops.linear(x, frozen), ops.linear(x, frozen))));
        const yd = tidy(() => ops.sum(ops.mul(ops.linear(xd, dense), ops.linear(xd, dense))));
        expect(y.item()).toBe(yd.item());
        backward(y);
        backward(yd);
        expect(x.grad!.data).toEqual(xd.grad!.data);
        expect(frozen.grad).toBeUndefined();
        for (const t of [frozen, dense, x, xd, y, yd]) t.dispose();
      });
    });

    test(`${kind}: gradcheck of x through a frozen weight (f64 activations)`, () => {
      const { frozen, dense } = makeFrozen(kind, 4, 64);
      dense.dispose();
      expectGradcheck((x) => ops.linear(x, frozen), [rand64([2, 64], 1)]);
      expectGradcheck((h) => ops.crossEntropy(h, frozen, new Int32Array([3, 0])), [rand64([2, 64], 2)]);
      frozen.dispose();
    });
  }

  test('a frozen layer does not keep its input alive for backward', () => {
    const { frozen, dense } = makeFrozen('nf4', 4, 64);
    const a = randn([64, 64], { seed: 1, requiresGrad: true });
    const x = randn([2, 64], { seed: 2 });
    const base = memoryStats();
    const y = tidy(() => ops.linear(ops.linear(x, a), frozen)); // the inner result is not saved
    expect(memoryStats().storages).toBe(base.storages + 1);
    for (const t of [y, a, x, frozen, dense]) t.dispose();
  });
});

/** A [rows, cols] f32 weight and its frozen form (dense = exactly what the kernels dequantize to). */
function makeFrozen(kind: 'bf16' | 'nf4' | 'fp4' | 'int8', rows: number, cols: number): { frozen: Tensor; dense: Tensor } {
  return quantized(kind, randn([rows, cols], { seed: 7, std: 0.2 }));
}

function quantized(kind: 'bf16' | 'nf4' | 'fp4' | 'int8', w: Tensor): { frozen: Tensor; dense: Tensor } {
  const be = referenceBackend;
  const f = w.data as Float32Array;
  const [rows, cols] = w.shape;
  let frozen: Tensor;
  let values: Float32Array;
  if (kind === 'bf16') {
    const bits = be.f32ToBf16(f);
    frozen = frozenTensor({ kind, bits }, w.shape);
    values = be.bf16ToF32(bits);
  } else if (kind === 'int8') {
    const { cb, scb } = be.quantizeInt8Rows(f, rows, cols);
    frozen = frozenTensor({ kind, cb, scb }, w.shape);
    values = be.dequantizeInt8Rows(cb, scb, rows, cols);
  } else {
    const { packed, absmax } = be.quantize4bit(f, 64, kind);
    frozen = frozenTensor({ kind, packed, absmax, blocksize: 64 }, w.shape);
    values = be.dequantize4bit(packed, absmax, f.length, 64, kind);
  }
  w.dispose();
  return { frozen, dense: tensor(values, [rows, cols]) };
}

describe('kernel choice', () => {
  function spy(): TrainKernels & { calls: string[] } {
    const calls: string[] = [];
    const k = Object.fromEntries(Object.entries(referenceTrainKernels).map(([name, fn]) => [name, (...args: unknown[]) => {
      calls.push(name);
      return (fn as (...a: unknown[]) => void)(...args);
    }])) as unknown as TrainKernels;
    return Object.assign(k, { calls });
  }

  test('the per-call override runs forward and backward; f64 always uses the reference', () => {
    expectNoLeak(() => {
      const k = spy();
      const x = randn([2, 3], { seed: 1, requiresGrad: true });
      const w = randn([4, 3], { seed: 2, requiresGrad: true });
      const y = tidy(() => {
        const h = ops.linear(x, w, undefined, { kernels: k });
        return ops.sum(ops.rmsnorm(h, ops.reshape(w, [12]).slice(0, 0, 4), 1e-6, { kernels: k }));
      });
      backward(y);
      expect(k.calls).toEqual(['gemm', 'rmsnormForward', 'rmsnormBackward', 'gemm', 'gemm']);
      const x64 = rand64([2, 3], 3);
      const w64 = rand64([4, 3], 4, false);
      noGrad(() => ops.linear(x64, w64, undefined, { kernels: k })).dispose();
      expect(k.calls.length).toBe(5);
      for (const t of [x, w, y, x64, w64]) t.dispose();
    });
  });
});

// Skipped while the native build lacks the training kernels, unless PEFT_REQUIRE_NATIVE=1 (make test).
const requireNative = process.env.PEFT_REQUIRE_NATIVE === '1';
const native = ((): TrainKernels | undefined => {
  try {
    return getTrainKernels('native');
  } catch {
    return undefined;
  }
})();

describe.skipIf(!native && !requireNative)('native kernels agree with the reference (f32)', () => {
  function both(f: (k: TrainKernels) => Tensor[]): void {
    const k = native ?? getTrainKernels('native'); // throws, naming what is missing, when required
    expectNoLeak(() => tidy(() => {
      const got = f(k);
      const want = f(referenceTrainKernels);
      got.forEach((g, i) => expect(maxAbsDiff(g.data, want[i].data)).toBeLessThan(1e-4));
    }));
  }

  /** forward output and every input gradient of fn on fresh seeded f32 inputs. */
  function withGrads(shapes: number[][], fn: (k: TrainKernels, ...xs: Tensor[]) => Tensor): (k: TrainKernels) => Tensor[] {
    return (k) => {
      const xs = shapes.map((s, i) => randn(s, { seed: i + 1, requiresGrad: true }));
      const y = fn(k, ...xs);
      backward(y, randn(y.shape, { seed: 99 }));
      const out = [y, ...xs.map((x) => copyOf(x.grad!))];
      for (const x of xs) x.dispose();
      return out;
    };
  }

  test('linear, rmsnorm, swiglu, attention, rope, crossEntropy', () => {
    both(withGrads([[5, 24], [17, 24], [17]], (kernels, x, w, b) => ops.linear(x, w, b, { kernels })));
    both(withGrads([[4, 32], [32]], (kernels, x, w) => ops.rmsnorm(x, w, 1e-6, { kernels })));
    both(withGrads([[3, 40], [3, 40]], (kernels, g, u) => ops.swiglu(g, u, { kernels })));
    both(withGrads([[2, 5, 4, 8], [2, 7, 2, 8], [2, 7, 2, 8]], (kernels, q, k, v) => ops.attention(q, k, v, { kernels })));
    const [cos, sin] = ropeTables(16, 8, 'f32');
    both(withGrads([[2, 3, 2, 8]], (kernels, x) => ops.rope(x, cos, sin, new Int32Array([0, 1, 2, 9, 10, 11]), { kernels })));
    const targets = new Int32Array([3, -100, 40, 0, 7, 63]);
    both(withGrads([[6, 16], [64, 16]], (kernels, h, w) => ops.crossEntropy(h, w, targets, { kernels, chunkRows: 4 })));
    cos.dispose();
    sin.dispose();
  });

  test('frozen weights through the fused dequant-GEMM kernels', () => {
    for (const kind of ['bf16', 'nf4', 'fp4', 'int8'] as const) {
      const { frozen, dense } = makeFrozen(kind, 24, 64);
      both(withGrads([[5, 64]], (kernels, x) => ops.linear(x, frozen, undefined, { kernels })));
      frozen.dispose();
      dense.dispose();
    }
  });
});
