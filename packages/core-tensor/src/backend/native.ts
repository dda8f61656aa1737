/**
 * The native backend: adapts the Rust kernels of `@peft/kernels-napi` (SIMD, threads) to the Backend
 * contract. The adapter validates arguments (same checks and messages as the reference backend),
 * allocates outputs and passes exact-length views; the kernels only compute.
 *
 * The .node binary is loaded lazily, on the first call that needs it, so importing core-tensor (or
 * running `peft --help`) never loads it.
 */
import { createRequire } from 'node:module';
import { PeftError } from '../errors.js';
import type { Backend, Quantized4, Quantized8, QuantizedInt8Rows, QuantType4 } from './types.js';
import {
  blockCount, checkAtLeast, checkBlocksize, checkCode256, checkCount, checkLength, checkOut, checkRows, checkType4,
} from './validate.js';

export type SimdLevel = 'avx512' | 'avx2' | 'scalar';

/** The part of @peft/kernels-napi this adapter uses (its index.d.ts is the authority). */
export interface KernelsNapi {
  simdLevel(): SimdLevel;
  setSimdLevel(level: SimdLevel): void;
  numThreads(): number;
  quantize4bit(x: Float32Array, blocksize: number, type: 0 | 1, outPacked: Uint8Array, outAbsmax: Float32Array): void;
  dequantize4bit(packed: Uint8Array, absmax: Float32Array, blocksize: number, type: 0 | 1, out: Float32Array): void;
  quantizeBlockwise8(
    x: Float32Array, code: Float32Array, blocksize: number, outCodes: Uint8Array, outAbsmax: Float32Array,
  ): void;
  dequantizeBlockwise8(
    codes: Uint8Array, absmax: Float32Array, code: Float32Array, blocksize: number, out: Float32Array,
  ): void;
  quantizeInt8Rows(w: Float32Array, rows: number, cols: number, outCb: Int8Array, outScb: Float32Array): void;
  dequantizeInt8Rows(cb: Int8Array, scb: Float32Array, rows: number, cols: number, out: Float32Array): void;
  f32ToF16(x: Float32Array, out: Uint16Array): void;
  f16ToF32(x: Uint16Array, out: Float32Array): void;
  f32ToBf16(x: Float32Array, out: Uint16Array): void;
  bf16ToF32(x: Uint16Array, out: Float32Array): void;
}

const REQUIRED: readonly (keyof KernelsNapi)[] = [
  'simdLevel', 'setSimdLevel', 'numThreads', 'quantize4bit', 'dequantize4bit', 'quantizeBlockwise8',
  'dequantizeBlockwise8', 'quantizeInt8Rows', 'dequantizeInt8Rows', 'f32ToF16', 'f16ToF32', 'f32ToBf16', 'bf16ToF32',
];

let loaded: { kernels?: KernelsNapi; best?: SimdLevel; error?: string } | undefined;

function load(): NonNullable<typeof loaded> {
  if (loaded) return loaded;
  try {
    const mod = createRequire(import.meta.url)('@peft/kernels-napi') as Partial<KernelsNapi>;
    const missing = REQUIRED.filter((f) => typeof mod[f] !== 'function');
    if (missing.length > 0) loaded = { error: `the loaded build lacks ${missing.join(', ')} (stale build?)` };
    else loaded = { kernels: mod as KernelsNapi, best: (mod as KernelsNapi).simdLevel() };
  } catch (e) {
    loaded = { error: e instanceof Error ? e.message.split('\n')[0] : String(e) };
  }
  return loaded;
}

/** The native kernels, or undefined when the binary is not built for this machine. */
export function tryLoadKernels(): KernelsNapi | undefined {
  return load().kernels;
}

/** Why the native kernels could not be loaded (undefined when they load). */
export function nativeLoadError(): string | undefined {
  return load().error;
}

export function loadKernels(): KernelsNapi {
  const l = load();
  if (l.kernels) return l.kernels;
  throw new PeftError(
    'E_RUNTIME',
    `native kernels (@peft/kernels-napi) are not available: ${l.error}. ` +
      `Build them with 'pnpm --filter @peft/kernels-napi build', or set PEFT_BACKEND=reference`,
  );
}

/** The SIMD levels this machine can run, best first (what setSimdLevel accepts). */
export function nativeSimdLevels(): SimdLevel[] {
  const best = load().best;
  const all: SimdLevel[] = ['avx512', 'avx2', 'scalar'];
  return best === undefined ? [] : all.slice(all.indexOf(best));
}

const TYPE_ID = { nf4: 0, fp4: 1 } as const;

/**
 * Runs a kernel, turning its errors into PeftErrors: the kernels throw `code: 'EINVAL'` for
 * arguments the checks above cannot see (e.g. an output aliasing an input), anything else is a bug.
 */
export function guard(op: string, run: () => void): void {
  try {
    run();
  } catch (e) {
    const code = (e as { code?: unknown }).code === 'EINVAL' ? 'E_INPUT' : 'E_RUNTIME';
    throw new PeftError(code, `${op} (native): ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

/** Wraps loaded kernels as a Backend. `simd` reads the kernels' current level on each access. */
export function nativeBackend(k: KernelsNapi = loadKernels()): Backend {
  return {
    name: 'native',
    get simd() {
      return k.simdLevel();
    },

    quantize4bit(x: Float32Array, blocksize: number, type: QuantType4): Quantized4 {
      checkBlocksize('quantize4bit', blocksize);
      checkType4('quantize4bit', type);
      const packed = new Uint8Array(Math.ceil(x.length / 2));
      const absmax = new Float32Array(blockCount(x.length, blocksize));
      if (x.length > 0) guard('quantize4bit', () => k.quantize4bit(x, blocksize, TYPE_ID[type], packed, absmax));
      return { packed, absmax };
    },

    dequantize4bit(packed, absmax, n, blocksize, type, out) {
      const op = 'dequantize4bit';
      checkCount(op, 'n', n);
      checkBlocksize(op, blocksize);
      checkType4(op, type);
      const blocks = blockCount(n, blocksize);
      checkAtLeast(op, 'packed', packed, Math.ceil(n / 2));
      checkAtLeast(op, 'absmax', absmax, blocks);
      checkOut(op, out, n);
      const y = out ?? new Float32Array(n);
      if (n > 0) {
        const p = packed.subarray(0, Math.ceil(n / 2));
        guard(op, () => k.dequantize4bit(p, absmax.subarray(0, blocks), blocksize, TYPE_ID[type], y));
      }
      return y;
    },

    quantizeBlockwise8(x: Float32Array, code: Float32Array, blocksize: number): Quantized8 {
      checkBlocksize('quantizeBlockwise8', blocksize);
      checkCode256('quantizeBlockwise8', code);
      const codes = new Uint8Array(x.length);
      const absmax = new Float32Array(blockCount(x.length, blocksize));
      if (x.length > 0) guard('quantizeBlockwise8', () => k.quantizeBlockwise8(x, code, blocksize, codes, absmax));
      return { codes, absmax };
    },

    dequantizeBlockwise8(codes, absmax, code, blocksize, out) {
      const op = 'dequantizeBlockwise8';
      checkBlocksize(op, blocksize);
      checkLength(op, 'code', code, 256);
      const blocks = blockCount(codes.length, blocksize);
      checkAtLeast(op, 'absmax', absmax, blocks);
      checkOut(op, out, codes.length);
      const y = out ?? new Float32Array(codes.length);
      if (codes.length > 0) guard(op, () => k.dequantizeBlockwise8(codes, absmax.subarray(0, blocks), code, blocksize, y));
      return y;
    },

    quantizeInt8Rows(w: Float32Array, rows: number, cols: number): QuantizedInt8Rows {
      checkRows('quantizeInt8Rows', w.length, rows, cols, 'w');
      const cb = new Int8Array(rows * cols);
      const scb = new Float32Array(rows);
      if (rows * cols > 0) guard('quantizeInt8Rows', () => k.quantizeInt8Rows(w, rows, cols, cb, scb));
      return { cb, scb };
    },

    dequantizeInt8Rows(cb, scb, rows, cols, out) {
      const op = 'dequantizeInt8Rows';
      checkRows(op, cb.length, rows, cols, 'cb');
      checkAtLeast(op, 'scb', scb, rows);
      checkOut(op, out, rows * cols);
      const y = out ?? new Float32Array(rows * cols);
      if (rows * cols > 0) guard(op, () => k.dequantizeInt8Rows(cb, scb.subarray(0, rows), rows, cols, y));
      return y;
    },

    f32ToF16: (x, out) => convert('f32ToF16', x, out ?? new Uint16Array(x.length), (a, b) => k.f32ToF16(a, b)),
    f16ToF32: (x, out) => convert('f16ToF32', x, out ?? new Float32Array(x.length), (a, b) => k.f16ToF32(a, b)),
    f32ToBf16: (x, out) => convert('f32ToBf16', x, out ?? new Uint16Array(x.length), (a, b) => k.f32ToBf16(a, b)),
    bf16ToF32: (x, out) => convert('bf16ToF32', x, out ?? new Float32Array(x.length), (a, b) => k.bf16ToF32(a, b)),
  };
}

function convert<I extends ArrayLike<number>, O extends ArrayLike<number>>(
  op: string, x: I, y: O, kernel: (x: I, out: O) => void,
): O {
  checkOut(op, y, x.length);
  if (x.length > 0) guard(op, () => kernel(x, y));
  return y;
}
