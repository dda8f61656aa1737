/**
 * delta / fromDelta (the ΔW view merging and compression use). Folding each module's
 * ΔW = scale·B·A into its weight (DoRA: m / ||W + ΔW|| · (W + ΔW), as the LowRankDelta contract says)
 * gives the logits of the adapter applied as a LoRA layer, so the scale and the magnitude are carried
 * correctly; fromDelta writes deltas back as a PEFT folder that loads to the same model and reads back
 * to the same deltas (mixed ranks and scales through rank_pattern / alpha_pattern, rsLoRA included).
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Linear, Llama, PeftError, readPeftAdapter, writePeftAdapter, type LowRankDelta } from '@peft/core-tensor';
import { loraMethod } from '../src/index.js';
import { FIXTURES, logitsOf, MODEL_DIR, readReference, relErr, tempDir } from './helpers.js';

const models: Llama[] = [];
afterEach(() => {
  for (const m of models.splice(0)) m.dispose();
});

async function folded(deltas: readonly LowRankDelta[]): Promise<Llama> {
  const model = await Llama.fromFolder(MODEL_DIR);
  models.push(model);
  for (const d of deltas) {
    const w = (model.getModule(d.module) as Linear).weight.data;
    const { outFeatures: out, inFeatures: inF, r } = d;
    const row = new Float64Array(inF);
    for (let i = 0; i < out; i++) {
      for (let j = 0; j < inF; j++) {
        let s = 0;
        for (let k = 0; k < r; k++) s += d.B[i * r + k] * d.A[k * inF + j];
        row[j] = w[i * inF + j] + d.scale * s;
      }
      const f = d.magnitude ? d.magnitude[i] / Math.hypot(...row) : 1;
      for (let j = 0; j < inF; j++) w[i * inF + j] = f * row[j];
    }
  }
  return model;
}

describe.each(['lora', 'dora'])('%s fixture', (name) => {
  it('delta(): scale and magnitude as PEFT applies them (folded weights give the adapter logits)', async () => {
    const ref = await readReference(name);
    const adapter = await readPeftAdapter(join(FIXTURES, name, 'adapter'));
    const deltas = loraMethod.delta!(adapter);
    expect(deltas.map((d) => d.module)).toEqual([...new Set([...adapter.tensors.keys()].map((k) => k.replace(/^base_model\.model\.(.+)\.lora_.*$/, '$1')))].sort());
    for (const d of deltas) {
      expect(d.scale).toBe(2); // lora_alpha 8 / r 4
      expect(!!d.magnitude).toBe(name === 'dora');
    }
    const model = await folded(deltas);
    expect(relErr(logitsOf(model, ref), ref.get('logits').values)).toBeLessThan(1e-4);
  });

  it('fromDelta(): a folder that loads to the same model and reads back to the same deltas', async () => {
    const ref = await readReference(name);
    const src = await readPeftAdapter(join(FIXTURES, name, 'adapter'));
    const deltas = loraMethod.delta!(src);
    const { config, tensors } = loraMethod.fromDelta!(deltas, src.config);
    const dir = join(tempDir('delta'), 'out');
    await writePeftAdapter(dir, { config, tensors });
    const model = await Llama.fromFolder(MODEL_DIR);
    models.push(model);
    await loraMethod.loadAdapter(model, dir, (await readPeftAdapter(dir)).config);
    expect(relErr(logitsOf(model, ref), ref.get('logits').values)).toBeLessThan(1e-4);
    expect(loraMethod.delta!(await readPeftAdapter(dir))).toEqual(deltas);
  });
});

describe('fromDelta', () => {
  const delta = (module: string, r: number, scale: number, out = 32, inF = 32): LowRankDelta => ({
    module, r, scale, inFeatures: inF, outFeatures: out,
    A: Float32Array.from({ length: r * inF }, (_, i) => Math.sin(i + r)), B: Float32Array.from({ length: out * r }, (_, i) => Math.cos(i * scale)),
  });

  it.each([[false], [true]])('mixed ranks and scales round-trip through rank_pattern / alpha_pattern (use_rslora %s)', async (rslora) => {
    const deltas = [
      delta('model.layers.0.self_attn.q_proj', 4, 2), delta('model.layers.1.self_attn.q_proj', 4, 2),
      delta('model.layers.0.mlp.down_proj', 2, 3, 32, 64), delta('model.layers.1.self_attn.o_proj', 4, 0.75),
    ];
    const { config, tensors } = loraMethod.fromDelta!(deltas, { peft_type: 'LORA', use_rslora: rslora, base_model_name_or_path: 'model' });
    expect(config).toMatchObject({ r: 4, lora_alpha: rslora ? 4 : 8, use_rslora: rslora, init_lora_weights: true, target_modules: ['down_proj', 'o_proj', 'q_proj'] });
    expect(config.rank_pattern).toEqual({ 'model\\.layers\\.0\\.mlp\\.down_proj': 2 });
    const dir = join(tempDir('delta'), 'out');
    await writePeftAdapter(dir, { config, tensors });
    const back = loraMethod.delta!(await readPeftAdapter(dir));
    const byName = new Map(back.map((d) => [d.module, d]));
    for (const d of deltas) {
      const b = byName.get(d.module)!;
      expect(b.r).toBe(d.r);
      expect(b.scale).toBeCloseTo(d.scale, 12);
      expect(b.A).toEqual(d.A);
      expect(b.B).toEqual(d.B);
    }
  });

  it('refuses deltas that mix DoRA and plain LoRA', () => {
    const d = delta('model.layers.0.self_attn.q_proj', 2, 1);
    const m = { ...delta('model.layers.0.self_attn.v_proj', 2, 1, 16), magnitude: new Float32Array(16).fill(1) };
    expect(() => loraMethod.fromDelta!([d, m], { peft_type: 'LORA' })).toThrow(/mix/);
  });

  it('delta() refuses an adapter with trained biases (a ΔW cannot carry them)', async () => {
    const adapter = await readPeftAdapter(join(FIXTURES, 'rslora', 'adapter'));
    const e = (() => { try { loraMethod.delta!(adapter); } catch (x) { return x; } })() as PeftError;
    expect(e).toBeInstanceOf(PeftError);
    expect(e.message).toMatch(/base_layer\.bias: a low-rank ΔW cannot carry this tensor/);
  });
});
