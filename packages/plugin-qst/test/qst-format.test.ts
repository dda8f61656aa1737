/**
 * The adapter folder (format.ts) and the checks before anything changes: save() writes the config the
 * torch reference writes (same fields and values) and the tensors under the fixture's names, F32; a
 * saved folder loads back to the same logits; a folder for another base (shape or architecture), a
 * missing / extra / misshapen / non-finite tensor, an r the base cannot take and lst on a 4-bit base are
 * refused with one line and leave the model as it was.
 */
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createRegistry, Llama, PeftError, quantizeModel, readPeftAdapter, registerBuiltins, resolveOptions, SafetensorsFile, writeSafetensors,
  type RawTensor,
} from '@peft/core-tensor';
import { attachSide } from '../src/attach.js';
import { loadSideAdapter } from '../src/load.js';
import { attachCase, logitsOf, optionsFor, readReference, relErr, tempDir } from './helpers.js';

let model: Llama | undefined;
afterEach(() => {
  model?.dispose();
  model = undefined;
});

const configOf = (dir: string) => JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;

/** The fixture adapter of `name` copied to a temp folder, its tensors passed through `edit`. */
async function editedAdapter(name: 'qst_gqa', edit: (t: Map<string, RawTensor>) => void): Promise<string> {
  const ref = await readReference(name);
  const dir = join(tempDir('qst-edit'), 'adapter');
  mkdirSync(dir);
  copyFileSync(join(ref.adapterDir, 'adapter_config.json'), join(dir, 'adapter_config.json'));
  const a = await readPeftAdapter(ref.adapterDir);
  edit(a.tensors);
  await writeSafetensors(join(dir, 'adapter_model.safetensors'), [...a.tensors].map(([name, t]) => ({ name, ...t })), { format: 'pt' });
  return dir;
}

async function refusal(f: () => Promise<unknown>): Promise<PeftError> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(PeftError);
    return e as PeftError;
  }
  throw new Error('expected a refusal');
}

describe('adapter folder', () => {
  it.each(['qst_gqa', 'lst_avgpool'] as const)('%s: save() writes the reference\'s config and tensor names; the folder loads back', async (name) => {
    const ref = await readReference(name);
    const a = await attachCase(ref);
    model = a.model;
    const want = logitsOf(model, ref);
    const dir = join(tempDir(), 'adapter');
    await a.adapter.save(dir);
    expect(configOf(dir)).toEqual(configOf(ref.adapterDir));
    const f = await SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
    const fixture = await SafetensorsFile.open(join(ref.adapterDir, 'adapter_model.safetensors'));
    expect(f.tensors.map((t) => [t.name, t.dtype, t.shape]).sort()).toEqual(fixture.tensors.map((t) => [t.name, t.dtype, t.shape]).sort());
    await f.close();
    await fixture.close();
    const loaded = await Llama.fromFolder(ref.modelDir);
    await loadSideAdapter(ref.method, loaded, dir, configOf(dir));
    expect(relErr(logitsOf(loaded, ref), want)).toBeLessThan(1e-6);
    loaded.dispose();
  });

  it('another base shape or architecture is E_INPUT naming what differs; the model keeps no hooks', async () => {
    const gqa = await readReference('qst_gqa');
    const tied = await readReference('qst_tied');
    model = await Llama.fromFolder(tied.modelDir);
    const e = await refusal(() => loadSideAdapter('qst', model!, gqa.adapterDir, configOf(gqa.adapterDir)));
    expect(e.exitCode).toBe(2);
    expect(e.message).toMatch(/the adapter was trained on a base with intermediate_size 64, num_hidden_layers 3, num_attention_heads 4, num_key_value_heads 2; this base has intermediate_size 48, num_hidden_layers 2, num_attention_heads 2, num_key_value_heads 1/);
    const cfg = { ...configOf(gqa.adapterDir), base_model_type: 'qwen2' };
    const m2 = await Llama.fromFolder(gqa.modelDir);
    expect((await refusal(() => loadSideAdapter('qst', m2, gqa.adapterDir, cfg))).message).toMatch(/model_type "qwen2".*this base has model_type "llama"/);
    expect(model.hooks).toBeUndefined();
    expect(m2.hooks).toBeUndefined();
    m2.dispose();
  });

  it('missing, extra, misshapen or non-finite tensors are E_FORMAT naming the tensor', async () => {
    const ref = await readReference('qst_gqa');
    const cases: [(t: Map<string, RawTensor>) => void, RegExp][] = [
      [(t) => t.delete('model.z.1'), /model\.z\.1 is missing \(the side network needs \[8\]\)/],
      [(t) => t.set('model.extra.weight', t.get('lm_head_z')!), /model\.extra\.weight is not a tensor of this qst side network/],
      [(t) => t.set('upsample.bias', { ...t.get('model.z.0')! }), /upsample\.bias has shape \[8\], the side network needs \[32\]/],
      [(t) => {
        const z = t.get('model.z.2')!;
        const v = new Float32Array(z.data.slice().buffer);
        v[3] = NaN;
        t.set('model.z.2', { ...z, data: new Uint8Array(v.buffer) });
      }, /model\.z\.2 holds a non-finite value \(NaN at element 3\)/],
    ];
    for (const [edit, re] of cases) {
      const dir = await editedAdapter('qst_gqa', edit);
      const m = await Llama.fromFolder(ref.modelDir);
      const e = await refusal(() => loadSideAdapter('qst', m, dir, configOf(dir)));
      expect(e.exitCode).toBe(2);
      expect(e.message).toMatch(re);
      expect(m.hooks).toBeUndefined();
      m.dispose();
    }
  });

  it('attach refuses an r the side layers cannot take, and lst on a 4-bit base; the model is untouched', async () => {
    const ref = await readReference('qst_gqa');
    model = await Llama.fromFolder(ref.modelDir);
    const ctx = { baseModelDir: ref.modelDir, seed: 0 };
    const bad = [
      [{ r: 3 }, /qst: r = 3 does not divide hidden_size 32/],
      [{ r: 16 }, /qst: r = 16 gives side hidden size 2, not a multiple of the 4 attention heads the side layers keep/],
      [{ r: 8 }, /qst: r = 8 gives side head dim 1 \(4 \/ 4 heads\), which must be even for rotary embeddings/],
    ] as const;
    for (const [opts, re] of bad) {
      const e = await refusal(() => attachSide('qst', model!, optionsFor('qst', opts), ctx));
      expect(e.exitCode).toBe(2);
      expect(e.message).toMatch(re);
    }
    expect(model.hooks).toBeUndefined();
    expect(model.namedParameters().some(([, t]) => t.requiresGrad)).toBe(false);
    const q = createRegistry();
    registerBuiltins(q);
    const nf4 = join(tempDir('qst-nf4'), 'nf4');
    await quantizeModel({ modelDir: ref.modelDir, outDir: nf4, quantizer: q.get('quantizer', 'nf4'), options: resolveOptions('nf4', q.get('quantizer', 'nf4').options, {}) });
    const m4 = await Llama.fromFolder(nf4);
    const e = await refusal(() => attachSide('lst', m4, optionsFor('lst', { r: 4 }), { baseModelDir: nf4, seed: 0 }));
    expect(e.message).toMatch(/lst trains on a full-precision base, but model\.layers\.0\.self_attn\.q_proj\.weight is nf4: use qst for a quantized one/);
    expect(m4.hooks).toBeUndefined();
    await attachSide('qst', m4, optionsFor('qst', { r: 4 }), { baseModelDir: nf4, seed: 0 }); // qst takes it
    expect(m4.hooks?.method).toBe('qst');
    m4.dispose();
  });

  it('a second side method on the same model is refused', async () => {
    const ref = await readReference('qst_gqa');
    const a = await attachCase(ref, { values: false });
    model = a.model;
    const e = await refusal(() => attachSide('lst', model!, optionsFor('lst', { r: 4 }), { baseModelDir: ref.modelDir, seed: 0 }));
    expect(e.message).toMatch(/lst cannot be applied: the model already runs qst's hooks/);
  });

  it('peft_type of another method is E_FORMAT', async () => {
    const ref = await readReference('lst_linear');
    model = await Llama.fromFolder(ref.modelDir);
    const e = await refusal(() => loadSideAdapter('qst', model!, ref.adapterDir, configOf(ref.adapterDir)));
    expect(e.message).toMatch(/peft_type "LST" is not QST/);
  });
});
