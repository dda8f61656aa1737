/**
 * Shared by the plugin's tests: the torch fixtures of scripts/ref/galore_reference.py, the kernels to
 * run on (the TS reference always; the native kernels when built, and required under
 * PEFT_REQUIRE_NATIVE=1 as in `make test`), parameters with fixed gradients, and a stepping loop.
 */
import {
  createOptimizer, missingTrainKernels, nativeTrainKernels, referenceTrainKernels, resolveOptions, SafetensorsFile,
  tensor, tryLoadKernels, type Optimizer, type OptimizerDef, type Tensor, type TrainKernels,
} from '@peft/core-tensor';
import { join } from 'node:path';

export const FIXTURES = join(import.meta.dirname, 'fixtures');

export type Arr = Float32Array | Float64Array | Uint8Array;

export interface Fixture {
  get(name: string): Arr;
  meta: Record<string, string>;
}

export async function readFixture(name: string): Promise<Fixture> {
  const f = await SafetensorsFile.open(join(FIXTURES, `${name}.safetensors`));
  const out = new Map<string, Arr>();
  for (const t of f.tensors) {
    const b = (await f.read(t.name)).slice();
    const View = t.dtype === 'F64' ? Float64Array : t.dtype === 'F32' ? Float32Array : Uint8Array;
    out.set(t.name, new View(b.buffer, b.byteOffset, b.byteLength / View.BYTES_PER_ELEMENT));
  }
  const meta = { ...f.metadata };
  await f.close();
  return {
    get: (n) => {
      const v = out.get(n);
      if (!v) throw new Error(`fixture ${name} has no tensor ${n}`);
      return v;
    },
    meta,
  };
}

const binary = tryLoadKernels();
const nativeReady = binary !== undefined && missingTrainKernels(binary).length === 0;
if (process.env.PEFT_REQUIRE_NATIVE === '1' && !nativeReady) throw new Error('PEFT_REQUIRE_NATIVE=1 but the native training kernels are not built');

/** [label, kernels]: the reference, and the native kernels when built. */
export const KERNELS: [string, TrainKernels][] = [
  ['reference', referenceTrainKernels], ...(nativeReady ? [['native', nativeTrainKernels(binary!)] as [string, TrainKernels]] : []),
];

/** Fresh trainable tensors with the given values. */
export function makeParams(values: readonly (readonly [string, readonly number[], ArrayLike<number>])[]): [string, Tensor][] {
  return values.map(([name, shape, data]) => [name, tensor(data, shape, { requiresGrad: true })]);
}

export function optimizerFor(def: OptimizerDef, params: [string, Tensor][], options: Record<string, unknown>, kernels: TrainKernels,
  seed = 0): Optimizer {
  return createOptimizer(def, params, resolveOptions(def.name, def.options, options), { kernels, seed, totalSteps: 100 });
}

/** One step: every param gets grads(name) (or none when it returns undefined), then opt.step(lr); grads freed. */
export function stepWith(opt: Optimizer, params: [string, Tensor][], lr: number,
  grads: (name: string, t: Tensor) => ArrayLike<number> | undefined): void {
  for (const [name, t] of params) {
    const g = grads(name, t);
    t.grad = g ? tensor(g, t.shape) : undefined;
  }
  opt.step(lr);
  for (const [, t] of params) {
    t.grad?.dispose();
    t.grad = undefined;
  }
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return a.length === b.length ? d : Infinity;
}
