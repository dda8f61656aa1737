/**
 * QLoRA: LoRA and DoRA over the NF4 model `peft quantize` writes (core quantizeModel with its defaults:
 * blocksize 64, double quantization). The loss and gradients equal the torch reference computed on
 * the bitsandbytes-dequantized weights (scripts/ref/bnb_reference.py numerics), the base weights stay
 * packed NF4 and never get a gradient, and a few plain SGD steps on the adapter lower the loss.
 */
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRegistry, quantizeModel, registerBuiltins, resolveOptions, type Llama, type Quant4Data, type Tensor } from '@peft/core-tensor';
import { attachCase, lossAndBackward, MODEL_DIR, readReference, relErr, tempDir } from './helpers.js';

let nf4Dir: string;
let model: Llama | undefined;
beforeAll(async () => {
  const registry = createRegistry();
  registerBuiltins(registry);
  const q = registry.get('quantizer', 'nf4');
  nf4Dir = join(tempDir('qlora'), 'nf4');
  await quantizeModel({ modelDir: MODEL_DIR, outDir: nf4Dir, quantizer: q, options: resolveOptions('nf4', q.options, {}) });
});
afterEach(() => {
  model?.dispose();
  model = undefined;
});

describe.each(['qlora', 'qdora'])('%s over the quantized model', (name) => {
  it('matches torch on the dequantized weights; the base stays packed NF4 without gradients', async () => {
    const ref = await readReference(name);
    const a = await attachCase(ref, nf4Dir);
    model = a.model;
    for (const l of a.adapter.layers) expect(l.base_layer.weight.dtype, l.spec.module).toBe('nf4');
    const loss = lossAndBackward(model, ref);
    expect(Math.abs(loss - ref.get('loss').values[0])).toBeLessThan(1e-5 * ref.get('loss').values[0]);
    for (const [key, t] of a.adapter.parameters()) expect(relErr(t.grad!.data, ref.get(`grad.${key}`).values), key).toBeLessThan(1e-4);
    for (const l of a.adapter.layers) {
      expect(l.base_layer.weight.requiresGrad).toBe(false);
      expect(l.base_layer.weight.grad).toBeUndefined();
    }
  });
});

describe('training over a 4-bit base', () => {
  it('a few SGD steps on lora_A / lora_B lower the loss; every base weight is still nf4 and untouched', async () => {
    const ref = await readReference('qlora');
    const a = await attachCase(ref, nf4Dir);
    model = a.model;
    const packed = (w: Tensor) => (w.frozen as Quant4Data).packed.slice();
    const before = a.adapter.layers.map((l) => packed(l.base_layer.weight));
    const losses: number[] = [];
    for (let step = 0; step < 5; step++) {
      losses.push(lossAndBackward(model, ref));
      for (const [, t] of a.adapter.parameters()) {
        const g = t.grad!.data;
        const d = t.data;
        for (let i = 0; i < d.length; i++) d[i] -= 0.05 * g[i];
        t.grad!.dispose();
        t.grad = undefined;
      }
    }
    expect(losses[4]).toBeLessThan(losses[0]);
    a.adapter.layers.forEach((l, i) => {
      const w = l.base_layer.weight;
      expect(w.dtype).toBe('nf4');
      expect(packed(w)).toEqual(before[i]);
    });
  });
});
