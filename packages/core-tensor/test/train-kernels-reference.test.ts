/**
 * The pure-TS training kernels against torch (fixtures from scripts/ref/train_kernels_reference.py),
 * against hand-worked cases, against themselves in f32 vs f64, plus their argument checks.
 * Tolerances are normwise (see expectClose): f64 arrays 1e-12 (only summation order differs from torch),
 * f32 arrays 1e-5 (inputs and outputs round to f32; the arithmetic is still done in doubles).
 * Finite-difference gradient checks are in train-kernels-gradcheck.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { referenceTrainKernels as ref } from '../src/backend/reference-train/index.js';
import { PeftError } from '../src/errors.js';
import { agreementChecks, fusedDequantChecks } from './train-kernels-agree.js';
import { fixtureChecks, handChecks } from './train-kernels-suite.js';
import { expectClose, F32, F64, readFixture } from './train-kernels-util.js';

describe('reference kernels on f64 arrays match torch (rtol 1e-12)', () => {
  fixtureChecks(ref, F64, 1e-12);
  handChecks(ref, F64, 1e-14);
});

describe('reference kernels on f32 arrays match torch (rtol 1e-5)', () => {
  fixtureChecks(ref, F32, 1e-5);
  handChecks(ref, F32, 1e-7);
});

describe('reference kernels on f32 arrays agree with f64 on random shapes (rtol 1e-6)', () => {
  agreementChecks(ref, 1e-6);
});

describe('reference fused-dequant GEMMs equal gemm on the dequantized weight', () => fusedDequantChecks(ref));

describe('rope fixture tables (what the model code must reproduce)', () => {
  it.each(['rope_default', 'rope_llama3'])('%s: cos/sin[p, i] = cos/sin(p inv_freq[i]), f32 tables close', (name) => {
    const f = readFixture(name);
    const inv = f.f64('inv_freq');
    const half = inv.length;
    const ang = Array.from({ length: f.num('max_pos') * half }, (_, i) => Math.floor(i / half) * inv[i % half]);
    expectClose(f.f64('cos'), ang.map(Math.cos), 1e-15, 'cos');
    expectClose(f.f64('sin'), ang.map(Math.sin), 1e-15, 'sin');
    // transformers builds them in f32: inv_freq to ~1 ulp, angles up to 63 rad lose ~4e-6
    expectClose(f.f32('inv_freq_f32'), inv, 1e-6, 'inv_freq in f32');
    expectClose(f.f32('cos_f32'), f.f64('cos'), 1e-5, 'cos in f32');
    expectClose(f.f32('sin_f32'), f.f64('sin'), 1e-5, 'sin in f32');
  });
});

describe('reference kernels keep the precision of the arrays they are given', () => {
  it('f64 results are not rounded to f32, f32 results are', () => {
    const c64 = new Float64Array(1);
    ref.gemm(false, false, 1, 1, 1, 1, Float64Array.of(1 / 3), Float64Array.of(1), 0, c64);
    expect(c64[0]).toBe(1 / 3);
    const c32 = new Float32Array(1);
    ref.gemm(false, false, 1, 1, 1, 1, Float32Array.of(1 / 3), Float32Array.of(3), 0, c32);
    expect(c32[0]).toBe(Math.fround(Math.fround(1 / 3) * 3));
  });

  it('zero-size calls do nothing', () => {
    const e = new Float64Array(0);
    const c = Float64Array.of(1, 2);
    ref.gemm(false, false, 0, 2, 3, 1, e, new Float64Array(6), 0, e);
    ref.gemm(false, false, 1, 2, 0, 1, e, e, 0.5, c);
    expect([...c]).toEqual([0.5, 1]);
    ref.rmsnormForward(e, e, e, e, 0, 0, 1e-5);
    ref.attentionForward(e, e, e, e, e, 1, 0, 0, 1, 1, 4, 1);
    ref.attentionBackward(e, e, e, e, e, e, e, e, e, 0, 3, 4, 2, 1, 4, 1);
    ref.crossEntropyRows(e, e, new Int32Array(0), 0, 5, -100, 1);
    ref.adamwStep(e, e, e, e, 0, 1e-3, 0.9, 0.999, 1e-8, 0, 1);
  });
});

describe('reference kernels reject bad arguments with PeftError E_INPUT', () => {
  const f = (n: number) => new Float64Array(n);
  const i32 = (...v: number[]) => Int32Array.from(v);
  const q32 = (n: number) => new Float32Array(n);
  const cases: [RegExp, () => void][] = [
    [/gemm: c has 3 elements, expected 4/, () => ref.gemm(false, false, 2, 2, 2, 1, f(4), f(4), 0, f(3))],
    [/gemm: m must be a non-negative integer/, () => ref.gemm(false, false, -1, 2, 2, 1, f(4), f(4), 0, f(4))],
    [/gemmQuant4: blocksize must be a power of two/,
      () => ref.gemmQuant4(true, 1, 2, 2, 1, q32(2), new Uint8Array(2), q32(1), 48, 0, 0, q32(2))],
    [/gemmQuant4: type must be 0 \(nf4\) or 1 \(fp4\)/,
      () => ref.gemmQuant4(true, 1, 2, 2, 1, q32(2), new Uint8Array(2), q32(1), 64, 2 as 0, 0, q32(2))],
    [/gemmInt8: scb has 2 elements, expected 3/,
      () => ref.gemmInt8(false, 1, 2, 3, 1, q32(3), new Int8Array(6), q32(2), 0, q32(2))],
    [/rmsnormForward: weight has 2 elements, expected 3/, () => ref.rmsnormForward(f(6), f(2), f(6), f(2), 2, 3, 1e-5)],
    [/ropeForward: hd must be even/, () => ref.ropeForward(f(3), f(3), f(3), f(3), i32(0), 1, 1, 3)],
    [/ropeBackward: pos\[0\] = 2 is outside the tables' 0..1/,
      () => ref.ropeBackward(f(4), f(4), f(4), f(4), i32(2), 1, 1, 4)],
    [/ropeForward: cos has 5 elements, not a multiple of hd\/2 = 2/,
      () => ref.ropeForward(f(4), f(4), f(5), f(5), i32(0), 1, 1, 4)],
    [/attentionForward: S \(1\) must be >= T \(2\)/,
      () => ref.attentionForward(f(8), f(2), f(8), f(4), f(4), 1, 2, 1, 1, 1, 4, 1)],
    [/attentionForward: nh \(3\) must be a positive multiple of nkv \(2\)/,
      () => ref.attentionForward(f(12), f(3), f(12), f(8), f(8), 1, 1, 1, 3, 2, 4, 1)],
    [/attentionBackward: lse has 2 elements, expected 1/,
      () => ref.attentionBackward(f(4), f(4), f(4), f(4), f(4), f(4), f(4), f(4), f(2), 1, 1, 1, 1, 1, 4, 1)],
    [/crossEntropyRows: targets\[1\] = 3 is outside 0..2 and not -100/,
      () => ref.crossEntropyRows(f(2), f(6), i32(1, 3), 2, 3, -100, 1)],
    [/adamwStep: step must be an integer >= 1/,
      () => ref.adamwStep(f(1), f(1), f(1), f(1), 1, 1e-3, 0.9, 0.999, 1e-8, 0, 0)],
  ];
  it.each(cases)('%s', (message, call) => {
    expect(call).toThrow(PeftError);
    expect(call).toThrow(message);
    try {
      call();
    } catch (e) {
      expect((e as PeftError).code).toBe('E_INPUT');
    }
  });
});
