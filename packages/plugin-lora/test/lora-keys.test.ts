/**
 * LoRA's tensors in a file (src/keys.ts), one set of rules for loading and for delta(): PEFT's key
 * names (save_and_load.py), only modules the config targets apply (the others' tensors reported,
 * never applied), and a DoRA config without magnitude vectors refused by both, naming the tensor.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Llama, parsePeftKey, PeftError, readPeftAdapter } from '@peft/core-tensor';
import { LORA_KEYS, loraKey, loraMethod } from '../src/index.js';
import { LoraLinear } from '../src/layer.js';
import { FIXTURES, MODEL_DIR, tempDir } from './helpers.js';

const Q = 'model.layers.0.self_attn.q_proj';
const models: Llama[] = [];
afterEach(() => {
  for (const m of models.splice(0)) m.dispose();
});

/** The lora fixture (q_proj and v_proj of both layers) with its config edited. */
function fixture(edit: (c: Record<string, unknown>) => void): string {
  const dir = join(tempDir('keys'), 'adapter');
  cpSync(join(FIXTURES, 'lora', 'adapter'), dir, { recursive: true });
  const file = join(dir, 'adapter_config.json');
  const c = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  edit(c);
  writeFileSync(file, JSON.stringify(c));
  return dir;
}

describe('LORA_KEYS', () => {
  it('give the names PEFT saves and read its in-memory names', () => {
    expect(loraKey(Q, 'lora_A')).toBe('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight');
    expect(loraKey(Q, 'lora_B')).toBe('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight');
    expect(loraKey(Q, 'lora_magnitude_vector')).toBe('base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector');
    expect(parsePeftKey(LORA_KEYS, `base_model.model.${Q}.lora_magnitude_vector.default.weight`)).toEqual({ module: Q, part: 'lora_magnitude_vector' });
    expect(parsePeftKey(LORA_KEYS, 'base_model.model.model.embed_tokens.lora_embedding_A')).toEqual({ module: 'model.embed_tokens', part: 'lora_embedding_A' });
    expect(loraMethod.keys).toBe(LORA_KEYS);
  });
});

describe('targets decide what applies, in loadAdapter and delta() alike', () => {
  it('target_modules ["q_proj"]: v_proj tensors unused, not wrapped, not in the deltas', async () => {
    const dir = fixture((c) => { c.target_modules = ['q_proj']; });
    const model = await Llama.fromFolder(MODEL_DIR);
    models.push(model);
    const report = await loraMethod.loadAdapter(model, dir, (await readPeftAdapter(dir)).config);
    expect(report).toMatchObject({ modules: ['model.layers.0.self_attn.q_proj', 'model.layers.1.self_attn.q_proj'], missing: [] });
    expect(report!.unused).toHaveLength(4);
    expect(report!.unused.every((k) => k.includes('v_proj'))).toBe(true);
    expect(model.getModule('model.layers.0.self_attn.v_proj')).not.toBeInstanceOf(LoraLinear);
    expect(loraMethod.delta!(await readPeftAdapter(dir)).map((d) => d.module)).toEqual(report!.modules);
  });

  it('layers_to_transform [1] with an extra target: layer 0 unused, the unmatched module reported missing', async () => {
    const dir = fixture((c) => { c.target_modules = ['q_proj', 'v_proj', 'o_proj']; c.layers_to_transform = [1]; });
    const model = await Llama.fromFolder(MODEL_DIR);
    models.push(model);
    const report = await loraMethod.loadAdapter(model, dir, (await readPeftAdapter(dir)).config);
    expect(report).toMatchObject({ modules: ['model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj'], missing: ['model.layers.1.self_attn.o_proj'] });
    expect(report!.unused.every((k) => k.includes('layers.0.'))).toBe(true);
  });

  it('nothing targeted: PEFT\'s error, the model untouched', async () => {
    const dir = fixture((c) => { c.target_modules = ['k_proj']; c.layers_to_transform = [0]; });
    const model = await Llama.fromFolder(MODEL_DIR);
    models.push(model);
    const none = fixture((c) => { c.target_modules = ['wq']; });
    const e = await loraMethod.loadAdapter(model, none, (await readPeftAdapter(none)).config).catch((x: unknown) => x as PeftError);
    expect((e as PeftError).message).toMatch(/target_modules wq matched no module .*not found in the base model/);
    expect(model.namedModules().some(([, m]) => m instanceof LoraLinear)).toBe(false);
    // k_proj of layer 0 exists but the file has nothing for it: applied as PEFT would (no change), reported missing
    const report = await loraMethod.loadAdapter(model, dir, (await readPeftAdapter(dir)).config);
    expect(report).toMatchObject({ modules: [], missing: ['model.layers.0.self_attn.k_proj'] });
    expect(loraMethod.delta!(await readPeftAdapter(dir))).toEqual([]);
  });

  it('use_dora without magnitudes: both refuse, naming the missing tensor', async () => {
    const dir = fixture((c) => { c.use_dora = true; });
    const msg = /use_dora is true but lora_magnitude_vector is missing: no tensor base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_magnitude_vector/;
    const adapter = await readPeftAdapter(dir);
    expect(() => loraMethod.delta!(adapter)).toThrow(msg);
    const model = await Llama.fromFolder(MODEL_DIR);
    models.push(model);
    await expect(loraMethod.loadAdapter(model, dir, (await readPeftAdapter(dir)).config)).rejects.toThrow(msg);
  });
});
