/**
 * The randomized truncated SVD (linalg/rsvd.ts over TrainKernels.rsvd) and the blockwise-8 training
 * kernels, on the reference and (when built) the native kernels: on matrices with decaying spectra
 * (scripts/ref/galore_reference.py) the top-r singular values are within 1e-3 relative of numpy's with
 * the default oversampling and power iterations; U and Vt are orthonormal, each U column with its
 * largest-|.| entry positive; native and reference draw the same Ω and agree; the same seed gives the
 * same bits; bad arguments are refused alike. quantizeBlockwise8 / dequantizeBlockwise8 equal the
 * backend's functions bit for bit.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { missingTrainKernels, nativeTrainKernels } from '../src/backend/native-train.js';
import { tryLoadKernels } from '../src/backend/native.js';
import { referenceBackend } from '../src/backend/reference.js';
import { referenceTrainKernels } from '../src/backend/reference-train/index.js';
import type { TrainKernels } from '../src/backend/train-kernels.js';
import { SafetensorsFile } from '../src/io/safetensors-reader.js';
import { randomizedSvd } from '../src/linalg/index.js';
import { DYNAMIC_MAP } from '../src/quant/index.js';
import { maxAbsDiff, orthoDefect, randomMatrix } from './linalg-helpers.js';
import { transpose } from '../src/linalg/matrix.js';

const binary = tryLoadKernels();
const KERNELS: [string, TrainKernels][] = [['reference', referenceTrainKernels]];
if (binary && missingTrainKernels(binary).length === 0) KERNELS.push(['native', nativeTrainKernels(binary)]);
else if (process.env.PEFT_REQUIRE_NATIVE === '1') throw new Error('PEFT_REQUIRE_NATIVE=1 but the native training kernels are not built');

const CASES = { exp: { m: 200, n: 150, rank: 16 }, power: { m: 96, n: 256, rank: 8 }, geometric: { m: 160, n: 160, rank: 20 } };
const fixture = new Map<string, Float32Array | Float64Array>();
beforeAll(async () => {
  const f = await SafetensorsFile.open(join(import.meta.dirname, 'fixtures', 'linalg', 'rsvd.safetensors'));
  for (const t of f.tensors) {
    const b = (await f.read(t.name)).slice();
    fixture.set(t.name, t.dtype === 'F64' ? new Float64Array(b.buffer) : new Float32Array(b.buffer));
  }
  await f.close();
});

const f32 = (m: number, n: number, seed: number) => Float32Array.from(randomMatrix(m, n, seed));

describe.each(KERNELS)('randomizedSvd on the %s kernels', (_label, kernels) => {
  it.each(Object.entries(CASES))('%s spectrum: top-r singular values within 1e-3 of numpy', (name, { m, n, rank }) => {
    const a = fixture.get(`${name}.a`) as Float32Array;
    const want = fixture.get(`${name}.s`) as Float64Array;
    const f = randomizedSvd(kernels, a, m, n, rank, { seed: 3 });
    for (let j = 0; j < rank; j++) expect(Math.abs(f.S[j] - want[j]) / want[j], `sigma_${j}`).toBeLessThan(1e-3);
    expect(orthoDefect(Float64Array.from(f.U), m, rank)).toBeLessThan(1e-5);
    expect(orthoDefect(transpose(f.Vt, rank, n), n, rank)).toBeLessThan(1e-5);
    for (let j = 0; j < rank; j++) {
      const col = Array.from({ length: m }, (_, i) => f.U[i * rank + j]);
      const big = col.reduce((b, x) => (Math.abs(x) > Math.abs(b) ? x : b), 0);
      expect(big).toBeGreaterThan(0);
    }
  });

  it('is a function of the matrix and the seed', () => {
    const a = f32(40, 30, 1);
    const x = randomizedSvd(kernels, a, 40, 30, 5, { seed: 9 });
    expect(randomizedSvd(kernels, a, 40, 30, 5, { seed: 9 })).toEqual(x);
    expect(randomizedSvd(kernels, a, 40, 30, 5, { seed: 10 }).U).not.toEqual(x.U);
  });

  it('refuses a rank outside 1..min(m, n) and wrong lengths (E_INPUT)', () => {
    const a = f32(6, 4, 2);
    expect(() => randomizedSvd(kernels, a, 6, 4, 5)).toThrow(/rank must be in 1\.\.4/);
    expect(() => kernels.rsvd(new Float32Array(6), new Float32Array(1), new Float32Array(4), a, 6, 4, 1, 2, 65, 0)).toThrow(/powerIters must be at most 64/);
    expect(() => kernels.rsvd(new Float32Array(5), new Float32Array(1), new Float32Array(4), a, 6, 4, 1, 2, 1, 0)).toThrow(/u has 5 elements, expected 6/);
  });

  it('blockwise-8 kernels equal the backend quantizer bit for bit (signed map, partial last block, zero block)', () => {
    const x = f32(1, 700, 4);
    x.fill(0, 256, 512);
    const want = referenceBackend.quantizeBlockwise8(x, DYNAMIC_MAP, 256);
    const codes = new Uint8Array(700);
    const absmax = new Float32Array(3);
    kernels.quantizeBlockwise8(x, DYNAMIC_MAP, 256, codes, absmax);
    expect(codes).toEqual(want.codes);
    expect(absmax).toEqual(want.absmax);
    const out = new Float32Array(700);
    kernels.dequantizeBlockwise8(codes, absmax, DYNAMIC_MAP, 256, out);
    expect(out).toEqual(referenceBackend.dequantizeBlockwise8(want.codes, want.absmax, DYNAMIC_MAP, 256));
    expect(() => kernels.dequantizeBlockwise8(codes, new Float32Array(2), DYNAMIC_MAP, 256, out)).toThrow(/absmax has 2 elements, expected 3/);
  });
});

describe.runIf(KERNELS.length === 2)('native and reference randomized SVDs', () => {
  it('draw the same test matrix and agree to f32 rounding', () => {
    const [m, n, r] = [120, 90, 12];
    const a = f32(m, n, 5);
    const [x, y] = KERNELS.map(([, k]) => randomizedSvd(k, a, m, n, r, { seed: 77 }));
    expect(maxAbsDiff(x.S, y.S) / x.S[0]).toBeLessThan(1e-5);
    expect(maxAbsDiff(x.U, y.U)).toBeLessThan(1e-3);
    expect(maxAbsDiff(x.Vt, y.Vt)).toBeLessThan(1e-3);
  });
});
