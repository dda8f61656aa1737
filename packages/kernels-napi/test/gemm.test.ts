// Binding tests for gemm / gemmQuant4 / gemmInt8 / gemmBf16: argument validation (EINVAL naming
// the argument), results against a naive f64-accumulated JS reference at every SIMD level, and the
// fused-dequant GEMMs bit-identical to gemm on the dequantized weight. Kernel numerics in depth are
// tested in Rust (src/gemm/tests.rs). Skipped when the .node file is not built, unless PEFT_REQUIRE_NATIVE=1.
import { kernels as k, expectEinval, type Kernels } from './helpers.js';
import { afterAll, describe, expect, it } from 'vitest';


/** Deterministic values in [-2, 2) (xorshift32). */
function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: n }, () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) / 2 ** 32 - 0.5) * 4;
  });
}

interface Case {
  ta: boolean;
  tb: boolean;
  m: number;
  n: number;
  k: number;
  alpha: number;
  beta: number;
}

/**
 * Naive reference in f64 and the error bound of a k-term f32 sum: (k + 3) * eps * (|alpha| sum|a b| + |beta c|).
 * beta === 0 ignores C (so NaN there never reaches the result).
 */
function reference(p: Case, a: Float32Array, b: Float32Array, c: Float32Array) {
  const out = new Float64Array(p.m * p.n);
  const bound = new Float64Array(p.m * p.n);
  const eps = 2 ** -23;
  for (let i = 0; i < p.m; i++) {
    for (let j = 0; j < p.n; j++) {
      let s = 0;
      let sAbs = 0;
      for (let kk = 0; kk < p.k; kk++) {
        const av = p.ta ? a[kk * p.m + i] : a[i * p.k + kk];
        const bv = p.tb ? b[j * p.k + kk] : b[kk * p.n + j];
        s += av * bv;
        sAbs += Math.abs(av * bv);
      }
      const old = p.beta === 0 ? 0 : p.beta * c[i * p.n + j];
      out[i * p.n + j] = p.alpha * s + old;
      bound[i * p.n + j] = (p.k + 3) * eps * (Math.abs(p.alpha) * sAbs + Math.abs(old)) + 1e-30;
    }
  }
  return { out, bound };
}


function bytes(x: Float32Array): Buffer {
  return Buffer.from(x.buffer, x.byteOffset, x.byteLength);
}

const LEVELS = ['scalar', 'avx2', 'avx512'] as const;

/** The levels this CPU runs (setSimdLevel throws ENOTSUP for the others). */
function levels(K: Kernels): (typeof LEVELS)[number][] {
  return LEVELS.filter((l) => {
    try {
      K.setSimdLevel(l);
      return true;
    } catch (e) {
      expect((e as { code?: string }).code).toBe('ENOTSUP');
      return false;
    }
  });
}

describe.skipIf(!k)('gemm binding', () => {
  const K = k!;
  const best = K?.simdLevel();
  afterAll(() => K.setSimdLevel(best));

  it('computes a hand-checked product', () => {
    // [[1,2,3],[4,5,6]] @ [[1,0],[0,1],[1,1]] = [[4,5],[10,11]]; beta 0 ignores the NaN in C.
    const c = new Float32Array(4).fill(NaN);
    K.gemm(false, false, 2, 2, 3, 1, Float32Array.of(1, 2, 3, 4, 5, 6), Float32Array.of(1, 0, 0, 1, 1, 1), 0, c);
    expect(Array.from(c)).toEqual([4, 5, 10, 11]);
    // C = 2 * A B - C, B given transposed.
    K.gemm(false, true, 2, 2, 3, 2, Float32Array.of(1, 2, 3, 4, 5, 6), Float32Array.of(1, 0, 1, 0, 1, 1), -1, c);
    expect(Array.from(c)).toEqual([4, 5, 10, 11]);
  });

  it('matches the f64 reference for every transpose, edge tile and level', () => {
    const shapes: [number, number, number][] = [
      [1, 1, 1],
      [7, 13, 29],
      [15, 33, 257],
      [30, 8, 288],
      [40, 288, 8],
      [8, 70, 300],
    ];
    const scalars: [number, number][] = [
      [1, 0],
      [0.7, 0.3],
      [-1.5, 1],
    ];
    let seed = 1;
    for (const level of levels(K)) {
      K.setSimdLevel(level);
      for (const [m, n, kk] of shapes) {
        for (const [ta, tb] of [
          [false, false],
          [false, true],
          [true, false],
          [true, true],
        ] as const) {
          const [alpha, beta] = scalars[seed % scalars.length];
          const p: Case = { ta, tb, m, n, k: kk, alpha, beta };
          const a = rand(m * kk, seed++);
          const b = rand(kk * n, seed++);
          const c0 = rand(m * n, seed++);
          if (beta === 0) c0.fill(NaN);
          const c = c0.slice();
          K.gemm(ta, tb, m, n, kk, alpha, a, b, beta, c);
          const { out, bound } = reference(p, a, b, c0);
          for (let i = 0; i < c.length; i++) {
            const err = Math.abs(c[i] - out[i]);
            if (!(err <= bound[i])) {
              expect.fail(`${level} ${JSON.stringify(p)} element ${i}: got ${c[i]}, want ${out[i]}`);
            }
          }
        }
      }
    }
  });

  it('gives avx2 and avx512 the same bits, and the same bits on every call', () => {
    const [m, n, kk] = [300, 200, 530]; // big enough to run on the pool
    const a = rand(m * kk, 11);
    const b = rand(kk * n, 12);
    const outs = new Map<string, Buffer>();
    for (const level of levels(K).filter((l) => l !== 'scalar')) {
      K.setSimdLevel(level);
      const c = new Float32Array(m * n);
      K.gemm(false, true, m, n, kk, 1, a, b, 0, c);
      const again = new Float32Array(m * n);
      K.gemm(false, true, m, n, kk, 1, a, b, 0, again);
      expect(Buffer.compare(bytes(c), bytes(again))).toBe(0);
      outs.set(level, bytes(c));
    }
    const [first, ...rest] = [...outs.values()];
    for (const o of rest) expect(Buffer.compare(o, first)).toBe(0);
  });

  it('alpha = 0 and k = 0 give beta * C without reading A or B', () => {
    const c = Float32Array.of(1, 2, 3, 4);
    K.gemm(false, false, 2, 2, 3, 0, new Float32Array(6).fill(NaN), new Float32Array(6), 2, c);
    expect(Array.from(c)).toEqual([2, 4, 6, 8]);
    K.gemm(false, false, 2, 2, 0, 1, new Float32Array(0), new Float32Array(0), 0.5, c);
    expect(Array.from(c)).toEqual([1, 2, 3, 4]);
  });

  it('fused 4-bit, int8 and bf16 GEMMs are bit-identical to gemm on the dequantized weight', () => {
    const [m, n, kk] = [37, 70, 97]; // odd k: rows of W start mid-block and on odd nibbles
    const a = rand(m * kk, 21);
    const w = rand(n * kk, 22);
    for (const level of levels(K)) {
      K.setSimdLevel(level);
      for (const tb of [false, true]) {
        const rows = tb ? n : kk;
        const cols = tb ? kk : n;
        const want = (deq: Float32Array) => {
          const c = rand(m * n, 23);
          K.gemm(false, tb, m, n, kk, 0.9, a, deq, 0.5, c);
          return bytes(c);
        };
        for (const [bs, type] of [
          [64, 0],
          [32, 1],
        ] as const) {
          const packed = new Uint8Array(Math.ceil(w.length / 2));
          const absmax = new Float32Array(Math.ceil(w.length / bs));
          K.quantize4bit(w, bs, type, packed, absmax);
          const deq = new Float32Array(w.length);
          K.dequantize4bit(packed, absmax, bs, type, deq);
          const c = rand(m * n, 23);
          K.gemmQuant4(tb, m, n, kk, 0.9, a, packed, absmax, bs, type, 0.5, c);
          expect(Buffer.compare(bytes(c), want(deq)), `${level} nf4/fp4 tb=${tb}`).toBe(0);
        }
        const cb = new Int8Array(w.length);
        const scb = new Float32Array(rows);
        K.quantizeInt8Rows(w, rows, cols, cb, scb);
        const deq8 = new Float32Array(w.length);
        K.dequantizeInt8Rows(cb, scb, rows, cols, deq8);
        const c8 = rand(m * n, 23);
        K.gemmInt8(tb, m, n, kk, 0.9, a, cb, scb, 0.5, c8);
        expect(Buffer.compare(bytes(c8), want(deq8)), `${level} int8 tb=${tb}`).toBe(0);
        const h = new Uint16Array(w.length);
        K.f32ToBf16(w, h);
        const wide = new Float32Array(w.length);
        K.bf16ToF32(h, wide);
        const cb16 = rand(m * n, 23);
        K.gemmBf16(tb, m, n, kk, 0.9, a, h, 0.5, cb16);
        expect(Buffer.compare(bytes(cb16), want(wide)), `${level} bf16 tb=${tb}`).toBe(0);
      }
    }
  });

  it('rejects bad arguments with EINVAL naming them', () => {
    const [m, n, kk] = [2, 3, 4];
    const a = new Float32Array(m * kk);
    const b = new Float32Array(kk * n);
    const c = new Float32Array(m * n);
    const g = (...args: unknown[]) => () => (K.gemm as (...x: unknown[]) => void)(...args);
    expectEinval(g(1, false, m, n, kk, 1, a, b, 0, c), 'transA');
    expectEinval(g(false, 'no', m, n, kk, 1, a, b, 0, c), 'transB');
    expectEinval(g(false, false, -1, n, kk, 1, a, b, 0, c), 'm');
    expectEinval(g(false, false, m, 1.5, kk, 1, a, b, 0, c), 'n');
    expectEinval(g(false, false, m, n, kk, '1', a, b, 0, c), 'alpha');
    expectEinval(g(false, false, m, n, kk, 1, a, b, null, c), 'beta');
    expectEinval(g(false, false, m, n, kk, 1, new Float32Array(7), b, 0, c), 'a');
    expectEinval(g(false, false, m, n, kk, 1, new Float64Array(8), b, 0, c), 'a');
    expectEinval(g(false, false, m, n, kk, 1, a, b.subarray(1), 0, c), 'b');
    expectEinval(g(false, false, m, n, kk, 1, a, b, 0, new Float32Array(5)), 'c');
    expectEinval(g(false, false, m, n, kk, 1, a, b, 0), 'arguments');
    // C may not share memory with an input.
    const shared = new Float32Array(64);
    expectEinval(g(false, false, m, n, kk, 1, shared.subarray(0, 8), b, 0, shared.subarray(4, 10)), 'c');

    const packed = new Uint8Array((n * kk) / 2);
    const absmax = new Float32Array(1);
    const q = (...args: unknown[]) => () => (K.gemmQuant4 as (...x: unknown[]) => void)(...args);
    expect(q(true, m, n, kk, 1, a, packed, absmax, 64, 0, 0, c)).not.toThrow();
    expectEinval(q(true, m, n, kk, 1, a, packed.subarray(1), absmax, 64, 0, 0, c), 'packed');
    expectEinval(q(true, m, n, kk, 1, a, packed, new Float32Array(2), 64, 0, 0, c), 'absmax');
    expectEinval(q(true, m, n, kk, 1, a, packed, absmax, 48, 0, 0, c), 'blocksize');
    expectEinval(q(true, m, n, kk, 1, a, packed, absmax, 64, 2, 0, c), 'type');
    const i8 = (...args: unknown[]) => () => (K.gemmInt8 as (...x: unknown[]) => void)(...args);
    expectEinval(i8(true, m, n, kk, 1, a, new Int8Array(11), new Float32Array(n), 0, c), 'cb');
    expectEinval(i8(true, m, n, kk, 1, a, new Int8Array(12), new Float32Array(kk), 0, c), 'scb');
    expectEinval(i8(false, m, n, kk, 1, a, new Int8Array(12), new Float32Array(n), 0, c), 'scb');
    const bf = (...args: unknown[]) => () => (K.gemmBf16 as (...x: unknown[]) => void)(...args);
    expectEinval(bf(true, m, n, kk, 1, a, new Uint16Array(13), 0, c), 'w');
    expectEinval(bf(true, m, n, kk, 1, a, new Int16Array(12), 0, c), 'w');
  });
});
