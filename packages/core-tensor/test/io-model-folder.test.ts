import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DTYPE_SIZES, type Dtype, type NamedRawTensor } from '../src/dtype.js';
import { PeftError } from '../src/errors.js';
import {
  checkLlamaShapes, copyAuxFiles, SafetensorsFile, isModelFolder, llamaShapes, openModelFolder, pyJsonDumps, readHfConfig, ShardedWriter,
  withAtomicOutput, writeSafetensors,
} from '../src/io/index.js';
import { generateTinyLlama } from '../src/fixtures/index.js';

let root: string;
let n = 0;
const fresh = async () => {
  const d = join(root, `case${n++}`);
  await mkdir(d, { recursive: true });
  return d;
};
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'peft-io-mf-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function t(name: string, bytes: number, dtype: Dtype = 'U8', seed = 1): NamedRawTensor {
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (i * 7 + seed) & 0xff;
  return { name, dtype, shape: [bytes / DTYPE_SIZES[dtype]], data };
}

const writeConfig = (dir: string, c: object = { model_type: 'llama' }) => writeFile(join(dir, 'config.json'), JSON.stringify(c));

async function expectCode(p: Promise<unknown>, code: string, msg?: RegExp): Promise<PeftError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(PeftError);
    expect((e as PeftError).code).toBe(code);
    if (msg) expect((e as PeftError).message).toMatch(msg);
    return e as PeftError;
  }
  throw new Error(`expected ${code}`);
}

describe('sharded writer + model folder', () => {
  it('splits like huggingface_hub, writes the transformers index, reads everything back', async () => {
    const dir = await fresh();
    // max 100 bytes: [a40 b40] then big150 gets a shard of its own, numbered when written,
    // ahead of [c60 d30 e8] (98 bytes) and [f70].
    const tensors = [t('a', 40), t('b', 40), t('c', 60), t('big', 150), t('d', 30), t('e', 8, 'F32'), t('f', 70)];
    const w = new ShardedWriter(dir, { maxShardBytes: 100 });
    for (const x of tensors) await w.add(x);
    const r = await w.finish();
    expect(r.files).toEqual([1, 2, 3, 4].map((i) => `model-0000${i}-of-00004.safetensors`));
    expect(r.weightMap).toEqual({
      a: r.files[0], b: r.files[0], big: r.files[1], c: r.files[2], d: r.files[2], e: r.files[2], f: r.files[3],
    });
    expect(r.totalSize).toBe(398);
    const indexText = await readFile(join(dir, 'model.safetensors.index.json'), 'utf8');
    expect(indexText).toBe(
      '{\n  "metadata": {\n    "total_size": 398\n  },\n  "weight_map": {\n' +
        '    "a": "model-00001-of-00004.safetensors",\n    "b": "model-00001-of-00004.safetensors",\n' +
        '    "big": "model-00002-of-00004.safetensors",\n    "c": "model-00003-of-00004.safetensors",\n' +
        '    "d": "model-00003-of-00004.safetensors",\n    "e": "model-00003-of-00004.safetensors",\n' +
        '    "f": "model-00004-of-00004.safetensors"\n  }\n}\n',
    );
    expect((await readdir(dir)).filter((f) => f.startsWith('.'))).toEqual([]); // no temp shards left
    await writeConfig(dir);
    await writeFile(join(dir, 'tokenizer.json'), '{}');
    await writeFile(join(dir, 'pytorch_model.bin'), 'pickle: never touched');
    expect(await isModelFolder(dir)).toBe(true);
    const m = await openModelFolder(dir);
    try {
      // Shard order, then each shard's data order (F32 before U8).
      expect(m.tensorNames).toEqual(['a', 'b', 'big', 'e', 'c', 'd', 'f']);
      expect(m.totalBytes).toBe(398);
      expect(m.auxFiles).toEqual(['tokenizer.json']);
      expect(m.info('e')).toEqual({ dtype: 'F32', shape: [2], byteLength: 8, file: 'model-00003-of-00004.safetensors' });
      for (const x of tensors) expect((await m.read(x.name)).data).toEqual(x.data);
      await expectCode(m.read('zzz'), 'E_NOT_FOUND');
    } finally {
      await m.close();
    }
  });

  it('one shard is model.safetensors without an index; metadata goes into every shard', async () => {
    const dir = await fresh();
    const w = await ShardedWriter.create(dir);
    await w.add(t('x', 16));
    const r = await w.finish();
    expect(r.files).toEqual(['model.safetensors']);
    expect(r.indexFile).toBeUndefined();
    expect(await readdir(dir)).toEqual(['model.safetensors']);
    const f = await SafetensorsFile.open(join(dir, 'model.safetensors'));
    expect(f.metadata).toEqual({ format: 'pt' }); // transformers rejects shards without a known format
    await f.close();
    await expectCode(w.add(t('y', 1)), 'E_INPUT');
  });

  it('abort removes every shard', async () => {
    const dir = await fresh();
    const w = new ShardedWriter(dir, { maxShardBytes: 10 });
    for (const name of ['a', 'b', 'c']) await w.add(t(name, 8));
    await w.abort();
    expect(await readdir(dir)).toEqual([]);
  });

  it('prefers model.safetensors over an index; without either uses every *.safetensors', async () => {
    const dir = await fresh();
    await writeConfig(dir);
    await writeSafetensors(join(dir, 'model.safetensors'), [t('w', 4)]);
    await writeFile(join(dir, 'model.safetensors.index.json'), '{"weight_map":{"q":"gone.safetensors"}}');
    const m = await openModelFolder(dir);
    expect(m.tensorNames).toEqual(['w']);
    await m.close();

    const dir2 = await fresh();
    await writeConfig(dir2);
    await writeSafetensors(join(dir2, 'b.safetensors'), [t('y', 4)]);
    await writeSafetensors(join(dir2, 'a.safetensors'), [t('x', 4)]);
    const m2 = await openModelFolder(dir2);
    expect(m2.tensorNames).toEqual(['x', 'y']);
    expect(m2.weightFiles).toEqual(['a.safetensors', 'b.safetensors']);
    await m2.close();
    await writeSafetensors(join(dir2, 'c.safetensors'), [t('x', 4)]);
    await expectCode(openModelFolder(dir2), 'E_FORMAT', /tensor x is in both a.safetensors and c.safetensors/);
  });
});

describe('broken folders', () => {
  async function sharded(): Promise<string> {
    const dir = await fresh();
    await writeConfig(dir);
    const w = new ShardedWriter(dir, { maxShardBytes: 8 });
    for (const name of ['a', 'b', 'c']) await w.add(t(name, 8));
    await w.finish();
    return dir;
  }

  it('index pointing to a missing shard -> E_FORMAT naming the index', async () => {
    const dir = await sharded();
    await rm(join(dir, 'model-00002-of-00003.safetensors'));
    const e = await expectCode(openModelFolder(dir), 'E_FORMAT', /shard model-00002-of-00003.safetensors \(holding b\) is missing/);
    expect(e.message.startsWith(join(dir, 'model.safetensors.index.json'))).toBe(true);
  });

  it('index mapping a tensor to a shard that lacks it -> E_FORMAT', async () => {
    const dir = await sharded();
    const idx = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8'));
    idx.weight_map.a = 'model-00003-of-00003.safetensors';
    await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify(idx));
    await expectCode(openModelFolder(dir), 'E_FORMAT', /maps a to model-00003-of-00003.safetensors, which does not hold it/);
  });

  it('bad index JSON, bad weight_map, path escapes -> E_FORMAT', async () => {
    const dir = await sharded();
    const idxPath = join(dir, 'model.safetensors.index.json');
    for (const [text, msg] of [
      ['{', /not valid JSON/], ['{"weight_map":[]}', /weight_map is missing or not an object/],
      ['{"weight_map":{"a":"../x.safetensors"}}', /not a .safetensors file name/], ['{"weight_map":{"a":7}}', /not a .safetensors file name/],
    ] as const) {
      await writeFile(idxPath, text);
      await expectCode(openModelFolder(dir), 'E_FORMAT', msg);
    }
  });

  it('a corrupt shard fails at open with the shard named', async () => {
    const dir = await sharded();
    await writeFile(join(dir, 'model-00003-of-00003.safetensors'), new Uint8Array(4));
    await expectCode(openModelFolder(dir), 'E_FORMAT', /model-00003-of-00003\.safetensors: not a valid safetensors file/);
  });

  it('not a model folder: no config.json, or no weights, or a bad config', async () => {
    const empty = await fresh();
    await expectCode(openModelFolder(empty), 'E_FORMAT', /not a model folder \(no config.json \/ no \*.safetensors\)/);
    expect(await isModelFolder(empty)).toBe(false);
    await writeConfig(empty);
    await expectCode(openModelFolder(empty), 'E_FORMAT', /not a model folder/);
    await writeSafetensors(join(empty, 'model.safetensors'), [t('w', 4)]);
    await writeFile(join(empty, 'config.json'), '[1]');
    await expectCode(openModelFolder(empty), 'E_FORMAT', /config\.json: not a JSON object/);
    await writeFile(join(empty, 'config.json'), '{oops');
    await expectCode(openModelFolder(empty), 'E_FORMAT', /config\.json: not valid JSON/);
    await expectCode(openModelFolder(join(root, 'nowhere')), 'E_NOT_FOUND');
    await expectCode(readHfConfig(await fresh()), 'E_NOT_FOUND', /config\.json: no such file/);
  });
});

describe('config.json shapes', () => {
  const base = {
    model_type: 'llama', hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4,
    num_key_value_heads: 2, vocab_size: 320,
  };

  it('lists every Llama tensor with [out, in] shapes; GQA, tying, qwen2 biases, head_dim', () => {
    const s = llamaShapes(base);
    expect(s.size).toBe(1 + 2 * 9 + 2);
    expect(s.get('model.layers.1.self_attn.k_proj.weight')).toEqual([32, 64]);
    expect(s.get('model.layers.0.self_attn.o_proj.weight')).toEqual([64, 64]);
    expect(s.get('model.layers.0.mlp.down_proj.weight')).toEqual([64, 128]);
    expect(s.get('lm_head.weight')).toEqual([320, 64]);
    expect(llamaShapes({ ...base, tie_word_embeddings: true }).has('lm_head.weight')).toBe(false);
    const q = llamaShapes({ ...base, model_type: 'qwen2' });
    expect(q.get('model.layers.0.self_attn.v_proj.bias')).toEqual([32]);
    expect(q.has('model.layers.0.self_attn.o_proj.bias')).toBe(false);
    const m = llamaShapes({ ...base, model_type: 'mistral', head_dim: 32, num_key_value_heads: undefined });
    expect(m.get('model.layers.0.self_attn.q_proj.weight')).toEqual([128, 64]);
    expect(m.get('model.layers.0.self_attn.k_proj.weight')).toEqual([128, 64]);
    expect(m.get('model.layers.0.self_attn.o_proj.weight')).toEqual([64, 128]);
    const lb = llamaShapes({ ...base, attention_bias: true, mlp_bias: true });
    expect(lb.get('model.layers.0.self_attn.o_proj.bias')).toEqual([64]);
    expect(lb.get('model.layers.0.mlp.gate_proj.bias')).toEqual([128]);
  });

  it('rejects configs that cannot describe a Llama', () => {
    expect(() => llamaShapes({ ...base, model_type: 'gpt2' })).toThrow(/not a Llama-family model/);
    expect(() => llamaShapes({ ...base, hidden_size: '64' })).toThrow(/hidden_size must be a positive integer/);
    expect(() => llamaShapes({ ...base, num_key_value_heads: 3 })).toThrow(/not a multiple of num_key_value_heads/);
    expect(() => llamaShapes({ ...base, num_attention_heads: 5, num_key_value_heads: 5 })).toThrow(/not a multiple of num_attention_heads/);
    expect(() => llamaShapes({ ...base, vocab_size: 0 })).toThrow(expect.objectContaining({ code: 'E_FORMAT' }));
  });

  it('detects a tensor whose shape disagrees with config.json; tolerates extras and bitsandbytes weights', async () => {
    const dir = await fresh();
    await generateTinyLlama(dir, { seed: 1 });
    let m = await openModelFolder(dir);
    checkLlamaShapes(m); // the generated model is consistent
    await m.close();
    const config = await readHfConfig(dir);
    const names = [...llamaShapes(config)];
    const tensors: NamedRawTensor[] = names.map(([name, shape]) => {
      const s = name === 'model.layers.0.mlp.up_proj.weight' ? [128, 63] : shape;
      return { name, dtype: 'U8', shape: s, data: new Uint8Array(s.reduce((a, b) => a * b, 1)) };
    });
    await rm(join(dir, 'model.safetensors'));
    await writeSafetensors(join(dir, 'model.safetensors'), [...tensors, { name: 'extra.thing', dtype: 'U8', shape: [3], data: new Uint8Array(3) }]);
    // openModelFolder runs the check itself, so no command gets a folder whose config disagrees with its tensors.
    const e = await openModelFolder(dir).then(() => undefined, (err: unknown) => err as PeftError);
    expect(e?.code).toBe('E_SHAPE');
    expect(e?.message).toBe('model.safetensors: tensor model.layers.0.mlp.up_proj.weight has shape [128, 63] but config.json implies [128, 64]');
    // The same U8 tensor with bitsandbytes quant-state siblings is a packed 4-bit weight: exempt.
    await rm(join(dir, 'model.safetensors'));
    await writeSafetensors(join(dir, 'model.safetensors'), [
      ...tensors.map((x) => (x.name === 'model.layers.0.mlp.up_proj.weight' ? { ...x, shape: [4032, 2], data: new Uint8Array(8064) } : x)),
      { name: 'model.layers.0.mlp.up_proj.weight.absmax', dtype: 'F32', shape: [1], data: new Uint8Array(4) },
    ]);
    m = await openModelFolder(dir);
    expect(() => checkLlamaShapes(m)).not.toThrow();
    await m.close();
  });
});

describe('atomic output', () => {
  const leftovers = async (parent: string) => (await readdir(parent)).filter((f) => f.includes('peft-'));

  it('moves the finished folder into place and returns fn’s result', async () => {
    const parent = await fresh();
    const out = join(parent, 'out');
    const r = await withAtomicOutput(out, { command: 'test' }, async (tmp) => {
      expect(tmp.startsWith(join(parent, '.out.peft-tmp-'))).toBe(true);
      await writeFile(join(tmp, 'a.txt'), 'new');
      return 42;
    });
    expect(r).toBe(42);
    expect(await readFile(join(out, 'a.txt'), 'utf8')).toBe('new');
    expect(await leftovers(parent)).toEqual([]);
  });

  it('E_EXISTS before any work without --force; --force replaces the old folder', async () => {
    const parent = await fresh();
    const out = join(parent, 'out');
    await withAtomicOutput(out, { command: 'test' }, (tmp) => writeFile(join(tmp, 'old.txt'), 'old'));
    let ran = false;
    const e = await expectCode(withAtomicOutput(out, { command: 'test' }, async () => void (ran = true)), 'E_EXISTS');
    expect(e.message).toBe(`${out} exists; pass --force to replace it`);
    expect(ran).toBe(false);
    await withAtomicOutput(out, { command: 'test', force: true }, async (tmp) => writeFile(join(tmp, 'new.txt'), 'new'));
    expect((await readdir(out)).sort()).toEqual(['.peft-output.json', 'new.txt']);
    expect(await leftovers(parent)).toEqual([]);
  });

  it('a failing run leaves nothing, and keeps an old output intact', async () => {
    const parent = await fresh();
    const out = join(parent, 'out');
    await expect(withAtomicOutput(out, { command: 'test' }, async (tmp) => {
      await writeFile(join(tmp, 'partial'), 'x');
      throw new Error('boom');
    })).rejects.toThrow('boom');
    expect(existsSync(out)).toBe(false);
    expect(await readdir(parent)).toEqual([]);
    await withAtomicOutput(out, { command: 'test' }, (tmp) => writeFile(join(tmp, 'old.txt'), 'old'));
    await expect(withAtomicOutput(out, { command: 'test', force: true }, async () => {
      throw new PeftError('E_RUNTIME', 'fail');
    })).rejects.toMatchObject({ code: 'E_RUNTIME' });
    expect((await readdir(out)).sort()).toEqual(['.peft-output.json', 'old.txt']);
    expect(await leftovers(parent)).toEqual([]);
  });

  it('SIGINT that another listener handles leaves the temp folder to the run (the process goes on); ours are removed after', async () => {
    const parent = await fresh();
    const keepAlive = () => {}; // someone else handles SIGINT (as the trainer does): the process does not end
    process.on('SIGINT', keepAlive);
    try {
      const before = process.listenerCount('SIGINT');
      await withAtomicOutput(join(parent, 'out'), { command: 'test' }, async (tmp) => {
        expect(process.listenerCount('SIGINT')).toBe(before + 1); // ours: removes tmp if the signal ends the process
        process.emit('SIGINT', 'SIGINT');
        await writeFile(join(tmp, 'x'), 'x');
      });
      expect((await readdir(parent)).sort()).toEqual(['out']);
      expect(process.listenerCount('SIGINT')).toBe(before);
    } finally {
      process.off('SIGINT', keepAlive);
    }
  });

  it('unwritable parent -> E_IO before any work', async () => {
    const parent = await fresh();
    await writeFile(join(parent, 'file'), 'x');
    let ran = false;
    await expectCode(withAtomicOutput(join(parent, 'file', 'out'), { command: 'test' }, async () => void (ran = true)), 'E_IO', /parent folder/);
    expect(ran).toBe(false);
  });

  it.skipIf(process.getuid?.() === 0)('read-only parent -> E_IO (permissions; root ignores them)', async () => {
    const parent = await fresh();
    const ro = join(parent, 'ro');
    await mkdir(ro);
    await chmod(ro, 0o555);
    try {
      await expectCode(withAtomicOutput(join(ro, 'out'), { command: 'test' }, async () => 1), 'E_IO', /not writable/);
    } finally {
      await chmod(ro, 0o755);
    }
  });

  it('copyAuxFiles copies tokenizer and generation files only', async () => {
    const src = await fresh();
    await generateTinyLlama(src, {});
    const m = await openModelFolder(src);
    const out = join(await fresh(), 'o');
    await withAtomicOutput(out, { command: 'test' }, (tmp) => copyAuxFiles(m, tmp));
    await m.close();
    expect((await readdir(out)).sort()).toEqual(['.peft-output.json', 'generation_config.json', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json']);
    expect((await stat(join(out, 'tokenizer.json'))).size).toBe((await stat(join(src, 'tokenizer.json'))).size);
  });
});

describe('pyJsonDumps', () => {
  it('matches json.dumps(indent=2, sort_keys=True) + newline', () => {
    expect(pyJsonDumps({ b: [1, { y: null, x: 'é' }], a: {}, c: [], d: true })).toBe(
      '{\n  "a": {},\n  "b": [\n    1,\n    {\n      "x": "\\u00e9",\n      "y": null\n    }\n  ],\n  "c": [],\n  "d": true\n}\n',
    );
  });
});
