/**
 * Optimizer pieces that need no torch: schedules against their formulas worked by hand, the f32 fused
 * multiply-add on a double-rounding case, state dicts that round-trip exactly and refuse foreign state,
 * the registry entries and their options, and option checks.
 */
import { describe, expect, it } from 'vitest';
import { fma32 } from '../src/optim/f32.js';
import {
  createAdamW, createSgd, lrAt, resolveWarmupSteps, type ScheduleName,
} from '../src/optim/index.js';
import type { Optimizer } from '../src/optim/index.js';
import { createOptimizer, createRegistry, registerBuiltins, resolveOptions } from '../src/plugin/index.js';
import { referenceTrainKernels } from '../src/backend/reference-train/index.js';
import { heapAllocator, setAllocator } from '../src/tensor/allocator.js';
import { tensor } from '../src/tensor/create.js';
import type { Tensor } from '../src/tensor/tensor.js';

const errorOf = (fn: () => unknown): any => {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
};

describe('schedules by hand', () => {
  const at = (schedule: ScheduleName, totalSteps: number, warmupSteps: number) =>
    Array.from({ length: totalSteps + 1 }, (_, s) => lrAt(s, { lr: 2, schedule, totalSteps, warmupSteps }));

  it('linear: warmup 2 of 6 steps: 0, 1, then 2 * (6 - s) / 4 down to 0', () => {
    expect(at('linear', 6, 2)).toEqual([0, 1, 2, 1.5, 1, 0.5, 0]);
  });

  it('cosine: warmup 1 of 5: 0, then 2 * 0.5 (1 + cos(pi (s - 1) / 4))', () => {
    const want = [0, 2, 1 + Math.SQRT1_2, 1, 1 - Math.SQRT1_2, 0];
    at('cosine', 5, 1).forEach((v, s) => expect(v).toBeCloseTo(want[s], 14));
  });

  it('constant_with_warmup ramps then holds; constant ignores warmup (as transformers)', () => {
    expect(at('constant_with_warmup', 5, 4)).toEqual([0, 0.5, 1, 1.5, 2, 2]);
    expect(at('constant', 3, 2)).toEqual([2, 2, 2, 2]);
  });

  it('warmup from a ratio is ceil(total * ratio); an explicit count wins', () => {
    expect(resolveWarmupSteps(10, { warmupRatio: 0.15 })).toBe(2);
    expect(resolveWarmupSteps(10, { warmupRatio: 0.1 })).toBe(1);
    expect(resolveWarmupSteps(10, { warmupSteps: 3, warmupRatio: 0.5 })).toBe(3);
    expect(resolveWarmupSteps(10, {})).toBe(0);
  });
});

describe('fma32', () => {
  // (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24 is the midpoint between f32 neighbours 1 + 2^-11 and 1 + 2^-11 + 2^-23.
  // Adding c = +-2^-60 decides the rounding; through f64 the 2^-60 is lost and ties-to-even picks the lower.
  const a = Math.fround(1 + 2 ** -12);
  it('rounds the exact sum once, where rounding through f64 would not', () => {
    expect(fma32(a, a, 2 ** -60)).toBe(1 + 2 ** -11 + 2 ** -23);
    expect(Math.fround(a * a + 2 ** -60)).toBe(1 + 2 ** -11); // the double rounding it avoids
    expect(fma32(a, a, -(2 ** -60))).toBe(1 + 2 ** -11);
    expect(fma32(a, a, 0)).toBe(1 + 2 ** -11); // a true tie: to even
  });

  it('passes infinities and NaN through', () => {
    expect(fma32(3e38, 10, 1)).toBe(Infinity);
    expect(fma32(NaN, 1, 1)).toBeNaN();
  });
});

function params(): [string, Tensor][] {
  return [
    ['w', tensor([0.5, -1, 2, 0.25], [2, 2], { requiresGrad: true })],
    ['b', tensor([0.1, 0.2, -0.3], [3], { requiresGrad: true })],
  ];
}

function setGrads(ps: [string, Tensor][], k: number): void {
  ps.forEach(([, p], j) => {
    p.grad?.dispose();
    p.grad = tensor(Array.from({ length: p.size }, (_, i) => Math.sin(1 + i + 3 * j + 7 * k)), p.shape);
  });
}

const bitsOf = (ps: [string, Tensor][]) => ps.map(([, p]) => Array.from(new Uint32Array((p.data as Float32Array).slice().buffer)));

describe.each([
  ['adamw', (ps: [string, Tensor][]) => createAdamW(ps, { weightDecay: 0.1 })],
  ['sgd', (ps: [string, Tensor][]) => createSgd(ps, { momentum: 0.9, nesterov: true })],
])('%s state dict', (name, make: (ps: [string, Tensor][]) => Optimizer) => {
  it('round-trips exactly: a restored optimizer continues bit for bit', () => {
    const [pa, pb] = [params(), params()];
    const [a, b] = [make(pa), make(pb)];
    for (let k = 0; k < 3; k++) {
      setGrads(pa, k);
      a.step(0.01);
    }
    const state = a.stateDict();
    pa.forEach(([, p], j) => pb[j][1].data.set(p.data));
    b.loadStateDict(state);
    expect(b.stateDict()).toEqual(state);
    for (let k = 3; k < 6; k++) {
      setGrads(pa, k);
      setGrads(pb, k);
      a.step(0.01);
      b.step(0.01);
    }
    expect(bitsOf(pb)).toEqual(bitsOf(pa));
    expect(state.meta).toMatchObject({ optimizer: name, 'w.step': 3, 'b.step': 3 });
    const copy = state.tensors.values().next().value!.data;
    const before = copy.slice();
    a.step(0.01);
    expect(copy).toEqual(before); // a state dict is a snapshot, not a view
    for (const o of [a, b]) o.dispose();
    for (const [, p] of [...pa, ...pb]) p.dispose();
  });

  it('refuses state of another optimizer, other settings or other params, and changes nothing then', () => {
    const ps = params();
    const o = make(ps);
    setGrads(ps, 0);
    o.step(0.1);
    const good = o.stateDict();
    const other = name === 'adamw' ? createSgd(params(), { momentum: 0.5 }) : createAdamW(params());
    expect(errorOf(() => other.loadStateDict(good))).toMatchObject({ code: 'E_INPUT', message: expect.stringMatching(`state is for "${name}"`) });
    const hp = name === 'adamw' ? 'weight_decay' : 'momentum';
    expect(errorOf(() => o.loadStateDict({ ...good, meta: { ...good.meta, [`group.default.${hp}`]: 0.3 } })))
      .toMatchObject({ code: 'E_INPUT', message: expect.stringMatching(`option "${hp}"`) });
    const missing = new Map(good.tensors);
    const firstKey = [...missing.keys()][0];
    missing.delete(firstKey);
    expect(errorOf(() => o.loadStateDict({ ...good, tensors: missing }))).toMatchObject({ code: 'E_FORMAT', message: expect.stringMatching(`missing optimizer state "${firstKey}"`) });
    const extra = new Map(good.tensors).set('c.exp_avg', { dtype: 'F32', shape: [1], data: new Float32Array(1) });
    expect(errorOf(() => o.loadStateDict({ ...good, tensors: extra }))).toMatchObject({ code: 'E_FORMAT' });
    expect(o.stateDict()).toEqual(good);
    o.dispose();
    other.dispose();
    expect(errorOf(() => o.step(0.1))).toMatchObject({ code: 'E_RUNTIME' });
  });
});

describe('optimizer steps', () => {
  it('skip params without a grad: no update, no step counted (torch)', () => {
    const ps = params();
    const o = createAdamW(ps);
    ps[0][1].grad = tensor([1, 1, 1, 1], [2, 2]);
    const b = Array.from(ps[1][1].data);
    o.step(0.1);
    expect(Array.from(ps[1][1].data)).toEqual(b);
    // AdamW's first step moves each coordinate by lr * sign(g) (m / sqrt(v) = 1 after bias correction)
    [0.5, -1, 2, 0.25].forEach((v, i) => expect(ps[0][1].data[i]).toBeCloseTo(v - 0.1, 6));
    expect(o.stateDict().meta).toMatchObject({ 'w.step': 1, 'b.step': 0 });
    o.dispose();
  });

  it('keep state in allocator memory and free it on dispose', () => {
    const live = new Set<ArrayBuffer>();
    setAllocator({
      name: 'counting',
      alloc: (bytes) => {
        const b = heapAllocator.alloc(bytes);
        live.add(b);
        return b;
      },
      free: (b) => live.delete(b),
    });
    try {
      const ps = params(); // 4 + 3 values: 2 tensors
      const o = createAdamW(ps);
      expect([...live].map((b) => b.byteLength).sort()).toEqual([12, 12, 12, 16, 16, 16]); // w (16 bytes) and b (12), with m and v of each
      o.dispose();
      o.dispose();
      expect([...live].map((b) => b.byteLength).sort()).toEqual([12, 16]);
      for (const [, p] of ps) p.dispose();
    } finally {
      setAllocator(undefined);
    }
  });

  it('check their settings and parameters', () => {
    expect(errorOf(() => createAdamW(params(), { beta1: 1 }))).toMatchObject({ code: 'E_INPUT', message: 'adamw: beta1 must be in [0, 1), got 1' });
    expect(errorOf(() => createSgd(params(), { nesterov: true }))).toMatchObject({ message: 'sgd: nesterov needs momentum > 0 and dampening 0' });
    const f64 = tensor([1], [1], { dtype: 'f64', requiresGrad: true });
    expect(errorOf(() => createSgd([['x', f64]]))).toMatchObject({ message: expect.stringMatching(/"x" is f64/) });
    const p = tensor([1], [1], { requiresGrad: true });
    expect(errorOf(() => createSgd([['x', p], ['x', p]]))).toMatchObject({ message: expect.stringMatching(/listed twice/) });
  });
});

describe('registry entries', () => {
  it('adamw and sgd are core optimizers with schema defaults from torch / the HF Trainer', () => {
    const r = createRegistry();
    registerBuiltins(r);
    expect(r.list('optimizer').map((o) => o.name)).toEqual(['adamw', 'sgd']);
    const adamw = r.get('optimizer', 'adamw');
    expect(resolveOptions('adamw', adamw.options, {})).toEqual({ beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0 });
    expect(resolveOptions('sgd', r.get('optimizer', 'sgd').options, { momentum: '0.9', nesterov: 'true' }))
      .toEqual({ momentum: 0.9, dampening: 0, nesterov: true, weight_decay: 0 });
    const [pa, pb] = [params(), params()];
    const ctx = { kernels: referenceTrainKernels, seed: 0, totalSteps: 1 };
    const [a, b] = [createOptimizer(adamw, pa, resolveOptions('adamw', adamw.options, { weight_decay: '0.1' }), ctx),
      createAdamW(pb, { weightDecay: 0.1, kernels: referenceTrainKernels })];
    setGrads(pa, 0);
    setGrads(pb, 0);
    a.step(0.01);
    b.step(0.01);
    expect(bitsOf(pa)).toEqual(bitsOf(pb));
    expect(a.stateDict().meta['group.default.weight_decay']).toBe(0.1);
    const sgd = r.get('optimizer', 'sgd');
    expect(errorOf(() => createOptimizer(sgd, params(), resolveOptions('sgd', sgd.options, { nesterov: true }), ctx))).toMatchObject({ code: 'E_INPUT' });
  });
});
