/**
 * The native kernels against the reference backend, bit for bit, on random inputs of many sizes
 * (partial blocks, odd lengths, sizes that spread over threads) at every SIMD level this machine
 * runs. Skipped, with the reason in its name, when the .node binary is not built.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { nativeBackend, nativeLoadError, nativeSimdLevels, loadKernels, referenceBackend, tryLoadKernels } from '../src/backend/index.js';
import type { QuantType4 } from '../src/backend/types.js';
import { PeftError } from '../src/errors.js';
import { DYNAMIC_MAP } from '../src/backend/quant-tables.js';
import { rng } from './train-kernels-util.js';

// Skipped when the binary is not built, unless PEFT_REQUIRE_NATIVE=1 (set by `make test`): then a
// missing or broken build fails the suite instead of hiding behind a skip.
const kernels = process.env.PEFT_REQUIRE_NATIVE === '1' ? loadKernels() : tryLoadKernels();
const ref = referenceBackend;
const SIZES = [1, 2, 3, 31, 32, 33, 63, 64, 65, 255, 256, 257, 1000, 4095, 4096, 4097, 10007, 70001];
const BLOCKS = [32, 64, 128, 256, 512, 1024, 2048, 4096];
const LARGE = 1 << 21; // enough work for every thread

/** Weights-like data: normal-ish values, outliers, exact zeros, a zero block, -0, tiny and subnormal values. */
function weights(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = r();
    const g = (r() + r() + r() + r() - 2) * 0.05;
    x[i] = u < 0.01 ? g * 40 : u < 0.02 ? 0 : u < 0.025 ? -0 : u < 0.03 ? g * 1e-30 : u < 0.032 ? g * 1e-42 : g;
  }
  if (n >= 128) x.fill(0, 64, 128);
  return x;
}

/** Reference results are the same at every SIMD level: compute each once. */
const memo = new Map<string, unknown>();
function once<T>(key: string, f: () => T): T {
  if (!memo.has(key)) memo.set(key, f());
  return memo.get(key) as T;
}

function same(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): string {
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return `index ${i}: native ${a[i]} vs reference ${b[i]}`;
  return a.length === b.length ? 'no difference' : `lengths ${a.length} vs ${b.length}`;
}

const title = kernels
  ? 'native backend matches the reference'
  : `native backend (skipped: ${nativeLoadError()}; build with 'pnpm --filter @peft/kernels-napi build')`;

describe.skipIf(!kernels)(title, () => {
  const nat = kernels ? nativeBackend(kernels) : ref;
  const levels = nativeSimdLevels();
  afterAll(() => kernels?.setSimdLevel(levels[0]));

  it('reports its SIMD level and thread count', () => {
    expect(levels.length).toBeGreaterThan(0);
    expect(nat.simd).toBe(levels[0]);
    expect(kernels!.numThreads()).toBeGreaterThanOrEqual(1);
  });

  describe.each(levels)('at SIMD level %s', (level) => {
    const use = () => {
      kernels!.setSimdLevel(level);
      expect(nat.simd).toBe(level);
    };

    it.each(['nf4', 'fp4'] as QuantType4[])('%s quantize/dequantize, all sizes and blocksizes', (type) => {
      use();
      for (const n of SIZES) {
        for (const bs of BLOCKS) {
          const x = once(`w${n}/${n * 31 + bs}`, () => weights(n, n * 31 + bs));
          const a = nat.quantize4bit(x, bs, type);
          const b = once(`q4/${type}/${n}/${bs}`, () => ref.quantize4bit(x, bs, type));
          expect(same(a.absmax, b.absmax), `absmax n=${n} bs=${bs}: ${firstDiff(a.absmax, b.absmax)}`).toBe(true);
          expect(same(a.packed, b.packed), `packed n=${n} bs=${bs}: ${firstDiff(a.packed, b.packed)}`).toBe(true);
          const ya = nat.dequantize4bit(a.packed, a.absmax, n, bs, type, new Float32Array(n));
          const yb = once(`d4/${type}/${n}/${bs}`, () => ref.dequantize4bit(b.packed, b.absmax, n, bs, type));
          expect(same(ya, yb), `dequant n=${n} bs=${bs}: ${firstDiff(ya, yb)}`).toBe(true);
        }
      }
    });

    it('4-bit on a large tensor (threads) and with non-finite values', () => {
      use();
      const x = once('large', () => {
        const w = weights(LARGE + 17, 5);
        w[1000] = Infinity;
        w[5000] = -Infinity;
        return w;
      });
      for (const type of ['nf4', 'fp4'] as QuantType4[]) {
        const a = nat.quantize4bit(x, 64, type);
        const b = once(`large/q/${type}`, () => ref.quantize4bit(x, 64, type));
        expect(same(a.packed, b.packed) && same(a.absmax, b.absmax), `${type}: ${firstDiff(a.packed, b.packed)}`).toBe(true);
        const yb = once(`large/d/${type}`, () => ref.dequantize4bit(b.packed, b.absmax, x.length, 64, type));
        expect(same(nat.dequantize4bit(a.packed, a.absmax, x.length, 64, type), yb)).toBe(true);
      }
    });

    it('blockwise 8-bit with the dynamic map', () => {
      use();
      for (const n of [...SIZES, LARGE + 3]) {
        for (const bs of [64, 256, 4096]) {
          const x = once(`w${n}/${n + bs}`, () => weights(n, n + bs));
          const a = nat.quantizeBlockwise8(x, DYNAMIC_MAP, bs);
          const b = once(`q8/${n}/${bs}`, () => ref.quantizeBlockwise8(x, DYNAMIC_MAP, bs));
          expect(same(a.codes, b.codes) && same(a.absmax, b.absmax), `n=${n} bs=${bs}: ${firstDiff(a.codes, b.codes)}`).toBe(true);
          expect(same(nat.dequantizeBlockwise8(a.codes, a.absmax, DYNAMIC_MAP, bs), ref.dequantizeBlockwise8(b.codes, b.absmax, DYNAMIC_MAP, bs))).toBe(true);
        }
      }
    });

    it('int8 rows, including zero rows and odd widths', () => {
      use();
      for (const [rows, cols] of [[1, 1], [3, 7], [17, 33], [64, 4096], [257, 129], [2048, 1031]]) {
        const w = once(`m${rows}x${cols}`, () => weights(rows * cols, rows * 7 + cols).fill(0, 0, cols)); // row 0: zeros
        const a = nat.quantizeInt8Rows(w, rows, cols);
        const b = once(`i8/${rows}x${cols}`, () => ref.quantizeInt8Rows(w, rows, cols));
        expect(same(a.cb, b.cb) && same(a.scb, b.scb), `${rows}x${cols}: ${firstDiff(a.cb, b.cb)}`).toBe(true);
        expect(same(nat.dequantizeInt8Rows(a.cb, a.scb, rows, cols), ref.dequantizeInt8Rows(b.cb, b.scb, rows, cols))).toBe(true);
      }
    });

    it('f16 / bf16 conversions: random bit patterns (NaN payloads included) and every 16-bit value', () => {
      use();
      const x = once('bits', () => {
        const r = rng(9);
        return new Float32Array(Uint32Array.from({ length: (1 << 20) + 5 }, () => Math.floor(r() * 2 ** 32)).buffer);
      });
      const [h16, b16] = [nat.f32ToF16(x), nat.f32ToBf16(x)];
      const [rh16, rb16] = once('bits/ref', () => [ref.f32ToF16(x), ref.f32ToBf16(x)]);
      expect(same(h16, rh16), `f32ToF16 ${firstDiff(h16, rh16)}`).toBe(true);
      expect(same(b16, rb16), `f32ToBf16 ${firstDiff(b16, rb16)}`).toBe(true);
      const h = Uint16Array.from({ length: 65536 * 3 }, (_, i) => i & 0xffff);
      const f16a = new Uint32Array(nat.f16ToF32(h).buffer);
      const f16b = new Uint32Array(ref.f16ToF32(h).buffer);
      expect(same(f16a, f16b), `f16ToF32 ${firstDiff(f16a, f16b)}`).toBe(true);
      expect(same(nat.bf16ToF32(h), ref.bf16ToF32(h))).toBe(true);
    });
  });

  it('validates like the reference backend', () => {
    expect(() => nat.quantize4bit(new Float32Array(4), 48, 'nf4')).toThrow(PeftError);
    expect(() => nat.dequantize4bit(new Uint8Array(1), new Float32Array(1), 4, 64, 'nf4')).toThrow(/packed has 1 elements, needs 2/);
    expect(() => nat.quantizeBlockwise8(new Float32Array(4), new Float32Array(255), 64)).toThrow(/256 entries/);
    expect(() => nat.quantizeInt8Rows(new Float32Array(5), 2, 3)).toThrow(PeftError);
    expect(nat.quantize4bit(new Float32Array(0), 64, 'nf4').packed.length).toBe(0);
    // what only the kernels can see (an output aliasing an input) comes back as a PeftError too
    const out = new Float32Array(256);
    const aliased = () => nat.dequantizeBlockwise8(new Uint8Array(256), out.subarray(0, 1), DYNAMIC_MAP, 256, out);
    expect(aliased).toThrow(PeftError);
    expect(aliased).toThrow(/dequantizeBlockwise8 \(native\)/);
  });
});
