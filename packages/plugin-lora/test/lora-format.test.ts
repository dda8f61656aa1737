/**
 * The PEFT adapter folder. save() writes, byte for byte, the adapter_config.json and the tensors
 * (names, dtypes, shapes, values) that the reference script writes following PEFT's save_pretrained
 * (LoRA; rsLoRA with all-linear, patterns and lora_only biases; DoRA). loadAdapter applies those
 * PEFT-written folders with the torch logits. save -> load reproduces the trained model's logits
 * (LoRA, DoRA, LoftQ with its quantized base); PiSSA / OLoRA are converted on save so that the folder
 * applies to the ORIGINAL base; F16/BF16 factors load as f32; bad folders are E_FORMAT naming the key.
 */
import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  getBackend, Llama, PeftError, readPeftAdapter, SafetensorsFile, writeSafetensors, type NamedRawTensor,
} from '@peft/core-tensor';
import { attachLora } from '../src/attach.js';
import { resolveLoraOptions } from '../src/config.js';
import { loraMethod } from '../src/index.js';
import { LoraLinear } from '../src/layer.js';
import { LOFTQ_BASE_FILE, type LoraAdapterState } from '../src/save.js';
import { attachCase, ctxFor, FIXTURES, logitsOf, MODEL_DIR, readReference, relErr, tempDir } from './helpers.js';

const models: Llama[] = [];
afterEach(() => {
  for (const m of models.splice(0)) m.dispose();
});
const track = (m: Llama) => (models.push(m), m);

async function tensorsOf(dir: string): Promise<Map<string, { dtype: string; shape: number[]; bytes: Buffer }>> {
  const f = await SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
  const out = new Map<string, { dtype: string; shape: number[]; bytes: Buffer }>();
  for (const t of f.tensors) out.set(t.name, { dtype: t.dtype, shape: [...t.shape], bytes: Buffer.from(await f.read(t.name)) });
  expect({ ...f.metadata }).toEqual({ format: 'pt' });
  await f.close();
  return out;
}

async function loadInto(dir: string, modelDir = MODEL_DIR): Promise<Llama> {
  const model = track(await Llama.fromFolder(modelDir));
  await loraMethod.loadAdapter(model, dir, (await readPeftAdapter(dir)).config);
  return model;
}

/** Nudges every trainable tensor, as training would. */
function perturb(adapter: LoraAdapterState, seed: number): void {
  adapter.parameters().forEach(([, t], k) => {
    const d = t.data;
    for (let i = 0; i < d.length; i++) d[i] += 0.02 * Math.sin(seed + 7 * k + i);
  });
}

describe.each(['lora', 'rslora', 'dora'])('%s: the folder PEFT writes', (name) => {
  it('save() writes the same adapter_config.json text and the same tensors', async () => {
    const ref = await readReference(name);
    const { model, adapter } = await attachCase(ref);
    track(model);
    const out = join(tempDir(), 'adapter');
    await adapter.save(out);
    const want = join(FIXTURES, name, 'adapter');
    expect(readFileSync(join(out, 'adapter_config.json'), 'utf8')).toBe(readFileSync(join(want, 'adapter_config.json'), 'utf8'));
    const [got, exp] = [await tensorsOf(out), await tensorsOf(want)];
    expect([...got.keys()].sort()).toEqual([...exp.keys()].sort());
    for (const [k, t] of exp) expect(got.get(k), k).toEqual(t);
  });

  it('loadAdapter applies the PEFT-written folder: the torch logits', async () => {
    const ref = await readReference(name);
    const model = await loadInto(join(FIXTURES, name, 'adapter'));
    expect(relErr(logitsOf(model, ref), ref.get('logits').values)).toBeLessThan(1e-4);
    for (const t of model.parameters()) expect(t.requiresGrad).toBe(false);
  });
});

describe('save -> load', () => {
  it.each<[string, Record<string, unknown>]>([
    ['lora', { r: 4, lora_alpha: 16, target_modules: ['q_proj', 'v_proj', 'down_proj'] }],
    ['dora + bias=all', { r: 2, lora_alpha: 4, target_modules: 'all-linear', use_dora: true, bias: 'all' }],
    ['loftq', { r: 4, lora_alpha: 8, target_modules: ['gate_proj', 'o_proj'], init_lora_weights: 'loftq', loftq_iter: 2 }],
  ])('%s: identical logits from the saved folder', async (_name, options) => {
    const ref = await readReference('lora');
    const model = track(await Llama.fromFolder(MODEL_DIR));
    const adapter = (await attachLora(model, resolveLoraOptions(options), ctxFor())) as LoraAdapterState;
    perturb(adapter, 1);
    const trained = logitsOf(model, ref);
    const dir = join(tempDir(), 'adapter');
    await adapter.save(dir);
    if (options.init_lora_weights === 'loftq') {
      const base = await SafetensorsFile.open(join(dir, LOFTQ_BASE_FILE));
      expect(base.tensors.map((t) => t.name)).toContain('model.layers.0.mlp.gate_proj.weight.quant_state.bitsandbytes__nf4');
      await base.close();
    }
    const loaded = await loadInto(dir);
    expect(logitsOf(loaded, ref)).toEqual(trained);
  });

  it.each([
    ['pissa', { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj', 'down_proj'], init_lora_weights: 'pissa' }, { r: 8, lora_alpha: 16 }],
    ['olora + rsLoRA + patterns', {
      r: 4, lora_alpha: 8, target_modules: ['q_proj', 'gate_proj'], init_lora_weights: 'olora', use_rslora: true,
      rank_pattern: 'gate_proj=2', alpha_pattern: 'q_proj=6',
    }, { r: 8, lora_alpha: 8 * Math.SQRT2, rank_pattern: { gate_proj: 4 }, alpha_pattern: { q_proj: 6 * Math.SQRT2 } }],
  ])('%s: converted on save (rank 2r, ΔW = s(BA - B0A0)), so the folder applies to the ORIGINAL base', async (_n, options, cfg) => {
    const ref = await readReference('lora');
    const model = track(await Llama.fromFolder(MODEL_DIR));
    const adapter = (await attachLora(model, resolveLoraOptions(options), ctxFor())) as LoraAdapterState;
    perturb(adapter, 2);
    const trained = logitsOf(model, ref);
    const dir = join(tempDir(), 'adapter');
    await adapter.save(dir);
    const saved = (await readPeftAdapter(dir)).config;
    expect(saved).toMatchObject({ ...cfg, init_lora_weights: true });
    const loaded = await loadInto(dir); // the untouched model folder: W, not W_res
    expect(relErr(logitsOf(loaded, ref), trained)).toBeLessThan(1e-5);
    const q = loaded.getModule('model.layers.0.self_attn.q_proj') as LoraLinear;
    expect(q.lora_A.shape[0]).toBe(8);
  });

  it('save(dir) writes into dir and leaves what else is there (the trainer puts its checkpoint files next to it)', async () => {
    const model = track(await Llama.fromFolder(MODEL_DIR));
    const adapter = (await attachLora(model, resolveLoraOptions({}), ctxFor())) as LoraAdapterState;
    const dir = tempDir();
    writeFileSync(join(dir, 'trainer_state.json'), '{}');
    await adapter.save(dir);
    expect(readdirSync(dir).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'trainer_state.json']);
    await adapter.save(dir); // again: replaced in place
    expect(readdirSync(dir).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'trainer_state.json']);
  });

  it('records base_model_name_or_path as the folder name, never an absolute path', async () => {
    const model = track(await Llama.fromFolder(MODEL_DIR));
    const adapter = (await attachLora(model, resolveLoraOptions({}), ctxFor(MODEL_DIR))) as LoraAdapterState;
    expect(adapter.adapterFiles().config.base_model_name_or_path).toBe('model');
    expect(adapter.summary()).toEqual({
      trainableParams: 2 * (8 * 32 + 32 * 8 + 8 * 32 + 16 * 8), // r 8: q_proj A [8, 32] B [32, 8], v_proj A [8, 32] B [16, 8]
      modules: ['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj'],
    });
  });
});

describe('loadAdapter', () => {
  /** A copy of the lora fixture folder with its tensors rewritten by `edit`. */
  async function edited(edit: (ts: NamedRawTensor[]) => NamedRawTensor[], config?: (c: Record<string, unknown>) => void): Promise<string> {
    const dir = join(tempDir(), 'adapter');
    cpSync(join(FIXTURES, 'lora', 'adapter'), dir, { recursive: true });
    const a = await readPeftAdapter(dir);
    await writeSafetensors(join(dir, 'adapter_model.safetensors'), edit([...a.tensors].map(([name, t]) => ({ name, ...t }))), { format: 'pt' });
    if (config) {
      config(a.config);
      writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(a.config));
    }
    return dir;
  }
  const A0 = 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight';

  it('F16 / BF16 factors are read as f32', async () => {
    const b = getBackend();
    for (const dtype of ['F16', 'BF16'] as const) {
      const dir = await edited((ts) => ts.map((t) => {
        const f32 = new Float32Array(t.data.slice().buffer);
        const data = dtype === 'F16' ? b.f32ToF16(f32) : b.f32ToBf16(f32);
        return { ...t, dtype, data: new Uint8Array(data.buffer) };
      }));
      const model = await loadInto(dir);
      const q = model.getModule('model.layers.0.self_attn.q_proj') as LoraLinear;
      const raw = (await readPeftAdapter(dir)).tensors.get(A0)!;
      const bits = new Uint16Array(raw.data.slice().buffer);
      expect(Float32Array.from(q.lora_A.data)).toEqual(dtype === 'F16' ? b.f16ToF32(bits) : b.bf16ToF32(bits));
    }
  });

  it.each([
    ['a shape that does not fit the module', (ts: NamedRawTensor[]) => ts.map((t) => (t.name === A0 ? { ...t, shape: [4, 16], data: t.data.slice(0, 4 * 16 * 4) } : t)), undefined, /q_proj\.lora_A\.weight has shape \[4, 16\], the model needs \[4, 32\]/],
    ['an unknown key', (ts: NamedRawTensor[]) => [...ts, { ...ts[0], name: 'base_model.model.lm_head.modules_to_save.weight' }], undefined, /lm_head\.modules_to_save\.weight: not a LoRA tensor/],
    ['a rank the config does not give', (ts: NamedRawTensor[]) => ts, (c: Record<string, unknown>) => { c.r = 8; }, /lora_A\.weight has rank 4, adapter_config\.json gives .* r = 8/],
    ['use_dora without magnitudes', (ts: NamedRawTensor[]) => ts, (c: Record<string, unknown>) => { c.use_dora = true; }, /use_dora is true but lora_magnitude_vector is missing/],
  ])('refuses %s (E_FORMAT naming the key), leaving the model untouched', async (_what, edit, config, msg) => {
    const dir = await edited(edit, config);
    const model = track(await Llama.fromFolder(MODEL_DIR));
    const e = await loraMethod.loadAdapter(model, dir, (await readPeftAdapter(dir)).config).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(PeftError);
    expect((e as PeftError).code).toBe('E_FORMAT');
    expect((e as PeftError).message).toMatch(msg);
    expect(model.namedModules().some(([, m]) => m instanceof LoraLinear)).toBe(false);
  });
});
