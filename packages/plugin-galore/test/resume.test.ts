/**
 * Resuming: an optimizer rebuilt from a stateDict() taken after step 4 (bases, moments — 8-bit codes
 * and absmax too —, natural-gradient history, step counts) continues exactly as the uninterrupted one,
 * bit for bit, through a later subspace change (update_proj_gap 3: new bases at steps 7 and 10), with
 * the randomized SVD (seeded by the run's seed, the parameter and the step) and with the exact one.
 * A state made with other settings is refused before anything is copied.
 */
import type { OptimizerDef, Tensor, TrainKernels } from '@peft/core-tensor';
import { describe, expect, it } from 'vitest';
import { galore8bitOptimizer, galoreOptimizer, naturalGaloreOptimizer } from '../src/index.js';
import { KERNELS, makeParams, optimizerFor, stepWith } from './helpers.js';

const SHAPES: [string, number[]][] = [
  ['model.layers.0.self_attn.q_proj.weight', [48, 20]], ['model.layers.0.mlp.up_proj.weight', [20, 300]],
  ['model.layers.0.post_attention_layernorm.weight', [20]], ['lm_head.weight', [30, 20]],
];
const init = () => makeParams(SHAPES.map(([n, s]) => [n, s, Float32Array.from({ length: s.reduce((a, b) => a * b) }, (_, i) => Math.cos(i * 0.37))]));
const grads = (step: number) => (name: string, t: Tensor) =>
  Float32Array.from({ length: t.size }, (_, i) => Math.sin(0.11 * i * step + name.length) + 0.3 * Math.cos(i));
const bits = (t: Tensor) => Array.from(new Uint32Array((t.data as Float32Array).slice().buffer));

const CASES: [string, OptimizerDef, Record<string, unknown>][] = [
  ['galore, randomized SVD', galoreOptimizer, { rank: 4, update_proj_gap: 3, weight_decay: 0.01 }],
  ['galore, exact SVD, proj full', galoreOptimizer, { rank: 4, update_proj_gap: 3, svd: 'exact', proj_type: 'full' }],
  ['galore-8bit (8-bit moments)', galore8bitOptimizer, { rank: 4, update_proj_gap: 3, min_8bit_size: 64 }],
  ['natural-galore', naturalGaloreOptimizer, { rank: 3, update_proj_gap: 3, natural_history: 4 }],
];

function run(def: OptimizerDef, options: Record<string, unknown>, k: TrainKernels, steps: number, cut?: number) {
  let params = init();
  let opt = optimizerFor(def, params, options, k, 42);
  for (let s = 1; s <= steps; s++) {
    if (s === cut) {
      const state = opt.stateDict();
      opt.dispose();
      params = makeParams(params.map(([n, t]) => [n, t.shape, t.data]));
      opt = optimizerFor(def, params, options, k, 42);
      opt.loadStateDict(state);
    }
    stepWith(opt, params, 1e-2, grads(s));
  }
  opt.dispose();
  return params;
}

describe.each(KERNELS)('on the %s kernels', (_label, kernels) => {
  it.each(CASES)('%s: stopped after step 4 and resumed equals the uninterrupted run bit for bit', (_name, def, options) => {
    const whole = run(def, options, kernels, 11);
    const resumed = run(def, options, kernels, 11, 5);
    whole.forEach(([n, t], i) => expect(bits(resumed[i][1]), n).toEqual(bits(t)));
    const stopped = run(def, options, kernels, 4);
    whole.forEach(([n, t], i) => expect(bits(stopped[i][1]), n).not.toEqual(bits(t)));
  });

  it('refuses a state saved with another rank, naming the option', () => {
    const params = init();
    const opt = optimizerFor(galoreOptimizer, params, { rank: 4 }, kernels);
    stepWith(opt, params, 1e-2, grads(1));
    const other = optimizerFor(galoreOptimizer, init(), { rank: 5 }, kernels);
    expect(() => other.loadStateDict(opt.stateDict())).toThrow(/option "rank" of group "default:galore" is 5 but the saved optimizer state was made with 4/);
  });
});
