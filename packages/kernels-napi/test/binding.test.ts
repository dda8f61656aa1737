// Binding tests for the native kernels: argument validation (EINVAL with the
// argument's name) and identical results for the scalar and the best SIMD level.
// Kernel numerics themselves are tested in Rust (`cargo test --release`).
// Skipped when the .node file is not built, unless PEFT_REQUIRE_NATIVE=1.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { kernels as k, pkgDir, expectEinval, type Kernels } from './helpers.js';
import { afterAll, describe, expect, it } from 'vitest';


/** Deterministic pseudo-random values (xorshift32), with zeros, NaN, ±inf and subnormals mixed in. */
function randomF32(n: number, seed = 1, specials = true): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
  const edge = [0, -0, NaN, Infinity, -Infinity, 1e-40, -1e-45, 1, -1];
  for (let i = 0; i < n; i++) {
    out[i] = specials && next() < 1 / 32 ? edge[Math.floor(next() * edge.length)] : (next() - 0.5) * 4;
  }
  return out;
}

/** bitsandbytes-like sorted 256-entry code (a symmetric cubic ramp is enough here). */
function code256(): Float32Array {
  return Float32Array.from({ length: 256 }, (_, i) => ((i - 127.5) / 127.5) ** 3);
}


/** Run `fn` once per level and return the outputs, as bytes, for comparison. */
function perLevel(k: Kernels, fn: () => ArrayBufferView[]): Map<string, Uint8Array[]> {
  const res = new Map<string, Uint8Array[]>();
  for (const level of ['scalar', 'avx2', 'avx512'] as const) {
    try {
      k.setSimdLevel(level);
    } catch (e) {
      expect((e as { code?: string }).code).toBe('ENOTSUP');
      continue;
    }
    res.set(level, fn().map((v) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength).slice()));
  }
  return res;
}

function expectAllLevelsEqual(results: Map<string, Uint8Array[]>) {
  const scalar = results.get('scalar')!;
  for (const [level, outs] of results) {
    outs.forEach((o, i) => expect(Buffer.compare(o, scalar[i]), `${level} output ${i}`).toBe(0));
  }
}

describe.skipIf(!k)('kernels-napi binding', () => {
  const K = k!;
  const best = K?.simdLevel();
  afterAll(() => K.setSimdLevel(best));

  it('reports its level and threads', () => {
    expect(['avx512', 'avx2', 'scalar']).toContain(K.simdLevel());
    expect(K.numThreads()).toBeGreaterThanOrEqual(1);
    expect(existsSync(join(pkgDir, 'index.d.ts'))).toBe(true);
  });

  it('quantizes a hand-worked NF4 block', () => {
    const x = new Float32Array(32);
    x.set([1, -1, 0, 0.5, -0.5]);
    const packed = new Uint8Array(16);
    const absmax = new Float32Array(1);
    K.quantize4bit(x, 32, 0, packed, absmax);
    expect(Array.from(packed.slice(0, 3))).toEqual([0xf0, 0x7c, 0x27]);
    expect(absmax[0]).toBe(1);
  });

  it('rejects wrong typed-array kinds', () => {
    const x = new Float32Array(64);
    expectEinval(() => K.quantize4bit(new Float64Array(64) as never, 64, 0, new Uint8Array(32), new Float32Array(1)), 'x');
    expectEinval(() => K.quantize4bit(x, 64, 0, new Uint16Array(32) as never, new Float32Array(1)), 'outPacked');
    expectEinval(() => K.quantize4bit(x, 64, 0, [0] as never, new Float32Array(1)), 'outPacked');
    expectEinval(() => K.quantizeBlockwise8(x, code256(), 64, new Int8Array(64) as never, new Float32Array(1)), 'outCodes');
    expectEinval(() => K.quantizeInt8Rows(x, 8, 8, new Uint8Array(64) as never, new Float32Array(8)), 'outCb');
    expectEinval(() => K.f16ToF32(new Int16Array(4) as never, new Float32Array(4)), 'x');
    expectEinval(() => K.f32ToBf16(x, new Uint8ClampedArray(64) as never), 'out');
  });

  it('rejects wrong lengths, naming the argument', () => {
    const x = new Float32Array(100);
    expectEinval(() => K.quantize4bit(x, 64, 0, new Uint8Array(49), new Float32Array(2)), 'outPacked');
    expectEinval(() => K.quantize4bit(x, 64, 1, new Uint8Array(50), new Float32Array(1)), 'outAbsmax');
    expectEinval(() => K.dequantize4bit(new Uint8Array(50), new Float32Array(2), 64, 0, new Float32Array(101)), 'packed');
    expectEinval(() => K.dequantize4bit(new Uint8Array(50), new Float32Array(3), 64, 0, new Float32Array(100)), 'absmax');
    expectEinval(() => K.quantizeBlockwise8(x, new Float32Array(255), 64, new Uint8Array(100), new Float32Array(2)), 'code');
    expectEinval(() => K.dequantizeBlockwise8(new Uint8Array(99), new Float32Array(2), code256(), 64, new Float32Array(100)), 'codes');
    expectEinval(() => K.quantizeInt8Rows(x, 10, 11, new Int8Array(110), new Float32Array(10)), 'w');
    expectEinval(() => K.dequantizeInt8Rows(new Int8Array(100), new Float32Array(9), 10, 10, new Float32Array(100)), 'scb');
    expectEinval(() => K.f32ToF16(x, new Uint16Array(99)), 'out');
    expectEinval(() => K.bf16ToF32(new Uint16Array(3), new Float32Array(4)), 'out');
  });

  it('rejects bad blocksizes, types, counts and overlapping outputs', () => {
    const x = new Float32Array(128);
    for (const bs of [0, 16, 48, 8192, 64.5, -64]) {
      expectEinval(() => K.quantize4bit(x, bs, 0, new Uint8Array(64), new Float32Array(2)), 'blocksize');
    }
    expectEinval(() => K.quantize4bit(x, '64' as never, 0, new Uint8Array(64), new Float32Array(2)), 'blocksize');
    expectEinval(() => K.dequantizeBlockwise8(new Uint8Array(128), new Float32Array(2), code256(), 100, new Float32Array(128)), 'blocksize');
    expectEinval(() => K.quantize4bit(x, 64, 2 as never, new Uint8Array(64), new Float32Array(2)), 'type');
    expectEinval(() => (K.quantize4bit as (...a: unknown[]) => void)(x, 64), 'arguments');
    expectEinval(() => K.quantize4bit(x, 64, 0, new Uint8Array(x.buffer, 0, 64), new Float32Array(2)), 'outPacked');
    expectEinval(() => K.f32ToF16(x, new Uint16Array(x.buffer, 0, 128)), 'out');
    const unsorted = code256().reverse();
    expectEinval(() => K.quantizeBlockwise8(x, unsorted, 64, new Uint8Array(128), new Float32Array(2)), 'code');
    expectEinval(() => K.setSimdLevel('neon' as never), 'level');
  });

  // Sizes: odd n with a partial block, and one above the threading threshold (2^18).
  for (const n of [1001, 300_007]) {
    it(`gives identical results on every SIMD level (n=${n})`, () => {
      const x = randomF32(n, n);
      const nb = (bs: number) => Math.ceil(n / bs);
      for (const type of [0, 1] as const) {
        expectAllLevelsEqual(
          perLevel(K, () => {
            const p = new Uint8Array(Math.ceil(n / 2));
            const a = new Float32Array(nb(64));
            K.quantize4bit(x, 64, type, p, a);
            const out = new Float32Array(n);
            K.dequantize4bit(p, a, 64, type, out);
            return [p, a, out];
          }),
        );
      }
      expectAllLevelsEqual(
        perLevel(K, () => {
          const q = new Uint8Array(n);
          const a = new Float32Array(nb(256));
          K.quantizeBlockwise8(x, code256(), 256, q, a);
          const out = new Float32Array(n);
          K.dequantizeBlockwise8(q, a, code256(), 256, out);
          return [q, a, out];
        }),
      );
      const rows = 7;
      const cols = Math.floor(n / rows);
      const w = x.subarray(0, rows * cols);
      expectAllLevelsEqual(
        perLevel(K, () => {
          const cb = new Int8Array(rows * cols);
          const scb = new Float32Array(rows);
          K.quantizeInt8Rows(w, rows, cols, cb, scb);
          const out = new Float32Array(rows * cols);
          K.dequantizeInt8Rows(cb, scb, rows, cols, out);
          return [cb, scb, out];
        }),
      );
      expectAllLevelsEqual(
        perLevel(K, () => {
          const h = new Uint16Array(n);
          const b = new Uint16Array(n);
          K.f32ToF16(x, h);
          K.f32ToBf16(x, b);
          const fh = new Float32Array(n);
          const fb = new Float32Array(n);
          K.f16ToF32(h, fh);
          K.bf16ToF32(b, fb);
          return [h, b, fh, fb];
        }),
      );
    });
  }

  it('converts known values', () => {
    const h = new Uint16Array(4);
    K.f32ToF16(new Float32Array([1, 65520, NaN, -0]), h);
    expect(Array.from(h)).toEqual([0x3c00, 0x7c00, 0x7e00, 0x8000]);
    const b = new Uint16Array(2);
    K.f32ToBf16(new Float32Array([1, -NaN]), b);
    expect(b[0]).toBe(0x3f80);
    expect(b[1] & 0x7fff).toBe(0x7fc0);
  });
});
