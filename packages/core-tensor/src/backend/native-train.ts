/**
 * The native training kernels (@peft/kernels-napi: same names and argument order as train-kernels.ts,
 * Float32Array only) behind the TrainKernels contract, and the choice between them and the reference.
 * The adapter validates every call with the reference's own checks (same messages), rejects f64 arrays,
 * and maps kernel errors to PeftErrors; the kernels only compute.
 */
import { PeftError } from '../errors.js';
import { kindFromEnv, type BackendKind } from './kind.js';
import { guard, loadKernels, tryLoadKernels } from './native.js';
import { referenceTrainKernels, trainChecks, TRAIN_KERNEL_NAMES } from './reference-train/index.js';
import type { F, TrainKernels } from './train-kernels.js';

type F32Args<A extends unknown[]> = { [I in keyof A]: A[I] extends F ? Float32Array : A[I] };

/** The training part of @peft/kernels-napi: every contract function, with f32 arrays where it says F. */
export type NativeTrainFns = { [K in keyof TrainKernels]: (...args: F32Args<Parameters<TrainKernels[K]>>) => void };

/** The contract functions a loaded module lacks (all of them for a build that predates training). */
export function missingTrainKernels(mod: object): (keyof TrainKernels)[] {
  return TRAIN_KERNEL_NAMES.filter((f) => typeof (mod as Record<string, unknown>)[f] !== 'function');
}

function requireF32(op: string, args: readonly unknown[]): void {
  const i = args.findIndex((a) => a instanceof Float64Array);
  if (i >= 0) {
    throw new PeftError('E_INPUT', `${op} (native): argument ${i + 1} is a Float64Array, but the native kernels ` +
      'take Float32Array only; use referenceTrainKernels (PEFT_BACKEND=reference) for f64');
  }
}


/** Wraps the native functions of `k` (the loaded module) as TrainKernels; throws E_RUNTIME if any is missing. */
export function nativeTrainKernels(k: object = loadKernels()): TrainKernels {
  const missing = missingTrainKernels(k);
  if (missing.length > 0) {
    throw new PeftError('E_RUNTIME', `the native kernels lack ${missing.join(', ')} (stale build?): rebuild them ` +
      "with 'pnpm --filter @peft/kernels-napi build', or set PEFT_BACKEND=reference");
  }
  const fns = k as NativeTrainFns;
  const out: Partial<Record<keyof TrainKernels, unknown>> = {};
  for (const name of TRAIN_KERNEL_NAMES) {
    const check = trainChecks[name] as (...args: unknown[]) => void;
    const kernel = fns[name] as (...args: unknown[]) => void;
    out[name] = (...args: unknown[]) => {
      requireF32(name, args);
      check(...args);
      guard(name, () => kernel(...args));
    };
  }
  return out as TrainKernels;
}

let native: TrainKernels | undefined;
let auto: TrainKernels | undefined;

/**
 * The training kernels to compute with, chosen like getBackend: 'native' throws (E_RUNTIME) when the binary
 * or its training kernels are missing; 'auto' falls back to the reference, decided once per process.
 */
export function getTrainKernels(kind: BackendKind = kindFromEnv()): TrainKernels {
  if (kind === 'reference') return referenceTrainKernels;
  if (kind === 'native') return (native ??= nativeTrainKernels(loadKernels()));
  if (kind !== 'auto') throw new PeftError('E_INPUT', `unknown backend kind '${String(kind)}'`);
  if (auto) return auto;
  const k = tryLoadKernels();
  auto = k && missingTrainKernels(k).length === 0 ? (native ??= nativeTrainKernels(k)) : referenceTrainKernels;
  return auto;
}
