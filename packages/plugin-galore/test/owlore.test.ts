/**
 * OwLore's layer sampling equals its transcription in scripts/ref/galore_reference.py for fixed seeds:
 * OWL's outlier ratio per layer (LOD, M = 13, unit activation norms), the owl / owl_reverse
 * probabilities of DynamicLayerActivationCallback, and the layers numpy's choice(replace=False, p)
 * algorithm draws from xoshiro128** for five resamplings. Then the optimizer: the same layers for the
 * steps of one resampling, only their parameters (and those outside the layers) updated, the sampling
 * repeated after a state round trip, and the refusals (too many active layers, LoRA factors without
 * outliers).
 */
import { PeftError, type Tensor } from '@peft/core-tensor';
import { describe, expect, it } from 'vitest';
import { choiceWithoutReplacement, eventStream, outlierRatio, owloreOptimizer, planLayers } from '../src/index.js';
import { KERNELS, makeParams, optimizerFor, readFixture, stepWith } from './helpers.js';

const fx = await readFixture('owlore');
const LAYERS = Number(fx.meta.layers);
const M = Number(fx.meta.threshold);
const SAMPLES = JSON.parse(fx.meta.samples) as Record<string, number[]>;
const layerWeights = (l: number) => [fx.get(`layer${l}.q`), fx.get(`layer${l}.k`)];

/** The fixture's layers as trainable parameters with HF names. */
const owlParams = (): [string, Tensor][] => makeParams(Array.from({ length: LAYERS }, (_, l) => [
  [`model.layers.${l}.self_attn.q_proj.weight`, [16, 12], layerWeights(l)[0]] as const,
  [`model.layers.${l}.self_attn.k_proj.weight`, [12, 16], layerWeights(l)[1]] as const,
]).flat());

describe('OwLore sampling equals the reference', () => {
  it("OWL's outlier ratio of every layer", () => {
    const want = fx.get('ratios');
    for (let l = 0; l < LAYERS; l++) expect(outlierRatio(layerWeights(l), M)).toBeCloseTo(want[l], 12);
    expect(new Set(want).size).toBeGreaterThan(3); // the planted outliers make the layers differ
  });

  it.each(['owl', 'owl_reverse'] as const)('%s probabilities', (mode) => {
    const plan = planLayers(owlParams(), { mode, threshold: M, scores: [] });
    expect(plan.layers).toEqual([0, 1, 2, 3, 4, 5]);
    const want = fx.get(`probs.${mode}`);
    plan.probs.forEach((p, i) => expect(p).toBeCloseTo(want[i], 14));
  });

  it.each(Object.keys(SAMPLES))('draws %s', (key) => {
    const [mode, seedPart, eventPart] = key.split('.');
    const probs = Array.from(fx.get(`probs.${mode}`));
    const drawn = choiceWithoutReplacement(probs, 2, eventStream(Number(seedPart.slice(4)), Number(eventPart.slice(5))));
    expect(drawn).toEqual(SAMPLES[key]);
  });
});

describe.each(KERNELS)('the owlore optimizer on the %s kernels', (_label, kernels) => {
  const options = { rank: 2, update_proj_gap: 2, resample_every: 3, active_layers: 2, svd: 'exact', outlier_threshold: M };
  const grads = (name: string, t: Tensor) => Float32Array.from({ length: t.size }, (_, i) => Math.sin(i + name.length));

  it('updates the sampled layers only, the same ones for every step of a resampling', () => {
    const params = owlParams();
    const opt = optimizerFor(owloreOptimizer, params, options, kernels, 111);
    for (let step = 1; step <= 9; step++) {
      const active = opt.activeParams!(step)!;
      const layers = [...new Set([...active].map((n) => Number(/layers\.(\d+)\./.exec(n)![1])))];
      expect(layers.sort()).toEqual([...SAMPLES[`owl.seed111.event${Math.floor((step - 1) / 3)}`]].sort());
      const before = params.map(([, t]) => t.data.slice());
      stepWith(opt, params, 0.01, grads); // grads for every param: the frozen ones must not move
      params.forEach(([n, t], i) => expect(t.data.some((v, j) => v !== before[i][j]), n).toBe(active.has(n)));
    }
    opt.dispose();
  });

  it('samples the same layers after a state round trip', () => {
    const a = owlParams();
    const opt = optimizerFor(owloreOptimizer, a, options, kernels, 0);
    for (let s = 1; s <= 4; s++) stepWith(opt, a, 0.01, grads);
    const state = opt.stateDict();
    const b = makeParams(a.map(([n, t]) => [n, t.shape, t.data]));
    const again = optimizerFor(owloreOptimizer, b, options, kernels, 0);
    again.loadStateDict(state);
    for (let s = 5; s <= 8; s++) {
      expect(again.activeParams!(s)).toEqual(opt.activeParams!(s));
      stepWith(opt, a, 0.01, grads);
      stepWith(again, b, 0.01, grads);
    }
    a.forEach(([n, t], i) => expect(b[i][1].data, n).toEqual(t.data));
    const other = optimizerFor(owloreOptimizer, makeParams(a.map(([n, t]) => [n, t.shape, t.data])), { ...options, active_layers: 3 }, kernels, 0);
    expect(() => other.loadStateDict(state)).toThrow(/active_layers is 3 but the saved optimizer state was made with 2/);
  });

  it('refuses more active layers than layers, and LoRA-like factors without outliers (E_INPUT)', () => {
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e instanceof PeftError ? e.code : String(e);
      }
      return 'no error';
    };
    expect(code(() => optimizerFor(owloreOptimizer, owlParams(), { ...options, active_layers: 7 }, kernels))).toBe('E_INPUT');
    const lora = makeParams([0, 1].map((l) => [`base_model.model.model.layers.${l}.self_attn.q_proj.lora_A.weight`, [4, 8], new Float32Array(32).fill(0.1)] as const));
    expect(() => optimizerFor(owloreOptimizer, lora, { ...options, active_layers: 1 }, kernels)).toThrow(/give outlier_scores/);
    const ok = optimizerFor(owloreOptimizer, lora, { ...options, active_layers: 1, outlier_scores: '0.2,0.3' }, kernels);
    expect(ok.activeParams!(1)!.size).toBe(1);
  });
});
