/**
 * Adapter folders against the PEFT-layout folders scripts/ref/prompt_reference.py writes: what save()
 * writes is byte for byte their adapter_config.json (every field, sorted, inference_mode true, peft_version)
 * and the same single `prompt_embeddings` tensor (key, F32, shape, values); loading reads the prefix columns
 * as ((2 layer + kv) H + head) hd + j; folders of older PEFT releases (fields missing, inference_mode false)
 * and newer ones (unknown fields) load to the same model; what cannot apply is refused (E_FORMAT) naming the
 * problem.
 */
import { promises as fsp, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { asF32, Llama, noGrad, readPeftAdapter, tidy, type MethodDef } from '@peft/core-tensor';
import { prefixTuningMethod, promptTuningMethod, pTuningMethod } from '../src/index.js';
import { attachCase, FIXTURES, modelDir, readReference, relErr, tempDir } from './helpers.js';

const work = tempDir('prompt-format');
afterAll(() => fsp.rm(work, { recursive: true, force: true }));

const CASES = ['prompt_text', 'prompt_cut', 'prompt_random', 'ptuning_mlp', 'ptuning_lstm', 'prefix', 'prefix_gqa', 'prefix_projection'];
const configOf = (dir: string) => JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;

/** Loads `dir` with `method` onto a fresh `model` and returns the model. */
async function loaded(method: MethodDef, model: string, dir: string, config = configOf(dir)): Promise<Llama> {
  const m = await Llama.fromFolder(modelDir(model));
  try {
    await method.loadAdapter(m, dir, config);
  } catch (e) {
    m.dispose();
    throw e;
  }
  return m;
}

const ids = Int32Array.of(1, 70, 71, 72, 73);
const hidden = (m: Llama) => tidy(() => noGrad(() => m.forward(ids).hidden.toArray()));

describe.each(CASES)('%s: the saved folder is PEFT\'s', (name) => {
  it('adapter_config.json byte for byte; one F32 prompt_embeddings of the same shape and values', async () => {
    const ref = await readReference(name);
    const { model, adapter } = await attachCase(ref);
    const out = join(work, name);
    await adapter.save(out);
    const want = join(FIXTURES, name, 'adapter');
    expect(readFileSync(join(out, 'adapter_config.json'), 'utf8')).toBe(readFileSync(join(want, 'adapter_config.json'), 'utf8'));
    const [mine, theirs] = [await readPeftAdapter(out), await readPeftAdapter(want)];
    expect(mine.metadata).toEqual({ format: 'pt' });
    expect([...mine.tensors].map(([k, t]) => [k, t.dtype, t.shape])).toEqual([...theirs.tensors].map(([k, t]) => [k, t.dtype, t.shape]));
    expect(relErr(asF32(mine.tensors.get('prompt_embeddings')!.data), asF32(theirs.tensors.get('prompt_embeddings')!.data))).toBeLessThan(1e-5);
    model.dispose();
  });
});

describe('prefix column order', () => {
  it.each(['prefix', 'prefix_gqa', 'prefix_projection'])('%s: layer l\'s K / V are get_prompt\'s split of the saved tensor', async (name) => {
    const ref = await readReference(name);
    const m = await loaded(prefixTuningMethod, ref.model, join(FIXTURES, name, 'adapter'));
    const { numLayers, numKvHeads: H, headDim: hd } = m.config;
    const n = m.hooks!.prefix!.length;
    for (let l = 0; l < numLayers; l++) {
      const kv = tidy(() => { const t = m.hooks!.prefix!.kv(l, 1); return { k: t.k.toArray(), v: t.v.toArray() }; });
      for (const part of ['k', 'v'] as const) {
        const want = ref.get(`kv.${l}.${part}`); // [H, N, hd] as PEFT's cache holds it
        expect(want.shape).toEqual([H, n, hd]);
        const asOurs = kv[part].map((_, i) => { const [t, h, j] = [Math.floor(i / (H * hd)), Math.floor(i / hd) % H, i % hd]; return want.values[(h * n + t) * hd + j]; });
        expect(kv[part]).toEqual(asOurs);
      }
    }
    m.dispose();
  });
});

describe('folders of other PEFT releases', () => {
  const cases: [string, string, MethodDef, string][] = [
    ['prompt_v0.6', 'prompt_text', promptTuningMethod, 'llama'], ['ptuning_v0.6', 'ptuning_lstm', pTuningMethod, 'gqa'],
    ['prefix_v0.6', 'prefix', prefixTuningMethod, 'llama'], ['prefix_future', 'prefix_gqa', prefixTuningMethod, 'gqa'],
  ];
  it.each(cases)('%s loads and computes what the current layout of %s does', async (legacy, current, method, model) => {
    const dir = join(FIXTURES, 'legacy', legacy);
    const c = configOf(dir);
    expect(c.peft_version === undefined || c.future_field !== undefined).toBe(true);
    const [a, b] = [await loaded(method, model, dir), await loaded(method, model, join(FIXTURES, current, 'adapter'))];
    expect(hidden(a)).toEqual(hidden(b));
    a.dispose();
    b.dispose();
  });
});

describe('what cannot be applied is refused', () => {
  const dir = join(FIXTURES, 'prompt_text', 'adapter');
  const bad = async (method: MethodDef, model: string, d: string, config: Record<string, unknown>) => {
    try {
      (await loaded(method, model, d, config)).dispose();
    } catch (e) {
      return e as { code: string; message: string };
    }
    throw new Error('loaded');
  };
  it('another model\'s width, another task type or submodule count, a wrong N, a prefix for other heads', async () => {
    expect(await bad(promptTuningMethod, 'gqa', dir, configOf(dir))).toMatchObject({ code: 'E_FORMAT', message: expect.stringMatching(/prompt_embeddings has shape \[12, 32\], this model needs \[N, 48\]/) });
    expect(await bad(promptTuningMethod, 'llama', dir, { ...configOf(dir), task_type: 'SEQ_2_SEQ_LM' })).toMatchObject({ code: 'E_FORMAT', message: expect.stringMatching(/task_type "SEQ_2_SEQ_LM"/) });
    expect(await bad(promptTuningMethod, 'llama', dir, { ...configOf(dir), num_transformer_submodules: 2 })).toMatchObject({ message: expect.stringMatching(/num_transformer_submodules 2/) });
    expect(await bad(promptTuningMethod, 'llama', dir, { ...configOf(dir), num_virtual_tokens: 10 })).toMatchObject({ message: expect.stringMatching(/num_virtual_tokens is 10 but prompt_embeddings has 12 rows/) });
    const pre = join(FIXTURES, 'prefix', 'adapter');
    expect(await bad(prefixTuningMethod, 'gqa', pre, configOf(pre))).toMatchObject({ code: 'E_FORMAT', message: expect.stringMatching(/token_dim is 32, this model's prefix has 16/) });
  });

  it('a key that is not the method\'s (e.g. a modules_to_save copy)', async () => {
    const d = join(work, 'extra');
    await fsp.mkdir(d, { recursive: true });
    const a = await readPeftAdapter(dir);
    const { writePeftAdapter } = await import('@peft/core-tensor');
    await writePeftAdapter(d, { config: a.config, tensors: new Map([...a.tensors, ['base_model.model.lm_head.weight', a.tensors.get('prompt_embeddings')!]]), force: true });
    expect(await bad(promptTuningMethod, 'llama', d, configOf(d))).toMatchObject({ code: 'E_FORMAT', message: expect.stringMatching(/base_model.model.lm_head.weight: not a PROMPT_TUNING tensor/) });
  });
});
