/**
 * The native training kernels (through the nativeTrainKernels adapter) run the same checks as the
 * reference: torch fixtures and hand-worked cases, agreement with the reference in f64 on random shapes,
 * at every SIMD level, and fused-dequant GEMMs bit-identical to native gemm on the dequantized weight.
 * Tolerances (normwise, see expectClose): 1e-4, for f32 arithmetic over sums of up to ~4k terms.
 * Skipped while the native build lacks the training kernels, unless PEFT_REQUIRE_NATIVE=1 (make test):
 * then their absence fails. The adapter's own behaviour is tested with a fake module, binary or not.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getTrainKernels, missingTrainKernels, nativeTrainKernels } from '../src/backend/native-train.js';
import { nativeLoadError, nativeSimdLevels, tryLoadKernels } from '../src/backend/native.js';
import { referenceTrainKernels, TRAIN_KERNEL_NAMES } from '../src/backend/reference-train/index.js';
import { PeftError } from '../src/errors.js';
import { agreementChecks, fusedDequantChecks } from './train-kernels-agree.js';
import { fixtureChecks, handChecks } from './train-kernels-suite.js';
import { F32 } from './train-kernels-util.js';

const RTOL = 1e-4;
const required = process.env.PEFT_REQUIRE_NATIVE === '1';
const binary = tryLoadKernels();
const missing = binary ? missingTrainKernels(binary) : [...TRAIN_KERNEL_NAMES];
const ready = binary !== undefined && missing.length === 0;
const why = binary ? `the native build lacks ${missing.join(', ')}`
  : `the native binary does not load: ${nativeLoadError()}`;

describe.runIf(required)('native training kernels are built (PEFT_REQUIRE_NATIVE=1)', () => {
  it('exports every training kernel', () => {
    expect(ready, `${why}; build with 'pnpm --filter @peft/kernels-napi build'`).toBe(true);
  });
});

describe.skipIf(!ready)(ready ? 'native training kernels' : `native training kernels (skipped: ${why})`, () => {
  const k = ready ? nativeTrainKernels(binary!) : referenceTrainKernels;
  const levels = nativeSimdLevels();
  afterAll(() => binary?.setSimdLevel(levels[0]));

  describe.each(levels)('at SIMD level %s', (level) => {
    beforeAll(() => binary!.setSimdLevel(level));
    describe(`match torch (f32, rtol ${RTOL})`, () => {
      fixtureChecks(k, F32, RTOL);
      handChecks(k, F32, RTOL);
    });
    describe(`agree with the reference in f64 on random shapes (rtol ${RTOL})`, () => agreementChecks(k, RTOL));
    describe('fused-dequant GEMMs are bit-identical to native gemm on the dequantized weight', () => {
      fusedDequantChecks(k);
    });
  });
});

// The checks above, through the adapter, over a stand-in that is certainly correct: proves they pass
// for a right f32 implementation at the stated tolerance and that the adapter passes arguments in order.
describe('the native checks pass through the adapter over the reference kernels (no binary needed)', () => {
  const k = nativeTrainKernels(referenceTrainKernels);
  fixtureChecks(k, F32, RTOL);
  handChecks(k, F32, RTOL);
  agreementChecks(k, RTOL);
  fusedDequantChecks(k);
});

describe('nativeTrainKernels adapter (a fake module: runs without the binary)', () => {
  const calls: string[] = [];
  const fake = (fail?: Error) => Object.fromEntries(TRAIN_KERNEL_NAMES.map((name) => [name, () => {
    calls.push(name);
    if (fail) throw fail;
  }]));
  const codeOf = (f: () => void): string | undefined => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(PeftError);
      return (e as PeftError).code;
    }
    return undefined;
  };
  const f32 = (n: number) => new Float32Array(n);

  it('passes valid f32 calls through to the kernel of the same name', () => {
    calls.length = 0;
    const k = nativeTrainKernels(fake());
    k.gemm(false, true, 2, 3, 4, 1, f32(8), f32(12), 0, f32(6));
    k.swigluForward(f32(5), f32(5), f32(5), 5);
    expect(calls).toEqual(['gemm', 'swigluForward']);
  });

  it('rejects Float64Array arguments (E_INPUT) before calling the kernel', () => {
    calls.length = 0;
    const k = nativeTrainKernels(fake());
    expect(() => k.swigluForward(f32(5), new Float64Array(5), f32(5), 5)).toThrow(/argument 2 is a Float64Array/);
    expect(codeOf(() => k.rmsnormForward(f32(4), new Float64Array(2), f32(4), f32(2), 2, 2, 1e-5))).toBe('E_INPUT');
    expect(calls).toEqual([]);
  });

  it("validates shapes with the reference's messages", () => {
    calls.length = 0;
    const k = nativeTrainKernels(fake());
    for (const kk of [k, referenceTrainKernels]) {
      expect(() => kk.attentionForward(f32(8), f32(2), f32(8), f32(4), f32(4), 1, 2, 1, 1, 1, 4, 1))
        .toThrow(/attentionForward: S \(1\) must be >= T \(2\)/);
    }
    expect(calls).toEqual([]);
  });

  it('maps kernel errors: EINVAL to E_INPUT, anything else to E_RUNTIME', () => {
    const einval = Object.assign(new Error('out aliases x'), { code: 'EINVAL' });
    const call = (k: ReturnType<typeof nativeTrainKernels>) => () => k.swigluForward(f32(1), f32(1), f32(1), 1);
    expect(codeOf(call(nativeTrainKernels(fake(einval))))).toBe('E_INPUT');
    expect(codeOf(call(nativeTrainKernels(fake(new Error('boom')))))).toBe('E_RUNTIME');
    expect(call(nativeTrainKernels(fake(einval)))).toThrow(/swigluForward \(native\): out aliases x/);
  });

  it('refuses a module that lacks kernels (E_RUNTIME, naming them)', () => {
    const partial = fake();
    delete partial.adamwStep;
    delete partial.gemmBf16;
    expect(missingTrainKernels(partial)).toEqual(['gemmBf16', 'adamwStep']);
    expect(() => nativeTrainKernels(partial)).toThrow(/lack gemmBf16, adamwStep \(stale build\?\)/);
    expect(codeOf(() => nativeTrainKernels({}))).toBe('E_RUNTIME');
  });

  it('getTrainKernels picks like getBackend: reference by name, native only when complete', () => {
    expect(getTrainKernels('reference')).toBe(referenceTrainKernels);
    expect(getTrainKernels('auto') === referenceTrainKernels).toBe(!ready);
    if (ready) expect(getTrainKernels('native')).toBe(getTrainKernels('auto'));
    else expect(codeOf(() => getTrainKernels('native'))).toBe('E_RUNTIME');
    expect(codeOf(() => getTrainKernels('gpu' as 'auto'))).toBe('E_INPUT');
    const saved = process.env.PEFT_BACKEND;
    try {
      process.env.PEFT_BACKEND = 'reference';
      expect(getTrainKernels()).toBe(referenceTrainKernels);
      process.env.PEFT_BACKEND = 'fast';
      expect(() => getTrainKernels()).toThrow(/PEFT_BACKEND must be one of auto, native, reference, got 'fast'/);
    } finally {
      if (saved === undefined) delete process.env.PEFT_BACKEND;
      else process.env.PEFT_BACKEND = saved;
    }
  });
});
