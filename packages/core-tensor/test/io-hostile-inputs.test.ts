/**
 * Hostile inputs at the io layer: non-regular files are refused before a read (a FIFO must not block),
 * Git LFS pointers are named, reserved keys are refused in JSON, and config.json is checked against the
 * tensors lazily (a config claiming 10^9 layers costs as much as the tensors present).
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Dtype } from '../src/dtype.js';
import { PeftError } from '../src/errors.js';
import {
  checkConfigTensors, llamaShapes, openRegularFile, parseJsonObject, readJsonObject, readTextFile, SafetensorsFile,
  type ShapeSource,
} from '../src/io/index.js';
import { parseSetPairs, resolveOptions } from '../src/plugin/options.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'peft-hostile-io-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function failure(p: Promise<unknown> | (() => unknown)): Promise<PeftError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    if (e instanceof PeftError) return e;
    throw e;
  }
  throw new Error('expected a PeftError');
}

describe('only regular files are read', () => {
  it('a FIFO is refused at once (open does not wait for a writer)', async () => {
    const fifo = join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    const t0 = performance.now();
    for (const read of [() => openRegularFile(fifo), () => readTextFile(fifo), () => SafetensorsFile.open(fifo), () => readJsonObject(fifo)]) {
      const e = await failure(read());
      expect(e.code).toBe('E_FORMAT');
      expect(e.exitCode).toBe(2);
      expect(e.message).toBe(`${fifo}: is a FIFO (named pipe), expected a regular file`);
    }
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it('a device and a folder are named as such; a missing file is E_NOT_FOUND', async () => {
    expect((await failure(readTextFile('/dev/zero'))).message).toBe('/dev/zero: is a device, expected a regular file');
    await mkdir(join(dir, 'sub'));
    expect((await failure(SafetensorsFile.open(join(dir, 'sub')))).message).toMatch(/sub: is a folder, expected a regular file$/);
    expect((await failure(readTextFile(join(dir, 'nope')))).code).toBe('E_NOT_FOUND');
  });

  it('a Git LFS pointer is named, not read as a header length', async () => {
    const p = join(dir, 'lfs.safetensors');
    await writeFile(p, 'version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2146\nsize 99\n');
    const e = await failure(SafetensorsFile.open(p));
    expect(e.message).toBe(`${p}: Git LFS pointer, not the file: run git lfs pull`);
    // A safetensors file whose header happens to start with "version " is still read by the usual rules.
    await writeFile(p, 'version x');
    expect((await failure(SafetensorsFile.open(p))).message).toMatch(/header length 2336927755350992246 is above/);
  });
});

describe('reserved keys', () => {
  it('are refused at any depth of a JSON file, in --set and in options', async () => {
    expect((await failure(() => parseJsonObject('{"__proto__": {"polluted": 1}}', 'c.json'))).message)
      .toBe('c.json: key "__proto__" is not allowed (a reserved name: __proto__, constructor, prototype)');
    expect((await failure(() => parseJsonObject('{"a": [{"b": {"constructor": 1}}]}', 'c.json'))).code).toBe('E_INPUT');
    expect(parseJsonObject('{"a": ["__proto__", "prototype"], "constructor_name": 1}', 'c.json')).toEqual({ a: ['__proto__', 'prototype'], constructor_name: 1 });
    expect((await failure(() => parseSetPairs(['r=4', '__proto__=1']))).message).toMatch(/^--set: key "__proto__" is not allowed/);
    const given = JSON.parse('{"prototype": 1}') as Record<string, unknown>;
    expect((await failure(() => resolveOptions('lora', { r: { type: 'integer', description: 'rank' } }, given))).message).toMatch(/^lora: key "prototype" is not allowed/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

/** A ShapeSource holding exactly `shapes` (float tensors). */
function source(shapes: Map<string, number[]>, dtype: Dtype = 'F32'): ShapeSource {
  return { tensorNames: [...shapes.keys()], info: (n) => ({ dtype, shape: shapes.get(n)!, file: 'model.safetensors' }) };
}

describe('config.json against the tensors', () => {
  const config = {
    model_type: 'llama', hidden_size: 64, intermediate_size: 128, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 320,
  };
  const tensors = llamaShapes(config);

  it('a config claiming 10^9 layers for 4 stops at the first missing key, at once', async () => {
    const t0 = performance.now();
    const e = await failure(() => checkConfigTensors({ ...config, num_hidden_layers: 1e9 }, source(tensors), 'm/config.json'));
    expect(e.message).toBe('m/config.json: tensor model.layers.4.input_layernorm.weight is missing (num_hidden_layers is 1000000000; the weights hold layers 0..3)');
    expect(e.exitCode).toBe(2);
    expect(performance.now() - t0).toBeLessThan(100);
  });

  it('every missing tensor is named (not only layers); extra layers are refused; other extras pass', async () => {
    const noHead = new Map(tensors);
    noHead.delete('lm_head.weight');
    expect((await failure(() => checkConfigTensors(config, source(noHead)))).message).toBe('config.json: tensor lm_head.weight is missing');
    expect(() => checkConfigTensors({ ...config, tie_word_embeddings: true }, source(noHead))).not.toThrow();
    expect((await failure(() => checkConfigTensors({ ...config, num_hidden_layers: 3 }, source(tensors)))).message)
      .toBe('config.json: tensor model.layers.3.input_layernorm.weight is beyond num_hidden_layers (3)');
    expect(() => checkConfigTensors(config, source(new Map([...tensors, ['model.rotary.inv_freq', [16]]])))).not.toThrow();
  });

  it('each dimension is checked through the shapes it implies', async () => {
    for (const [key, value, tensor] of [
      ['hidden_size', 1e8, 'model.embed_tokens.weight'], ['vocab_size', 1e9, 'model.embed_tokens.weight'],
      ['intermediate_size', 1e9, 'model.layers.0.mlp.gate_proj.weight'], ['num_key_value_heads', 4, 'model.layers.0.self_attn.k_proj.weight'],
      ['head_dim', 1e6, 'model.layers.0.self_attn.q_proj.weight'],
    ] as const) {
      const e = await failure(() => checkConfigTensors({ ...config, [key]: value }, source(tensors)));
      expect(e.code, key).toBe('E_SHAPE');
      expect(e.message, key).toMatch(new RegExp(`^model\\.safetensors: tensor ${tensor.replace(/\./g, '\\.')} has shape`));
    }
  });

  it('a quantized folder\'s non-float weights are its quantizer\'s layout (a plugin\'s included)', () => {
    const packed = new Map([...tensors].map(([n, s]) => [n, n.endsWith('proj.weight') ? [s[0], s[1] / 2] : s]));
    const src: ShapeSource = { tensorNames: [...packed.keys()], info: (n) => ({ dtype: n.endsWith('proj.weight') ? 'U8' : 'F32', shape: packed.get(n)!, file: 'm' }) };
    expect(() => checkConfigTensors({ ...config, quantization_config: { quant_method: 'int4-sym' } }, src)).not.toThrow();
    expect(() => checkConfigTensors(config, src)).toThrow(/has shape/);
  });

  it('other architectures and partial configs: the layer count against the layers present', async () => {
    const gpt = new Map([['transformer.wte.weight', [10, 4]], ['transformer.h.0.attn.c_attn.weight', [4, 12]], ['transformer.h.1.attn.c_attn.weight', [4, 12]]]);
    expect(() => checkConfigTensors({ model_type: 'gpt2', num_hidden_layers: 2 }, source(gpt))).not.toThrow();
    expect(() => checkConfigTensors({ model_type: 'gpt2', num_hidden_layers: 1 }, source(gpt))).not.toThrow(); // e.g. a multi-token-prediction layer N
    // a vision tower's blocks are not decoder layers: 2 decoder layers + 6 vision blocks is num_hidden_layers 2
    const vl = new Map([['model.layers.0.mlp.w', [2]], ['model.layers.1.mlp.w', [2]], ...Array.from({ length: 6 }, (_, i) => [`visual.blocks.${i}.w`, [2]] as [string, number[]])]);
    expect(() => checkConfigTensors({ model_type: 'qwen2_vl', num_hidden_layers: 2 }, source(vl))).not.toThrow();
    expect(() => checkConfigTensors({ model_type: 'qwen2_vl', num_hidden_layers: 6 }, source(vl))).toThrow(/no tensor of layer 2 is present/);
    expect((await failure(() => checkConfigTensors({ model_type: 'gpt2', num_hidden_layers: 1e7 }, source(gpt)))).message)
      .toBe('config.json: num_hidden_layers is 10000000 but no tensor of layer 2 is present (the weights hold layers 0..1)');
    expect((await failure(() => checkConfigTensors({ model_type: 'llama', num_hidden_layers: 1e6 }, source(tensors)))).message)
      .toMatch(/no tensor of layer 4 is present/);
    expect((await failure(() => checkConfigTensors({ model_type: 'gpt2', num_hidden_layers: '2' }, source(gpt)))).code).toBe('E_FORMAT');
  });
});
