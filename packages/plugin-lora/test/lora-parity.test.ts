/**
 * LoRA, rsLoRA (+ rank/alpha patterns, all-linear, bias=lora_only) and DoRA against PEFT's layer math
 * written out in torch (scripts/ref/lora_reference.py, f64 on the same f32 values): with the
 * reference's factors loaded into the attached adapter, the mean causal-LM loss and the gradient of
 * every trainable tensor (lora_A, lora_B, lora_magnitude_vector, trained biases) agree within 1e-4
 * relative, and nothing else gets a gradient. DoRA's initial magnitude ||W + s B A|| agrees too.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Llama } from '@peft/core-tensor';
import { LoraLinear } from '../src/layer.js';
import { initialMagnitude } from '../src/variants/dora.js';
import { attachCase, lossAndBackward, readReference, relErr } from './helpers.js';

const GRAD_RTOL = 1e-4;
let model: Llama | undefined;
afterEach(() => {
  model?.dispose();
  model = undefined;
});

describe.each(['lora', 'rslora', 'dora'])('%s: parity with PEFT (torch reference)', (name) => {
  it('loss and every trainable gradient', async () => {
    const ref = await readReference(name);
    const a = await attachCase(ref);
    model = a.model;
    const params = a.adapter.parameters();
    const want = [...ref.tensors.keys()].filter((k) => k.startsWith('grad.')).map((k) => k.slice(5)).sort();
    expect(params.map(([k]) => k).sort()).toEqual(want);
    const loss = lossAndBackward(model, ref);
    expect(Math.abs(loss - ref.get('loss').values[0])).toBeLessThan(1e-5 * ref.get('loss').values[0]);
    for (const [key, t] of params) {
      expect(t.grad, key).toBeDefined();
      expect(relErr(t.grad!.data, ref.get(`grad.${key}`).values), key).toBeLessThan(GRAD_RTOL);
    }
    const trainable = new Set(params.map(([, t]) => t));
    for (const [pname, t] of model.namedParameters()) if (!trainable.has(t)) expect(t.grad, pname).toBeUndefined();
  });
});

it('dora: initial magnitude ||W + s B A|| per row (DoraLinearLayer.update_layer)', async () => {
  const ref = await readReference('dora');
  const a = await attachCase(ref);
  model = a.model;
  for (const l of a.adapter.layers) {
    expect(relErr(initialMagnitude(l), ref.get(`m0.${l.spec.module}`).values), l.spec.module).toBeLessThan(1e-6);
  }
});

describe('rslora case: patterns and targets as PEFT resolves them', () => {
  it('all-linear wraps every projection but lm_head; rank_pattern / alpha_pattern / rsLoRA set r and scaling', async () => {
    const ref = await readReference('rslora');
    const a = await attachCase(ref);
    model = a.model;
    const layers = a.adapter.layers;
    expect(layers.length).toBe(14);
    expect(model.getModule('lm_head')).not.toBeInstanceOf(LoraLinear);
    const spec = (m: string) => layers.find((l) => l.spec.module === m)!.spec;
    expect(spec('model.layers.1.mlp.down_proj')).toMatchObject({ r: 2, alpha: 8, scale: 8 / Math.SQRT2 });
    expect(spec('model.layers.0.self_attn.o_proj')).toMatchObject({ r: 4, alpha: 3, scale: 1.5 });
    expect(spec('model.layers.0.self_attn.q_proj')).toMatchObject({ r: 4, alpha: 8, scale: 4 });
  });
});
