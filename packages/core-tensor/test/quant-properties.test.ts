/**
 * Properties of the quantizers (fast-check): the round-trip error bound, and idempotence
 * quantize(dequantize(q)) == q, with the exact condition under which each holds.
 *
 * Condition C: every nonzero block absmax (row absmax for int8) lies in [2^-100, 2^100]. Then
 * f32(1/absmax) and every table[c] * absmax are normal f32 numbers. Outside C (subnormal absmax) the
 * reciprocal overflows to inf and a zero next to a subnormal maximum becomes s = 0 * inf = NaN ->
 * NF4 code 0 -> -absmax: bitsandbytes' CUDA kernel does the same, and the bound fails (tested below).
 *
 * Idempotence, under C: the block maximum has |s| within an ulp of 1, so it takes a +-1 code
 * (NF4 0/15, FP4 3/11) and dequantizes to exactly +-absmax; the new absmax is the old one. Every
 * other table value lies inside its threshold interval by a margin (>= 0.0026 absolute, far above
 * the 2-ulp error of f32(f32(t * a) * f32(1/a))), so it gets its code back. One exception: FP4 code 8
 * (-0, from tiny negatives) dequantizes to -0, and -0 quantizes to code 0 (sign is s < 0). So for
 * FP4 the codes are idempotent after mapping 8 -> 0. For int8, CB is idempotent; SCB may move by an
 * ulp (127 * scb * f32(1/127) need not round back to scb), which cannot move a code (|cb| <= 127).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { nativeBackend, referenceBackend, tryLoadKernels } from '../src/backend/index.js';
import type { Backend, QuantType4 } from '../src/backend/types.js';
import { FP4, FP4_BITS, FP4_THRESHOLDS, NF4, NF4_THRESHOLDS } from '../src/backend/quant-tables.js';

const kernels = tryLoadKernels();
const all: [string, Backend][] = [['reference', referenceBackend], ...(kernels ? [['native', nativeBackend(kernels)] as [string, Backend]] : [])];
const RUNS = 150;

/** Worst distance from a value in a code's threshold interval to the code's table value. */
function halfGap(table: number[], thresholds: number[]): number {
  const edges = [table[0], ...thresholds, table[table.length - 1]];
  return Math.max(...table.map((v, k) => Math.max(v - edges[k], edges[k + 1] - v)));
}
const NF4_BOUND = halfGap([...NF4], [...NF4_THRESHOLDS]);
// FP4 by magnitude: table magnitudes in threshold order are FP4[FP4_BITS[c]], c = 0..7
const FP4_BOUND = halfGap(FP4_BITS.map((b) => FP4[b]), [...FP4_THRESHOLDS]);
const SLACK = 2 ** -20; // relative f32 slack: the s rounding, the reciprocal and the final product

/**
 * Finite f32 values m * 2^e with m in [-1, 1] (fast-check favours edge values: 0, -0, +-1, tiny)
 * and one scale 2^e, e in -60..60, per array; |x| < 2^-100 is flushed to 0, so condition C holds.
 */
const scaled = (mant: fc.Arbitrary<number[]>) =>
  fc.tuple(mant, fc.integer({ min: -60, max: 60 })).map(([a, e]) =>
    Float32Array.from(a, (m) => {
      const x = Math.fround(m * 2 ** e);
      return Math.abs(x) < 2 ** -100 ? 0 : x;
    }),
  );
const mantissa = fc.float({ min: -1, max: 1, noNaN: true });
const vec = scaled(fc.array(mantissa, { minLength: 1, maxLength: 300, size: 'max' }));
const blocksize = fc.constantFrom(32, 64, 128, 256);
const type4 = fc.constantFrom<QuantType4>('nf4', 'fp4');

function codes(packed: Uint8Array, n: number): number[] {
  return Array.from({ length: n }, (_, i) => ((i & 1) === 0 ? packed[i >> 1] >> 4 : packed[i >> 1] & 15));
}

describe.each(all)('%s backend', (_name, be) => {
  it('the bounds are what the tables imply', () => {
    expect(NF4_BOUND).toBeCloseTo(0.1519, 3); // code 0: from -1 up to the first threshold -0.848
    expect(FP4_BOUND).toBeCloseTo(1 / 6, 3); // code 0b011 (1.0) down to 0.8333
  });

  it('4-bit: |dequant(quant(x)) - x| <= absmax * maxHalfGap (+ f32 slack)', () => {
    fc.assert(
      fc.property(vec, blocksize, type4, (x, bs, type) => {
        const q = be.quantize4bit(x, bs, type);
        const y = be.dequantize4bit(q.packed, q.absmax, x.length, bs, type);
        const bound = type === 'nf4' ? NF4_BOUND : FP4_BOUND;
        return x.every((v, i) => {
          const a = q.absmax[Math.floor(i / bs)];
          return Math.abs(y[i] - v) <= a * (bound + SLACK);
        });
      }),
      { numRuns: RUNS },
    );
  });

  it('4-bit: quantize(dequantize(q)) == q (FP4 code 8 -> 0), absmax unchanged', () => {
    fc.assert(
      fc.property(vec, blocksize, type4, (x, bs, type) => {
        const q = be.quantize4bit(x, bs, type);
        const y = be.dequantize4bit(q.packed, q.absmax, x.length, bs, type);
        const r = be.quantize4bit(y, bs, type);
        const want = codes(q.packed, x.length).map((c) => (type === 'fp4' && c === 8 ? 0 : c));
        expect(codes(r.packed, x.length)).toEqual(want);
        expect([...r.absmax]).toEqual([...q.absmax]);
      }),
      { numRuns: RUNS },
    );
  });

  it('FP4 code 8 really is the exception: -tiny -> 8 -> -0 -> 0', () => {
    const q = be.quantize4bit(Float32Array.of(1, -1e-6), 32, 'fp4');
    const r = be.quantize4bit(be.dequantize4bit(q.packed, q.absmax, 2, 32, 'fp4'), 32, 'fp4');
    expect([q.packed[0] & 15, r.packed[0] & 15]).toEqual([8, 0]);
  });

  it('outside condition C the bound fails: a zero beside a subnormal maximum becomes -absmax', () => {
    const tiny = 1e-45; // 1 / tiny overflows f32
    const q = be.quantize4bit(Float32Array.of(0, tiny), 32, 'nf4');
    const y = be.dequantize4bit(q.packed, q.absmax, 2, 32, 'nf4');
    expect(y[0]).toBe(-Math.fround(tiny));
  });

  const matrix = fc
    .record({ rows: fc.integer({ min: 1, max: 12 }), cols: fc.integer({ min: 1, max: 40 }) })
    .chain(({ rows, cols }) =>
      scaled(fc.array(mantissa, { minLength: rows * cols, maxLength: rows * cols })).map((w) => ({ rows, cols, w })),
    );

  it('int8: |dequant(quant(w)) - w| <= scb / 254 (+ f32 slack)', () => {
    fc.assert(
      fc.property(matrix, ({ rows, cols, w }) => {
        const q = be.quantizeInt8Rows(w, rows, cols);
        const y = be.dequantizeInt8Rows(q.cb, q.scb, rows, cols);
        return w.every((v, i) => Math.abs(y[i] - v) <= q.scb[Math.floor(i / cols)] * (1 / 254 + SLACK));
      }),
      { numRuns: RUNS },
    );
  });

  it('int8: CB is idempotent, SCB within 2 ulps', () => {
    fc.assert(
      fc.property(matrix, ({ rows, cols, w }) => {
        const q = be.quantizeInt8Rows(w, rows, cols);
        const r = be.quantizeInt8Rows(be.dequantizeInt8Rows(q.cb, q.scb, rows, cols), rows, cols);
        expect([...r.cb]).toEqual([...q.cb]);
        q.scb.forEach((s, i) => expect(Math.abs(r.scb[i] - s)).toBeLessThanOrEqual(s * 2 ** -22));
      }),
      { numRuns: RUNS },
    );
  });
});
