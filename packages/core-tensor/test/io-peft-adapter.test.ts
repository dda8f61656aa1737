import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RawTensor } from '../src/dtype.js';
import { PeftError } from '../src/errors.js';
import {
  describePeftAdapter, groupAdapterTensors, parsePeftKey, peftKey as keyOf, readPeftAdapter, SafetensorsFile, writePeftAdapter,
  writeSafetensors, type AdapterKeys,
} from '../src/io/index.js';

/** A method's key naming as LoRA declares it (PEFT's save_and_load.py names). */
const KEYS: AdapterKeys = {
  prefix: 'lora_',
  parts: {
    lora_A: { saved: '.weight' }, lora_B: { saved: '.weight' }, lora_magnitude_vector: { saved: '', inMemory: '.default.weight' },
    lora_embedding_A: { saved: '' }, lora_embedding_B: { saved: '' },
  },
};
const peftKey = (module: string, part: string) => keyOf(KEYS, module, part);

let root: string;
let n = 0;
const fresh = () => join(root, `case${n++}`);
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'peft-io-adapter-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const Q = 'model.layers.0.self_attn.q_proj';
const V = 'model.layers.0.self_attn.v_proj';
function f32(shape: number[], seed: number): RawTensor {
  const a = new Float32Array(shape.reduce((x, y) => x * y, 1)).map((_, i) => seed + i * 0.25);
  return { dtype: 'F32', shape, data: new Uint8Array(a.buffer) };
}
const tensors = () => new Map<string, RawTensor>([
  [peftKey(Q, 'lora_A'), f32([2, 4], 1)], [peftKey(Q, 'lora_B'), f32([4, 2], 2)],
  [peftKey(V, 'lora_A'), f32([2, 4], 3)], [peftKey(V, 'lora_B'), f32([4, 2], 4)],
]);
const config = () => ({
  peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 2, lora_alpha: 16, lora_dropout: 0, target_modules: ['v_proj', 'q_proj'],
  bias: 'none', use_dora: false, inference_mode: false, base_model_name_or_path: '/home/me/models/tiny-llama', rank_pattern: {},
});

async function expectCode(p: Promise<unknown>, code: string, file?: string, msg?: RegExp): Promise<void> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  expect(e).toBeInstanceOf(PeftError);
  expect((e as PeftError).code).toBe(code);
  const m = (e as PeftError).message;
  expect(m).not.toContain('\n');
  if (file) expect(m).toContain(file);
  if (msg) expect(m).toMatch(msg);
}

describe('writePeftAdapter / readPeftAdapter', () => {
  it('round-trips config and tensor bytes, with PEFT file names, metadata and JSON layout', async () => {
    const out = fresh();
    await writePeftAdapter(out, { config: config(), tensors: tensors() });
    expect((await readdir(out)).sort()).toEqual(['.peft-output.json', 'adapter_config.json', 'adapter_model.safetensors']); // + the output marker
    // Python json.dumps(indent=2, sort_keys=True), no trailing newline (peft config.py save_pretrained).
    const expected = [
      '{',
      '  "base_model_name_or_path": "tiny-llama",',
      '  "bias": "none",',
      '  "inference_mode": true,',
      '  "lora_alpha": 16,',
      '  "lora_dropout": 0.0,',
      '  "peft_type": "LORA",',
      '  "r": 2,',
      '  "rank_pattern": {},',
      '  "target_modules": [',
      '    "v_proj",',
      '    "q_proj"',
      '  ],',
      '  "task_type": "CAUSAL_LM",',
      '  "use_dora": false',
      '}',
    ].join('\n');
    expect(await readFile(join(out, 'adapter_config.json'), 'utf8')).toBe(expected);
    const st = await SafetensorsFile.open(join(out, 'adapter_model.safetensors'));
    expect({ ...st.metadata }).toEqual({ format: 'pt' });
    await st.close();

    const a = await readPeftAdapter(out);
    expect(a.dir).toBe(out);
    expect(a.metadata).toEqual({ format: 'pt' });
    const { inference_mode: _i, base_model_name_or_path: _b, ...rest } = config();
    expect(a.config).toEqual({ ...rest, inference_mode: true, base_model_name_or_path: 'tiny-llama' });
    expect(a.floatKeys.has('lora_dropout')).toBe(true);
    const want = tensors();
    expect([...a.tensors.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [k, t] of want) {
      const got = a.tensors.get(k)!;
      expect(got.dtype).toBe(t.dtype);
      expect(got.shape).toEqual(t.shape);
      expect(Buffer.from(got.data).equals(Buffer.from(t.data))).toBe(true);
    }
    // Rewriting what was read gives the same bytes.
    const again = fresh();
    await writePeftAdapter(again, { config: a.config, tensors: a.tensors, floatKeys: a.floatKeys });
    for (const f of ['adapter_config.json', 'adapter_model.safetensors'])
      expect((await readFile(join(again, f))).equals(await readFile(join(out, f)))).toBe(true);
  });

  it('keeps relative / hub base model names and normalises Windows absolute paths', async () => {
    for (const [given, stored] of [['meta-llama/Llama-3.2-1B', 'meta-llama/Llama-3.2-1B'], ['C:\\models\\llama\\', 'llama'], ['/x/y/', 'y']]) {
      const out = fresh();
      await writePeftAdapter(out, { config: { ...config(), base_model_name_or_path: given }, tensors: tensors() });
      expect((await readPeftAdapter(out)).config.base_model_name_or_path).toBe(stored);
    }
  });

  it('reads a non-default adapter from its subfolder', async () => {
    const out = fresh();
    await writePeftAdapter(join(out, 'other'), { config: { ...config(), r: 4 }, tensors: new Map([[peftKey(Q, 'lora_A'), f32([4, 4], 9)]]) });
    const a = await readPeftAdapter(out, { adapterName: 'other' });
    expect(a.dir).toBe(join(out, 'other'));
    expect(a.config.r).toBe(4);
    expect([...a.tensors.keys()]).toEqual([peftKey(Q, 'lora_A')]);
    await expectCode(readPeftAdapter(out, { adapterName: 'missing' }), 'E_NOT_FOUND', join(out, 'missing'));
    await expectCode(readPeftAdapter(out, { adapterName: '../x' }), 'E_INPUT');
    await expectCode(readPeftAdapter(out), 'E_NOT_FOUND', join(out, 'adapter_config.json')); // "default" is the root
  });

  it('refuses to replace an existing output without force, replaces it with force', async () => {
    const out = fresh();
    await writePeftAdapter(out, { config: config(), tensors: tensors() });
    await expectCode(writePeftAdapter(out, { config: { ...config(), r: 8 }, tensors: tensors() }), 'E_EXISTS', out);
    expect((await readPeftAdapter(out)).config.r).toBe(2);
    await writePeftAdapter(out, { config: { ...config(), r: 8 }, tensors: tensors(), force: true });
    expect((await readPeftAdapter(out)).config.r).toBe(8);
    await expectCode(writePeftAdapter(fresh(), { config: { r: 2 }, tensors: tensors() }), 'E_INPUT', undefined, /peft_type/);
  });
});

describe('read errors', () => {
  const setup = async (files: Record<string, string | Uint8Array>) => {
    const d = fresh();
    await mkdir(d, { recursive: true });
    for (const [f, c] of Object.entries(files)) await writeFile(join(d, f), c);
    return d;
  };
  const cfg = JSON.stringify({ peft_type: 'LORA' });

  it('missing folder, missing config, config without peft_type, config not an object', async () => {
    const gone = join(root, 'nope');
    await expectCode(readPeftAdapter(gone), 'E_NOT_FOUND', gone);
    const noCfg = await setup({});
    await expectCode(readPeftAdapter(noCfg), 'E_NOT_FOUND', join(noCfg, 'adapter_config.json'));
    const noType = await setup({ 'adapter_config.json': '{"r": 8}' });
    await expectCode(readPeftAdapter(noType), 'E_FORMAT', join(noType, 'adapter_config.json'), /peft_type/);
    const arr = await setup({ 'adapter_config.json': '[1]' });
    await expectCode(readPeftAdapter(arr), 'E_FORMAT', join(arr, 'adapter_config.json'));
  });

  it('.bin only, no weights at all, corrupt safetensors', async () => {
    const bin = await setup({ 'adapter_config.json': cfg, 'adapter_model.bin': 'PK\x03\x04' });
    await expectCode(readPeftAdapter(bin), 'E_FORMAT', join(bin, 'adapter_model.bin'), /pickle checkpoints are not loaded; convert to safetensors/);
    const none = await setup({ 'adapter_config.json': cfg });
    await expectCode(readPeftAdapter(none), 'E_NOT_FOUND', join(none, 'adapter_model.safetensors'));
    const bad = await setup({ 'adapter_config.json': cfg, 'adapter_model.safetensors': new Uint8Array([200, 0, 0, 0, 0, 0, 0, 0, 123]) });
    await expectCode(readPeftAdapter(bad), 'E_FORMAT', join(bad, 'adapter_model.safetensors'));
    await expectCode(describePeftAdapter(bad), 'E_FORMAT', join(bad, 'adapter_model.safetensors'));
  });
});

describe('key naming declared by a method', () => {
  it('gives the names PEFT saves', () => {
    expect(peftKey(Q, 'lora_A')).toBe('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight');
    expect(peftKey(Q, 'lora_B')).toBe('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight');
    expect(peftKey(Q, 'lora_magnitude_vector')).toBe('base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector');
    expect(peftKey('model.embed_tokens', 'lora_embedding_A')).toBe('base_model.model.model.embed_tokens.lora_embedding_A');
    expect(peftKey('model.embed_tokens', 'lora_embedding_B')).toBe('base_model.model.model.embed_tokens.lora_embedding_B');
  });

  it('parses on-disk and in-memory (.default) names, rejects others', () => {
    for (const part of ['lora_A', 'lora_B', 'lora_magnitude_vector', 'lora_embedding_A', 'lora_embedding_B'])
      expect(parsePeftKey(KEYS, peftKey(Q, part))).toEqual({ module: Q, part });
    expect(parsePeftKey(KEYS, `base_model.model.${Q}.lora_A.default.weight`)).toEqual({ module: Q, part: 'lora_A' });
    expect(parsePeftKey(KEYS, `base_model.model.${Q}.lora_magnitude_vector.default.weight`)).toEqual({ module: Q, part: 'lora_magnitude_vector' });
    expect(parsePeftKey(KEYS, 'base_model.model.model.embed_tokens.lora_embedding_B.default')).toEqual({ module: 'model.embed_tokens', part: 'lora_embedding_B' });
    for (const k of ['prompt_embeddings', `${Q}.lora_A.weight`, 'base_model.model.lm_head.weight', `base_model.model.${Q}.lora_A.bias`, `base_model.model.${Q}.lora_magnitude_vector.weight`])
      expect(parsePeftKey(KEYS, k)).toBeUndefined();
  });

  it('names model-level tensors (prompt tuning) by the bare part, and groups a file by module', () => {
    const prompt: AdapterKeys = { prefix: 'prompt_', parts: { prompt_embeddings: { saved: '' } } };
    expect(keyOf(prompt, '', 'prompt_embeddings')).toBe('prompt_embeddings');
    expect(parsePeftKey(prompt, 'prompt_embeddings')).toEqual({ module: '', part: 'prompt_embeddings' });
    const ts = tensors();
    ts.set(`base_model.model.${Q}.bias`, f32([4], 0));
    const g = groupAdapterTensors(ts, KEYS);
    expect([...g.modules.keys()]).toEqual([Q, V]);
    expect([...g.modules.get(Q)!.keys()]).toEqual(['lora_A', 'lora_B']);
    expect(g.other.map((o) => o.key)).toEqual([`base_model.model.${Q}.bias`]);
  });
});

describe('describePeftAdapter', () => {
  it('summarises config and weights', async () => {
    const out = fresh();
    const ts = tensors();
    ts.set('base_model.model.lm_head.weight', { dtype: 'BF16', shape: [3], data: new Uint8Array(6) });
    await writePeftAdapter(out, { config: config(), tensors: ts });
    expect((await describePeftAdapter(out)).targetModules).toEqual([]); // no method's key naming: modules unknown
    expect(await describePeftAdapter(out, { keysFor: (t) => (t === 'LORA' ? KEYS : undefined) })).toEqual({
      dir: out, peftType: 'LORA', taskType: 'CAUSAL_LM', r: 2, loraAlpha: 16, targetModules: ['q_proj', 'v_proj'],
      tensorCount: 5, parameters: 4 * 8 + 3, bytes: 4 * 8 * 4 + 6,
    });
  });

  it('takes raw safetensors written by others (no PEFT metadata)', async () => {
    const d = fresh();
    await mkdir(d, { recursive: true });
    await writeFile(join(d, 'adapter_config.json'), JSON.stringify({ peft_type: 'PROMPT_TUNING', num_virtual_tokens: 2 }));
    await writeSafetensors(join(d, 'adapter_model.safetensors'), [{ name: 'prompt_embeddings', ...f32([2, 3], 0) }]);
    const a = await readPeftAdapter(d);
    expect(a.metadata).toEqual({});
    expect(a.tensors.get('prompt_embeddings')!.shape).toEqual([2, 3]);
    const s = await describePeftAdapter(d);
    expect([s.peftType, s.r, s.targetModules, s.parameters]).toEqual(['PROMPT_TUNING', undefined, [], 6]);
  });
});
