/**
 * The reference backend on cases worked out by hand, and its conversions on every f16/bf16 value.
 * The same cases run on the native backend when it is built (they are cheap).
 */
import { describe, expect, it } from 'vitest';
import { nativeBackend, referenceBackend, tryLoadKernels } from '../src/backend/index.js';
import type { Backend } from '../src/backend/types.js';
import { PeftError } from '../src/errors.js';
import { DYNAMIC_MAP, FP4, NF4, NF4_THRESHOLDS } from '../src/backend/quant-tables.js';

const kernels = tryLoadKernels();
const all: [string, Backend][] = [['reference', referenceBackend], ...(kernels ? [['native', nativeBackend(kernels)] as [string, Backend]] : [])];

const f32 = (...v: number[]) => Float32Array.from(v);
const bits = (x: number) => new Uint32Array(Float32Array.of(x).buffer)[0];
const fromBits = (b: number) => new Float32Array(Uint32Array.of(b).buffer)[0];
const nextUp = (x: number) => fromBits(bits(x) + (x >= 0 ? 1 : -1));

describe.each(all)('%s backend, hand-worked cases', (_name, be) => {
  it('NF4 of [1, -1, 0.5, 0]', () => {
    // one partial block, absmax 1, so s = x. Codes count the thresholds strictly below s:
    // 1 -> all 15 -> 15; -1 -> none -> 0; 0.5 -> 12 (0.3893 < 0.5 < 0.5017) -> table 0.4407;
    // 0 -> the 7 negative thresholds -> 7 (table 0.0). Bytes: 15<<4|0 = 0xF0, 12<<4|7 = 0xC7.
    const q = be.quantize4bit(f32(1, -1, 0.5, 0), 64, 'nf4');
    expect([...q.packed]).toEqual([0xf0, 0xc7]);
    expect([...q.absmax]).toEqual([1]);
    expect([...be.dequantize4bit(q.packed, q.absmax, 4, 64, 'nf4')]).toEqual([1, -1, NF4[12], 0]);
    expect(NF4[12]).toBe(Math.fround(0.44070982933044434));
  });

  it('FP4 of [1, -1, 0.5, 0]', () => {
    // |s| = 1 passes all 7 thresholds -> bits 0b011 (12/12); the sign adds 8 -> 11.
    // 0.5 passes 5 (up to 0.4166667) -> 0b101 (6/12); 0 -> 0. Bytes 0x3B, 0x50.
    const q = be.quantize4bit(f32(1, -1, 0.5, 0), 32, 'fp4');
    expect([...q.packed]).toEqual([0x3b, 0x50]);
    expect([...be.dequantize4bit(q.packed, q.absmax, 4, 32, 'fp4')]).toEqual([1, -1, 0.5, 0]);
  });

  it('a value exactly on a threshold takes the lower code', () => {
    for (let k = 0; k < 15; k++) {
      const t = NF4_THRESHOLDS[k];
      const q = be.quantize4bit(f32(1, t, nextUp(t)), 32, 'nf4'); // absmax 1: s == x
      expect([q.packed[0] & 15, q.packed[1] >> 4]).toEqual([k, k + 1]);
    }
  });

  it('nibble order and odd n: element 2j high, the last low nibble empty', () => {
    const q = be.quantize4bit(f32(1, -1, 0.5), 32, 'nf4');
    expect([...q.packed]).toEqual([0xf0, 0xc0]);
    expect(be.dequantize4bit(q.packed, q.absmax, 3, 32, 'nf4').length).toBe(3);
  });

  it('an all-zero block gets absmax 0 and code 0 (s = 0 * inf = NaN)', () => {
    const x = new Float32Array(64);
    x.fill(0.25, 32);
    for (const type of ['nf4', 'fp4'] as const) {
      const q = be.quantize4bit(x, 32, type);
      expect([...q.absmax]).toEqual([0, 0.25]);
      expect(q.packed.subarray(0, 16).every((b) => b === 0)).toBe(true);
      const y = be.dequantize4bit(q.packed, q.absmax, 64, 32, type);
      expect(y.subarray(0, 32).every((v) => v === 0)).toBe(true); // NF4 code 0 is -1 * 0 = -0
    }
  });

  it('FP4 sign: -0 is positive, tiny negatives keep the sign bit (and dequantize to -0)', () => {
    const q = be.quantize4bit(f32(1, -0, -1e-7, -0.002), 32, 'fp4');
    expect([q.packed[0] & 15, q.packed[1] >> 4, q.packed[1] & 15]).toEqual([0, 8, 8]);
    const y = be.dequantize4bit(q.packed, q.absmax, 4, 32, 'fp4');
    expect(Object.is(y[1], 0)).toBe(true);
    expect(Object.is(y[2], -0)).toBe(true);
    expect(Object.is(FP4[8], -0)).toBe(true);
  });

  it('blockwise 8-bit: 1 -> 255, 0 -> the zero entry, midpoints go lower', () => {
    const zero = DYNAMIC_MAP.indexOf(0);
    const mid = Math.fround(Math.fround(DYNAMIC_MAP[200] + DYNAMIC_MAP[201]) * 0.5);
    const q = be.quantizeBlockwise8(f32(1, 0, mid, nextUp(mid), -1), DYNAMIC_MAP, 32);
    expect([...q.codes]).toEqual([255, zero, 200, 201, 0]);
    expect(be.dequantizeBlockwise8(q.codes, q.absmax, DYNAMIC_MAP, 32)[0]).toBe(1);
  });

  it('int8 rows: 127 / absmax scale, ties to even, zero rows', () => {
    const w = f32(127, 2.5, -2.5, 3.5, 0.5, -0.5, 0, 0, 0, 0, 0, 0, -2, 1, 0, 0, 0, 0);
    const q = be.quantizeInt8Rows(w, 3, 6);
    expect([...q.scb]).toEqual([127, 0, 2]);
    expect([...q.cb]).toEqual([127, 2, -2, 4, 0, 0, 0, 0, 0, 0, 0, 0, -127, 64, 0, 0, 0, 0]); // 63.5 -> 64
    const y = be.dequantizeInt8Rows(q.cb, q.scb, 3, 6);
    expect(y[0]).toBe(Math.fround(Math.fround(127 * 127) * Math.fround(1 / 127)));
    expect([...y.subarray(6, 12)]).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('f32 -> f16 rounding: ties to even, subnormals, overflow, NaN payloads', () => {
    const cases: [number, number][] = [
      [1, 0x3c00], [65504, 0x7bff], [nextUp(65519), 0x7bff], [65520, 0x7c00], [-Infinity, 0xfc00],
      [2 ** -24, 0x0001], [2 ** -25, 0x0000], [1.5 * 2 ** -25, 0x0001], [2 ** -14, 0x0400],
      [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [-0, 0x8000], [(1023.5 / 1024) * 2 ** -14, 0x0400],
    ];
    for (const [x, h] of cases) expect(be.f32ToF16(f32(x))[0], `${x}`).toBe(h);
    const nans = new Float32Array(Uint32Array.of(0x7fc00000, 0x7f800001, 0xffc12345).buffer);
    expect([...be.f32ToF16(nans)]).toEqual([0x7e00, 0x7e00, 0x8000 | 0x7e00 | (0x412345 >>> 13)]);
  });

  it('f32 -> bf16 rounding', () => {
    const x = new Float32Array(Uint32Array.of(0x3f800000, 0x3f808000, 0x3f818000, 0x3f808001, 0x7f7fffff, 0xff812345).buffer);
    expect([...be.f32ToBf16(x)]).toEqual([0x3f80, 0x3f80, 0x3f82, 0x3f81, 0x7f80, 0xffc0]);
  });

  it('every f16 and bf16 value converts to f32 exactly and back unchanged', () => {
    const all16 = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const f = be.f16ToF32(all16);
    const back = be.f32ToF16(f);
    const fb = new Uint32Array(f.buffer);
    for (let h = 0; h < 65536; h++) {
      const nan = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (nan) {
        // quiet bit set (as F16C does), payload kept
        expect(fb[h] >>> 0, `f16 ${h}`).toBe(((h & 0x8000) << 16 | 0x7fc00000 | ((h & 0x3ff) << 13)) >>> 0);
        expect(back[h]).toBe(h | 0x200); // quieted on the way back
      } else if (back[h] !== h) {
        expect.fail(`f16 0x${h.toString(16)} -> ${f[h]} -> 0x${back[h].toString(16)}`);
      }
    }
    const bf = be.bf16ToF32(all16);
    expect([...new Uint32Array(bf.buffer)].every((b, i) => b === i * 65536)).toBe(true);
    const bback = be.f32ToBf16(bf);
    expect(bback.every((b, i) => ((i & 0x7f80) === 0x7f80 && (i & 0x7f) !== 0 ? b === ((i & 0x8000) | 0x7fc0) : b === i))).toBe(true);
  });

  it('rejects bad arguments with PeftError', () => {
    const bad = [
      () => be.quantize4bit(f32(1), 48, 'nf4'),
      () => be.quantize4bit(f32(1), 8192, 'nf4'),
      () => be.quantize4bit(f32(1), 64, 'int4' as 'nf4'),
      () => be.dequantize4bit(new Uint8Array(1), f32(1), 4, 64, 'nf4'),
      () => be.dequantize4bit(new Uint8Array(2), f32(1), 4, 64, 'nf4', new Float32Array(3)),
      () => be.quantizeBlockwise8(f32(1), DYNAMIC_MAP.slice().reverse(), 256),
      () => be.quantizeInt8Rows(f32(1, 2, 3), 2, 2),
      () => be.f16ToF32(new Uint16Array(2), new Float32Array(1)),
    ];
    for (const f of bad) expect(f).toThrow(PeftError);
    expect(() => be.quantize4bit(f32(1), 48, 'nf4')).toThrow(/power of two in 32\.\.4096, got 48/);
  });
});
