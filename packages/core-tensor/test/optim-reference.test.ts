/**
 * The optimizers, schedules and clipping against torch 1.13 (fixtures of scripts/ref/optim_reference.py):
 * SGD in every variant bit for bit, AdamW bit for bit through the native kernel (within 1e-6 through the
 * TS reference), HF schedules, clip_grad_norm_, and a clip + schedule + AdamW sequence as the trainer runs it.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { missingTrainKernels, nativeTrainKernels } from '../src/backend/native-train.js';
import { tryLoadKernels } from '../src/backend/native.js';
import { referenceTrainKernels } from '../src/backend/reference-train/index.js';
import type { TrainKernels } from '../src/backend/train-kernels.js';
import { SafetensorsFile } from '../src/io/safetensors-reader.js';
import { clipGradNorm, createAdamW, createSgd, lrAt, type ScheduleName } from '../src/optim/index.js';
import type { Optimizer } from '../src/optim/index.js';
import { tensor } from '../src/tensor/create.js';
import type { Tensor } from '../src/tensor/tensor.js';

const DIR = join(import.meta.dirname, 'fixtures', 'optim');
const NAMES = ['a', 'b'] as const;
const SKIP = { name: 'b', step: 1 }; // the fixture's param b has no grad at step index 1

interface Fixture {
  config: Record<string, any>;
  f32(name: string): Float32Array;
  f64(name: string): Float64Array;
  shape(name: string): number[];
}

async function fixture(name: string): Promise<Fixture> {
  const f = await SafetensorsFile.open(join(DIR, `${name}.safetensors`));
  const data = new Map<string, Uint8Array>();
  for (const t of f.tensors) data.set(t.name, await f.read(t.name));
  await f.close();
  const bytes = (n: string) => {
    const b = data.get(n);
    if (!b) throw new Error(`${name}: no tensor ${n}`);
    return b;
  };
  return {
    config: JSON.parse(f.metadata.config),
    f32: (n) => new Float32Array(bytes(n).buffer.slice(0) as ArrayBuffer),
    f64: (n) => new Float64Array(bytes(n).buffer.slice(0) as ArrayBuffer),
    shape: (n) => [...f.get(n)!.shape],
  };
}

function paramsOf(f: Fixture): [string, Tensor][] {
  return NAMES.map((n) => [n, tensor(f.f32(`${n}.param0`), f.shape(`${n}.param0`), { requiresGrad: true })]);
}

/** Sets each param's grad to the fixture's grad of step s (none for the skipped one). */
function setGrads(f: Fixture, params: [string, Tensor][], s: number): void {
  for (const [n, p] of params) {
    p.grad?.dispose();
    p.grad = undefined;
    if (n === SKIP.name && s === SKIP.step) continue;
    const all = f.f32(`${n}.grads`);
    const size = p.size;
    p.grad = tensor(all.subarray(s * size, (s + 1) * size), p.shape);
  }
}

function bitsEqual(a: Float32Array, b: Float32Array, what: string): void {
  expect(a.length, what).toBe(b.length);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  const i = ua.findIndex((x, j) => x !== ub[j]);
  expect(i, `${what}: first difference at ${i}: ${a[i]} vs ${b[i]}`).toBe(-1);
}

/** Normwise closeness: |a - e| <= rtol * max|e| everywhere. */
function close(a: ArrayLike<number>, e: ArrayLike<number>, rtol: number, what: string): void {
  let scale = 0;
  for (let i = 0; i < e.length; i++) scale = Math.max(scale, Math.abs(e[i]));
  for (let i = 0; i < e.length; i++) {
    expect(Math.abs(a[i] - e[i]) <= rtol * scale, `${what}[${i}]: ${a[i]} vs ${e[i]}`).toBe(true);
  }
}

type Check = (actual: Float32Array, expected: Float32Array, what: string) => void;

/** Steps `opt` through the fixture's grads and lrs, checking every param after every step. */
function replay(f: Fixture, make: (p: [string, Tensor][]) => Optimizer, check: Check): [string, Tensor][] {
  const params = paramsOf(f);
  const opt = make(params);
  (f.config.lrs as number[]).forEach((lr, s) => {
    setGrads(f, params, s);
    opt.step(lr);
    for (const [n, p] of params) check(p.data as Float32Array, f.f32(`${n}.step${s + 1}`), `${n} after step ${s + 1}`);
  });
  const state = opt.stateDict();
  for (const [key, value] of state.tensors) {
    expect([value.dtype, value.shape], `state ${key}: torch's dtype and shape`).toEqual(['F32', f.shape(key)]);
    check(value.data as Float32Array, f.f32(key), `state ${key}`);
  }
  opt.dispose();
  return params;
}

const exact: Check = bitsEqual;

describe('SGD matches torch.optim.SGD bit for bit', () => {
  it.each(['plain', 'momentum', 'dampening', 'nesterov_wd', 'wd'])('%s', async (variant) => {
    const f = await fixture(`sgd_${variant}`);
    const c = f.config;
    const params = replay(f, (p) => createSgd(p, {
      momentum: c.momentum, dampening: c.dampening, nesterov: c.nesterov, weightDecay: c.weight_decay,
    }), exact);
    for (const [, p] of params) p.dispose();
  });
});

const binary = tryLoadKernels();
const native = binary && missingTrainKernels(binary).length === 0 ? nativeTrainKernels(binary) : undefined;
const kernelSets: [string, TrainKernels | undefined, Check][] = [
  ['native kernel, bit for bit', native, exact],
  ['TS reference kernel, within 1e-6', referenceTrainKernels, (a, e, w) => close(a, e, 1e-6, w)],
];

describe.each(kernelSets)('AdamW matches torch.optim.AdamW (%s)', (_, kernels, check) => {
  it.skipIf(!kernels).each(['default', 'wd'])('%s', async (variant) => {
    const f = await fixture(`adamw_${variant}`);
    const c = f.config;
    const params = replay(f, (p) => createAdamW(p, {
      beta1: c.beta1, beta2: c.beta2, eps: c.eps, weightDecay: c.weight_decay, kernels,
    }), check);
    for (const [, p] of params) p.dispose();
  });
});

describe('clipGradNorm matches torch.nn.utils.clip_grad_norm_', () => {
  it.each(['clipped', 'unclipped'])('%s', async (tag) => {
    const f = await fixture('clip');
    const params = NAMES.map((n) => {
      const g = f.f32(`${tag}.${n}.grad`);
      const p = tensor(new Float32Array(g.length), [g.length], { requiresGrad: true });
      p.grad = tensor(g);
      return p;
    });
    const norm = clipGradNorm(params, f.config[`${tag}_max_norm`]);
    close([norm], f.f32(`${tag}.norm`), 1e-6, 'norm');
    NAMES.forEach((n, i) => {
      const got = params[i].grad!.data as Float32Array;
      if (tag === 'unclipped') bitsEqual(got, f.f32(`${tag}.${n}.grad`), `${n} untouched`);
      close(got, f.f32(`${tag}.${n}.clipped`), 1e-6, `${n} clipped`);
    });
    if (tag === 'clipped') {
      const after = Math.hypot(...params.flatMap((p) => Array.from(p.grad!.data)));
      expect(after).toBeCloseTo(1, 5);
    }
    for (const p of params) p.dispose();
  });

  it('skips params without a grad and leaves non-finite norms to the caller', () => {
    const a = tensor([3, 4], [2], { requiresGrad: true });
    const b = tensor([1], [1], { requiresGrad: true });
    a.grad = tensor([3, 4]);
    expect(clipGradNorm([a, b], 10)).toBe(5);
    expect(clipGradNorm([a, b], 1)).toBe(5);
    close(a.grad.data, [0.6, 0.8], 1e-6, 'clipped to norm 1');
    b.grad = tensor([Infinity]);
    expect(clipGradNorm([a, b], 1)).toBe(Infinity);
    close(a.grad.data, [0.6, 0.8], 1e-6, 'untouched by an infinite norm');
    a.dispose();
    b.dispose();
  });
});

describe('schedules follow transformers get_scheduler through torch LambdaLR', () => {
  it('every case', async () => {
    const f = await fixture('schedules');
    const cases = f.config.cases as { schedule: ScheduleName; warmup_steps: number; total_steps: number }[];
    cases.forEach((c, i) => {
      const want = f.f64(`case${i}.lrs`);
      const o = { lr: f.config.lr, schedule: c.schedule, totalSteps: c.total_steps, warmupSteps: c.warmup_steps };
      const got = Array.from(want, (_, step) => lrAt(step, o));
      // cosine goes through libm's cos (Python) vs V8's: equal to the last bit or two
      if (c.schedule === 'cosine') close(got, want, 1e-15, `case ${i} ${c.schedule}`);
      else expect(got, `case ${i} ${c.schedule}`).toEqual(Array.from(want));
    });
  });
});

describe('a trainer step sequence: clip to 1, linear schedule with warmup, AdamW with weight decay', () => {
  it('tracks torch within 1e-6', async () => {
    const f = await fixture('sequence');
    const c = f.config;
    const params = paramsOf(f);
    const opt = createAdamW(params, { beta1: c.beta1, beta2: c.beta2, eps: c.eps, weightDecay: c.weight_decay });
    const norms = f.f64('norms');
    for (let s = 0; s < c.steps; s++) {
      for (const [n, p] of params) {
        p.grad?.dispose();
        const all = f.f32(`${n}.grads`);
        p.grad = tensor(all.subarray(s * p.size, (s + 1) * p.size), p.shape);
      }
      const norm = clipGradNorm(params.map(([, p]) => p), c.max_grad_norm);
      close([norm], [norms[s]], 1e-6, `norm at step ${s + 1}`);
      opt.step(lrAt(s, { lr: c.lr, schedule: c.schedule, totalSteps: c.steps, warmupSteps: c.warmup_steps }));
      for (const [n, p] of params) close(p.data, f.f32(`${n}.step${s + 1}`), 1e-6, `${n} after step ${s + 1}`);
    }
    opt.dispose();
    for (const [, p] of params) p.dispose();
  });
});
