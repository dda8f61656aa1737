/**
 * QST on every base `peft quantize` writes (NF4, FP4, int8) as well as float: the side network trains
 * (finite gradients on every side tensor), the base's Linear weights keep their stored kind and get no
 * gradient, and the loss stays near the float base's (the backbone differs only by quantization error).
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createRegistry, quantizeModel, registerBuiltins, resolveOptions, type Llama } from '@peft/core-tensor';
import { attachCase, lossAndBackward, readReference, tempDir } from './helpers.js';

let model: Llama | undefined;
afterEach(() => {
  model?.dispose();
  model = undefined;
});

describe.each(['nf4', 'fp4', 'int8'] as const)('qst over a %s base', (kind) => {
  it('trains the side network; the base stays packed and frozen', async () => {
    const ref = await readReference('qst_gqa');
    const registry = createRegistry();
    registerBuiltins(registry);
    const q = registry.get('quantizer', kind);
    const dir = join(tempDir(`qst-${kind}`), kind);
    await quantizeModel({ modelDir: ref.modelDir, outDir: dir, quantizer: q, options: resolveOptions(kind, q.options, {}) });
    const a = await attachCase(ref, { dir });
    model = a.model;
    const loss = lossAndBackward(model, ref);
    expect(Math.abs(loss - ref.get('loss').values[0]) / ref.get('loss').values[0]).toBeLessThan(0.05);
    for (const [key, t] of a.adapter.parameters()) {
      expect(t.grad, key).toBeDefined();
      expect(t.grad!.data.every(Number.isFinite), key).toBe(true);
    }
    const linears = model.namedParameters().filter(([n]) => /layers\.\d+\.(self_attn|mlp)\.\w+_proj\.weight$/.test(n));
    expect(linears.length).toBe(21);
    for (const [n, t] of linears) {
      expect(t.dtype, n).toBe(kind);
      expect(t.grad, n).toBeUndefined();
    }
  });
});
