/**
 * The optimizer contract plugins build on (plugin/optimizer.ts, optim/param-state.ts): state slots with
 * their own dtype and shape (an 8-bit momentum rule: U8 codes shaped like the parameter + F32 absmax per
 * block) round-trip bit for bit and are checked by name, dtype and shape; parameter groups with their own
 * lr multiplier and options equal separately-run optimizers bit for bit, are validated, and are part of
 * the state a resume must repeat; the registry entry computes on the context's kernels.
 */
import { describe, expect, it } from 'vitest';
import { referenceTrainKernels } from '../src/backend/reference-train/index.js';
import type { TrainKernels } from '../src/backend/train-kernels.js';
import { createAdamW, createParamOptimizer, type Optimizer, type UpdateRule } from '../src/optim/index.js';
import {
  adamwOptimizer, createOptimizer, resolveOptions, sgdOptimizer, type ParamGroup,
} from '../src/plugin/index.js';
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

const BLOCK = 4;

/**
 * SGD with momentum kept in 8 bits, blockwise (bitsandbytes' layout: `state1` U8 codes, `absmax1` F32 per
 * block of BLOCK values), linear codes 1..255 around 128: buf = dequant(state1) * momentum + g;
 * p -= lr * buf; state1 = quant(buf).
 */
function sgd8bitRule(momentum: number): UpdateRule {
  return {
    name: 'sgd8',
    hyper: { momentum, block: BLOCK },
    slotShapes: (shape) => [
      { name: 'state1', dtype: 'U8', shape },
      { name: 'absmax1', dtype: 'F32', shape: [Math.ceil(shape.reduce((a, d) => a * d, 1) / BLOCK)] },
    ],
    update(p, g, [codes, absmax], lr) {
      for (let b = 0; b * BLOCK < p.length; b++) {
        const end = Math.min(p.length, (b + 1) * BLOCK);
        const buf: number[] = [];
        for (let i = b * BLOCK; i < end; i++) buf.push(((codes[i] - 128) / 127) * absmax[b] * momentum + g[i]);
        const max = Math.fround(Math.max(...buf.map(Math.abs)));
        absmax[b] = max;
        buf.forEach((v, j) => {
          p[b * BLOCK + j] -= lr * v;
          codes[b * BLOCK + j] = max === 0 ? 128 : 128 + Math.round((v / max) * 127);
        });
      }
    },
  };
}

function params(): [string, Tensor][] {
  return [
    ['w', tensor([0.5, -1, 2, 0.25, 1.5, -0.75], [2, 3], { requiresGrad: true })],
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
const sgd8 = (ps: [string, Tensor][]) => createParamOptimizer('sgd8', [{ name: 'default', params: ps, rule: sgd8bitRule(0.9) }]);

describe('state slots with their own dtype and shape', () => {
  it('are allocated as declared, listed by stateSpec and snapshot by stateDict', () => {
    const sizes: number[] = [];
    const ps = params();
    setAllocator({ name: 'counting', alloc: (n) => (sizes.push(n), heapAllocator.alloc(n)), free: () => undefined });
    let o: Optimizer;
    try {
      o = sgd8(ps);
    } finally {
      setAllocator(undefined);
    }
    expect(sizes.sort((a, b) => a - b)).toEqual([3, 4, 6, 8]); // codes: 6 and 3 bytes; absmax: 2 and 1 f32
    expect([...o.stateSpec()]).toEqual([
      ['w.state1', { dtype: 'U8', shape: [2, 3] }], ['w.absmax1', { dtype: 'F32', shape: [2] }],
      ['b.state1', { dtype: 'U8', shape: [3] }], ['b.absmax1', { dtype: 'F32', shape: [1] }],
    ]);
    const t = o.stateDict().tensors.get('w.state1')!;
    expect(t).toMatchObject({ dtype: 'U8', shape: [2, 3] });
    expect(t.data).toBeInstanceOf(Uint8Array);
    o.dispose();
  });

  it('round-trip: a restored 8-bit optimizer continues bit for bit', () => {
    const [pa, pb] = [params(), params()];
    const [a, b] = [sgd8(pa), sgd8(pb)];
    for (let k = 0; k < 3; k++) {
      setGrads(pa, k);
      a.step(0.05);
    }
    const state = a.stateDict();
    expect(Array.from(state.tensors.get('w.state1')!.data).some((c) => c !== 128)).toBe(true);
    pa.forEach(([, p], j) => pb[j][1].data.set(p.data));
    b.loadStateDict(state);
    for (let k = 3; k < 6; k++) {
      setGrads(pa, k);
      setGrads(pb, k);
      a.step(0.05);
      b.step(0.05);
    }
    expect(bitsOf(pb)).toEqual(bitsOf(pa));
    a.dispose();
    b.dispose();
  });

  it('a state of another dtype, shape or length is refused naming the tensor, and nothing changes', () => {
    const ps = params();
    const o = sgd8(ps);
    setGrads(ps, 0);
    o.step(0.1);
    const good = o.stateDict();
    const swap = (name: string, t: any) => ({ ...good, tensors: new Map(good.tensors).set(name, t) });
    expect(errorOf(() => o.loadStateDict(swap('w.state1', { dtype: 'F32', shape: [2, 3], data: new Float32Array(6) }))))
      .toMatchObject({ code: 'E_SHAPE', exitCode: 2, message: 'sgd8: optimizer state "w.state1" is F32 [2, 3], this run\'s optimizer keeps U8 [2, 3]' });
    expect(errorOf(() => o.loadStateDict(swap('w.absmax1', { dtype: 'F32', shape: [3], data: new Float32Array(3) }))))
      .toMatchObject({ code: 'E_SHAPE', message: expect.stringMatching(/"w.absmax1" is F32 \[3\], .* keeps F32 \[2\]/) });
    expect(errorOf(() => o.loadStateDict(swap('b.state1', { dtype: 'U8', shape: [3], data: new Uint8Array(4) }))))
      .toMatchObject({ code: 'E_FORMAT', message: expect.stringMatching(/"b.state1" holds 4 values of Uint8Array, not U8 \[3\]/) });
    expect(o.stateDict()).toEqual(good);
    o.dispose();
  });
});

const KERNELS = referenceTrainKernels;
const ctx = (groups?: ParamGroup[]) => ({ kernels: KERNELS, seed: 1, totalSteps: 4, groups });
const adamwOpts = (given: Record<string, unknown> = {}) => resolveOptions('adamw', adamwOptimizer.options, given);

describe('parameter groups', () => {
  it('two AdamW groups (lr x3 and their own weight decay) equal two separately-run AdamWs bit for bit', () => {
    const [grouped, alone] = [params(), params()];
    const o = createOptimizer(adamwOptimizer, grouped, adamwOpts({ weight_decay: 0.01 }),
      ctx([{ name: 'fast', params: ['b'], lrScale: 3, options: { weight_decay: 0.2, beta2: 0.95 } }]));
    const w = createAdamW([alone[0]], { weightDecay: 0.01, kernels: KERNELS });
    const b = createAdamW([alone[1]], { weightDecay: 0.2, beta2: 0.95, kernels: KERNELS });
    const lrs = [0.01, 0.02, 0.015, 0.005];
    lrs.forEach((lr, k) => {
      setGrads(grouped, k);
      setGrads(alone, k);
      o.step(lr);
      w.step(lr);
      b.step(lr * 3);
    });
    expect(bitsOf(grouped)).toEqual(bitsOf(alone));
    const ref = params();
    expect(bitsOf([grouped[1]])).not.toEqual(bitsOf([ref[1]])); // it trained
    expect(o.stateDict().meta).toMatchObject({
      'group.default.lr_scale': 1, 'group.default.weight_decay': 0.01, 'group.fast.lr_scale': 3, 'group.fast.weight_decay': 0.2,
      'group.fast.beta2': 0.95, 'w.group': 'default', 'b.group': 'fast',
    });
    for (const x of [o, w, b]) x.dispose();
  });

  it('a checkpoint of one grouping does not load into another', () => {
    const ps = params();
    const make = (groups: ParamGroup[]) => createOptimizer(adamwOptimizer, ps, adamwOpts(), ctx(groups));
    const saved = make([{ name: 'fast', params: ['b'], lrScale: 3 }]);
    setGrads(ps, 0);
    saved.step(0.1);
    const state = saved.stateDict();
    const load = (groups: ParamGroup[]) => errorOf(() => make(groups).loadStateDict(state));
    expect(load([{ name: 'fast', params: ['b'], lrScale: 2 }]))
      .toMatchObject({ code: 'E_INPUT', message: 'adamw: option "lr_scale" of group "fast" is 2 but the saved optimizer state was made with 3' });
    expect(load([{ name: 'fast', params: ['w'], lrScale: 3 }]))
      .toMatchObject({ code: 'E_INPUT', message: 'adamw: parameter "b" is in group "default" but the saved state has it in "fast"' });
    expect(load([])).toMatchObject({ code: 'E_INPUT', message: 'adamw: the saved optimizer state has a parameter group "fast", this run has none' });
    expect(() => make([{ name: 'fast', params: ['b'], lrScale: 3 }]).loadStateDict(state)).not.toThrow();
  });

  it('are checked: known parameters, one group each, valid names, lrScale > 0, options of the schema', () => {
    const bad = (groups: ParamGroup[]) => errorOf(() => createOptimizer(sgdOptimizer, params(), resolveOptions('sgd', sgdOptimizer.options, {}), ctx(groups)));
    expect(bad([{ name: 'x', params: ['nope'] }])).toMatchObject({ code: 'E_INPUT', message: 'sgd: parameter group "x" names "nope", which is not trained' });
    expect(bad([{ name: 'x', params: ['w'] }, { name: 'y', params: ['w'] }])).toMatchObject({ message: 'sgd: parameter "w" is in groups "x" and "y"' });
    expect(bad([{ name: 'default', params: ['w'] }])).toMatchObject({ message: expect.stringMatching(/group name "default" must be unique/) });
    expect(bad([{ name: 'x', params: [] }, { name: 'x', params: [] }])).toMatchObject({ message: expect.stringMatching(/group name "x" must be unique/) });
    expect(bad([{ name: 'x', params: ['w'], lrScale: 0 }])).toMatchObject({ message: 'sgd: parameter group "x": lrScale must be a number > 0, got 0' });
    expect(bad([{ name: 'x', params: ['w'], options: { betas: 1 } }])).toMatchObject({ message: expect.stringMatching(/^sgd \(group "x"\): unknown option "betas"/) });
    expect(bad([{ name: 'x', params: ['w'], options: { momentum: -1 } }])).toMatchObject({ message: expect.stringMatching(/^sgd \(group "x"\): invalid value -1/) });
  });
});

describe('the context', () => {
  it("the registry's adamw runs on ctx.kernels, and only there", () => {
    const calls: number[] = [];
    const kernels: TrainKernels = { ...referenceTrainKernels, adamwStep: (...a) => (calls.push(a[4]), referenceTrainKernels.adamwStep(...a)) };
    const ps = params();
    const o = createOptimizer(adamwOptimizer, ps, adamwOpts(), { kernels, seed: 1, totalSteps: 1 });
    setGrads(ps, 0);
    o.step(0.1);
    expect(calls).toEqual([6, 3]); // one call per parameter, over its values
    o.dispose();
  });
});
