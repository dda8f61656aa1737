import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asF32, asU16 } from '../src/dtype.js';
import { checkLlamaShapes, llamaShapes, openModelFolder, pyJsonDumps } from '../src/io/index.js';
import {
  generateTinyLlama, genModelMain, sizeForBytes, tinyLlamaBytes, tinyLlamaTensor, TINY_LLAMA_PRESETS, MIN_TOKENIZER_VOCAB,
} from '../src/fixtures/index.js';
import { referenceBackend } from '../src/backend/reference.js';
import { Xoshiro128 } from '../src/random/rng.js';

let root: string;
let n = 0;
const fresh = () => join(root, `m${n++}`);
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'peft-fx-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function filesOf(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const f of (await readdir(dir)).sort()) out.set(f, await readFile(join(dir, f)));
  return out;
}

describe('generateTinyLlama', () => {
  it('is deterministic: same seed -> identical bytes, other seed -> other weights', async () => {
    const [a, b, c] = [fresh(), fresh(), fresh()];
    await generateTinyLlama(a, { seed: 7, dtype: 'BF16' });
    await generateTinyLlama(b, { seed: 7, dtype: 'BF16' });
    await generateTinyLlama(c, { seed: 8, dtype: 'BF16' });
    const [fa, fb, fc2] = await Promise.all([filesOf(a), filesOf(b), filesOf(c)]);
    expect([...fa.keys()]).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json']);
    for (const [k, v] of fa) expect(v.equals(fb.get(k)!), k).toBe(true);
    expect(fa.get('model.safetensors')!.equals(fc2.get('model.safetensors')!)).toBe(false);
    expect(fa.get('config.json')!.equals(fc2.get('config.json')!)).toBe(true);
  });

  it('writes every tensor llamaShapes expects, with the tiny preset dimensions', async () => {
    const dir = fresh();
    const g = await generateTinyLlama(dir, { preset: 'tiny' });
    const m = await openModelFolder(dir);
    try {
      const config = m.config;
      expect(config).toMatchObject({
        architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2,
        num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, vocab_size: 320, hidden_act: 'silu', torch_dtype: 'float32',
        tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2, rms_norm_eps: 1e-6, rope_theta: 10000,
      });
      expect(await readFile(join(dir, 'config.json'), 'utf8')).toBe(pyJsonDumps(config));
      const expected = llamaShapes(config);
      expect([...m.tensorNames].sort()).toEqual([...expected.keys()].sort());
      for (const [name, shape] of expected) expect(m.info(name).shape).toEqual(shape);
      checkLlamaShapes(m);
      expect(m.totalBytes).toBe(tinyLlamaBytes({}));
      expect(g.weights.totalSize).toBe(m.totalBytes);
      // Norms are ones; matrices ~ N(0, 0.02).
      expect([...asF32((await m.read('model.norm.weight')).data)].every((v) => v === 1)).toBe(true);
      const w = asF32((await m.read('model.embed_tokens.weight')).data);
      const mean = w.reduce((a, v) => a + v, 0) / w.length;
      const std = Math.sqrt(w.reduce((a, v) => a + (v - mean) ** 2, 0) / w.length);
      expect(Math.abs(mean)).toBeLessThan(0.002);
      expect(std).toBeGreaterThan(0.019);
      expect(std).toBeLessThan(0.021);
      expect(m.auxFiles).toContain('tokenizer.json');
    } finally {
      await m.close();
    }
  });

  it('GQA, tied embeddings, qwen2 biases, mistral config', async () => {
    const dir = fresh();
    await generateTinyLlama(dir, { modelType: 'qwen2', numHeads: 8, numKvHeads: 2, tieEmbeddings: true });
    const m = await openModelFolder(dir);
    expect(m.config).toMatchObject({ architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', use_sliding_window: false, tie_word_embeddings: true });
    expect(m.info('model.layers.0.self_attn.k_proj.weight').shape).toEqual([16, 64]);
    expect(m.info('model.layers.0.self_attn.q_proj.bias').shape).toEqual([64]);
    expect(m.has('lm_head.weight')).toBe(false);
    checkLlamaShapes(m);
    await m.close();
    const d2 = fresh();
    await generateTinyLlama(d2, { modelType: 'mistral', dtype: 'F16' });
    const m2 = await openModelFolder(d2);
    expect(m2.config).toMatchObject({ architectures: ['MistralForCausalLM'], torch_dtype: 'float16', sliding_window: null });
    expect(m2.info('lm_head.weight').dtype).toBe('F16');
    checkLlamaShapes(m2);
    await m2.close();
  });

  it('shards like transformers, with the same tensor values as the single file; half dtypes round the same f32 stream', async () => {
    const [one, many] = [fresh(), fresh()];
    await generateTinyLlama(one, { seed: 3 });
    const g = await generateTinyLlama(many, { seed: 3, maxShardBytes: 40_000 });
    expect(g.weights.files.length).toBeGreaterThan(2);
    expect(await readdir(many)).toContain('model.safetensors.index.json');
    const [a, b] = [await openModelFolder(one), await openModelFolder(many)];
    for (const name of a.tensorNames) expect(Buffer.from((await b.read(name)).data).equals((await a.read(name)).data), name).toBe(true);
    await Promise.all([a.close(), b.close()]);
    const shape = [33, 7];
    const f32 = asF32(tinyLlamaTensor('x.weight', shape, 'F32', 5));
    const bf = asU16(tinyLlamaTensor('x.weight', shape, 'BF16', 5));
    const h = asU16(tinyLlamaTensor('x.weight', shape, 'F16', 5));
    // The backend conversions are checked against torch/numpy fixtures in backend-reference.test.ts.
    expect(Buffer.from(bf.buffer, bf.byteOffset, bf.byteLength).equals(Buffer.from(referenceBackend.f32ToBf16(f32).buffer))).toBe(true);
    expect(Buffer.from(h.buffer, h.byteOffset, h.byteLength).equals(Buffer.from(referenceBackend.f32ToF16(f32).buffer))).toBe(true);
  });

  it('rejects options that cannot make a model', async () => {
    await expect(generateTinyLlama(fresh(), { vocabSize: 256 })).rejects.toMatchObject({ code: 'E_INPUT', message: expect.stringMatching(/at least 259/) });
    await expect(generateTinyLlama(fresh(), { numHeads: 3 })).rejects.toMatchObject({ code: 'E_INPUT' });
    await expect(generateTinyLlama(fresh(), { numKvHeads: 3 })).rejects.toMatchObject({ code: 'E_INPUT' });
    await expect(generateTinyLlama(fresh(), { preset: 'huge' as 'tiny' })).rejects.toMatchObject({ code: 'E_INPUT', message: expect.stringMatching(/unknown preset/) });
  });
});

describe('tokenizer.json', () => {
  it('is a byte-level BPE whose ids fit the embedding', async () => {
    const dir = fresh();
    await generateTinyLlama(dir);
    const tok = JSON.parse(await readFile(join(dir, 'tokenizer.json'), 'utf8'));
    const vocab: Record<string, number> = tok.model.vocab;
    const ids = Object.values(vocab);
    expect(tok.model.type).toBe('BPE');
    expect(tok.pre_tokenizer.type).toBe('ByteLevel');
    expect(ids.length).toBe(TINY_LLAMA_PRESETS.tiny.vocabSize); // 3 specials + 256 bytes + 61 merges
    expect(new Set(ids).size).toBe(ids.length);
    expect(Math.max(...ids)).toBe(TINY_LLAMA_PRESETS.tiny.vocabSize - 1);
    expect(tok.added_tokens.map((t: { id: number; content: string }) => [t.id, t.content])).toEqual([[0, '<unk>'], [1, '<s>'], [2, '</s>']]);
    expect(vocab['Ġ']).toBe(3 + 32); // space byte
    expect(vocab['A']).toBe(3 + 65);
    expect(ids.filter((i) => i >= 3 && i < MIN_TOKENIZER_VOCAB).length).toBe(256);
    for (const merge of tok.model.merges as string[]) {
      const [l, r] = merge.split(' ');
      expect(vocab[l], merge).toBeDefined();
      expect(vocab[r], merge).toBeDefined();
      expect(vocab[l + r], merge).toBeDefined();
    }
    const cfg = JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8'));
    expect(cfg).toMatchObject({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', tokenizer_class: 'PreTrainedTokenizerFast' });
  });
});

describe('sizeForBytes', () => {
  it.each([1e5, 1e7, 3e8, 2 ** 30, 5e9])('%d bytes: at least the target, with the fewest layers', (target) => {
    for (const dtype of ['F32', 'BF16'] as const) {
      const o = sizeForBytes(target, { dtype });
      const bytes = tinyLlamaBytes(o);
      expect(bytes).toBeGreaterThanOrEqual(target);
      if (o.numLayers! > 2) expect(tinyLlamaBytes({ ...o, numLayers: o.numLayers! - 1 })).toBeLessThan(target);
    }
  });

  it('a 1 GB BF16 bench model is a plausible Llama', () => {
    const o = sizeForBytes(2 ** 30, { dtype: 'BF16' });
    expect(o).toMatchObject({ hiddenSize: 2048, numHeads: 32, numKvHeads: 8, vocabSize: 32000 });
    expect(o.numLayers).toBeLessThanOrEqual(16);
  });
});

describe('gen-model CLI', () => {
  it('writes a folder, refuses to overwrite without --force, reports bad flags with exit 2', async () => {
    const out = fresh();
    const quiet = { write: process.stdout.write, ewrite: process.stderr.write };
    const logs: string[] = [];
    process.stdout.write = ((s: string) => (logs.push(s), true)) as typeof process.stdout.write;
    process.stderr.write = ((s: string) => (logs.push(s), true)) as typeof process.stderr.write;
    try {
      expect(await genModelMain(['gen-model', out, '--dtype', 'bf16', '--seed', '4', '--model-type', 'mistral', '--json'])).toBe(0);
      expect(JSON.parse(logs[0])).toMatchObject({ modelType: 'mistral', dtype: 'BF16', files: ['model.safetensors'] });
      expect(await genModelMain([out])).toBe(2);
      expect(logs.at(-1)).toMatch(/exists; pass --force/);
      expect(await genModelMain([out, '--force', '--shard-bytes', '50KB'])).toBe(0);
      expect(await readdir(out)).toContain('model.safetensors.index.json');
      expect(await genModelMain([fresh(), '--bogus'])).toBe(2);
      expect(await genModelMain([fresh(), '--bytes', 'lots'])).toBe(2);
      expect(await genModelMain([fresh(), '--seed', '1.5'])).toBe(2);
    } finally {
      process.stdout.write = quiet.write;
      process.stderr.write = quiet.ewrite;
    }
  });
});

describe('RNG', () => {
  it('xoshiro128** matches the reference sequence for state {1,2,3,4}', () => {
    const g = Xoshiro128.fromState([1, 2, 3, 4]);
    expect([g.nextU32(), g.nextU32(), g.nextU32()]).toEqual([11520, 0, 5927040]);
  });
});
