/**
 * Parity with the torch transcription of the repos (scripts/ref/qst_reference.py): for QST (adapter and
 * maxpool downsamples; float, NF4, GQA and tied-embedding backbones) and LST (linear and avgpool), the
 * logits, the loss and the gradient of every side parameter equal torch's to 1e-4 (relative to each
 * tensor's scale), with the side network holding the fixture's values; no base weight gets a gradient
 * and an NF4 base stays packed. The torch-written adapter folder loads for inference and gives the same
 * logits, with nothing trainable.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Llama, type Tensor } from '@peft/core-tensor';
import { loadSideAdapter } from '../src/load.js';
import { attachCase, CASES, logitsOf, lossAndBackward, readReference, relErr } from './helpers.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

let model: Llama | undefined;
afterEach(() => {
  model?.dispose();
  model = undefined;
});

describe.each(CASES)('%s against torch', (name) => {
  it('logits, loss and every side gradient agree to 1e-4; the base gets no gradient', async () => {
    const ref = await readReference(name);
    const a = await attachCase(ref);
    model = a.model;
    expect(relErr(logitsOf(model, ref), ref.get('logits').values)).toBeLessThan(1e-4);
    const loss = lossAndBackward(model, ref);
    expect(Math.abs(loss - ref.get('loss').values[0]) / ref.get('loss').values[0]).toBeLessThan(1e-5);
    const params = a.adapter.parameters();
    expect(params.map(([k]) => `grad.${k}`).sort()).toEqual([...ref.tensors.keys()].filter((k) => k.startsWith('grad.')).sort());
    for (const [key, t] of params) expect(relErr(t.grad!.data, ref.get(`grad.${key}`).values), key).toBeLessThan(1e-4);
    for (const [key, t] of model.namedParameters()) {
      expect(t.requiresGrad, key).toBe(false);
      expect(t.grad, key).toBeUndefined();
    }
    if (name === 'qst_nf4') expect(model.namedParameters().filter(([, t]) => t.dtype === 'nf4').length).toBe(14);
  });

  it('the torch-written adapter folder loads for inference: same logits, nothing trainable', async () => {
    const ref = await readReference(name);
    model = await Llama.fromFolder(ref.modelDir);
    const config = JSON.parse(readFileSync(join(ref.adapterDir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    await loadSideAdapter(ref.method, model, ref.adapterDir, config);
    expect(relErr(logitsOf(model, ref), ref.get('logits').values)).toBeLessThan(1e-4);
    const trainable: Tensor[] = model.namedParameters().map(([, t]) => t).filter((t) => t.requiresGrad);
    expect(trainable).toEqual([]);
  });
});
