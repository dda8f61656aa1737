/**
 * The Llama module tree beyond torch parity: the KV cache reproduces full forwards; base weights are
 * frozen (no gradient buffers, packed kinds stay packed); BF16 / int8 / NF4 folders written by the repo's
 * own fixture generator and `peft quantize` load packed and compute what their dequantized weights
 * compute; names follow Hugging Face; the VarBuilder names the key and file of a bad shape.
 */
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { noGrad } from '../src/ops/tape.js';
import { referenceBackend } from '../src/backend/reference.js';
import { generateTinyLlama } from '../src/fixtures/tiny-llama.js';
import { llamaShapes } from '../src/io/hf-config.js';
import { openModelFolder } from '../src/io/model-folder.js';
import { VarBuilder } from '../src/io/var-builder.js';
import { llamaConfig } from '../src/models/config.js';
import { Llama } from '../src/models/llama.js';
import { createRegistry, registerBuiltins, resolveOptions } from '../src/plugin/index.js';
import { quantizeModel } from '../src/tasks/quantize-model.js';
import { tensor } from '../src/tensor/create.js';
import { tidy } from '../src/tensor/scope.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { toF32 } from '../src/backend/index.js';
import { batchOf, KERNEL_SETS, kernelsOf, LLAMA_FIXTURES, readReference, relErr } from './llama-fixtures.js';

let work: string;
beforeAll(async () => {
  work = await fsp.mkdtemp(join(tmpdir(), 'peft-models-'));
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

/** Logits [B, T, V] of a full forward, as plain numbers. */
function logitsOf(model: Llama, ids: { data: Int32Array; shape: [number, number] }, opts = {}): number[] {
  return tidy(() => noGrad(() => model.logits(model.forward(ids, opts).hidden, opts).toArray()));
}

describe.each(KERNEL_SETS)('KV cache ($name kernels)', (set) => {
  it.skipIf(set.skip !== undefined)('prefill then one token at a time gives the full forward\'s logits', async () => {
    const kernels = kernelsOf(set);
    const model = await Llama.fromFolder(join(LLAMA_FIXTURES, 'mistral_gqa'));
    const ref = await readReference('mistral_gqa');
    const ids = batchOf(ref.get('input_ids')); // [2, 7]
    const [B, T] = ids.shape;
    const V = model.config.vocabSize;
    const full = logitsOf(model, ids, { kernels });
    const cache = model.newCache();
    const cols = (from: number, to: number) => ({ data: Int32Array.from({ length: B * (to - from) }, (_, i) =>
      ids.data[Math.floor(i / (to - from)) * T + from + (i % (to - from))]), shape: [B, to - from] as [number, number] });
    const steps: [number, number][] = [[0, 4], [4, 5], [5, 6], [6, 7]];
    for (const [from, to] of steps) {
      const got = tidy(() => noGrad(() => model.logits(model.forward(cols(from, to), { kernels, kvCache: cache }).hidden, { kernels }).toArray()));
      const want: number[] = [];
      for (let b = 0; b < B; b++) want.push(...full.slice((b * T + from) * V, (b * T + to) * V));
      expect(relErr(got, want), `positions ${from}..${to - 1}`).toBeLessThan(1e-5);
      expect(cache.length).toBe(to);
    }
    cache.dispose();
    model.dispose();
  });
});

describe('frozen base weights', () => {
  it('nothing loaded from a folder requires grad; forward records no graph', async () => {
    const model = await Llama.fromFolder(join(LLAMA_FIXTURES, 'qwen2'));
    expect(model.parameters({ trainable: true })).toEqual([]);
    const ref = await readReference('qwen2');
    const loss = model.loss(batchOf(ref.get('input_ids')), batchOf(ref.get('labels')));
    expect(loss.requiresGrad).toBe(false);
    expect(() => loss.backward()).toThrow(/does not require grad/);
    loss.dispose();
    model.dispose();
  });

  it('NF4 weights stay packed and get no gradient buffer; trainable norms do', async () => {
    const model = await Llama.fromFolder(join(LLAMA_FIXTURES, 'llama_nf4'));
    for (const [name, m] of model.namedModules()) if (/norm$/.test(name)) m.requiresGrad(true);
    const ref = await readReference('llama_nf4');
    const loss = model.loss(batchOf(ref.get('input_ids')), batchOf(ref.get('labels')));
    loss.backward();
    loss.dispose();
    for (const [name, p] of model.namedParameters()) {
      if (name.endsWith('norm.weight')) expect(p.grad, name).toBeDefined();
      else expect(p.grad, name).toBeUndefined();
      if (/_proj\.weight$/.test(name)) {
        expect(p.dtype, name).toBe('nf4');
        expect(p.frozen.kind === 'nf4' && p.frozen.packed.length).toBe(p.size / 2);
      }
    }
    expect(() => { model.model.layers.at(0).mlp.up_proj.parameter('weight')!.requiresGrad = true; }).toThrow(/frozen nf4/);
    model.dispose();
  });

  it('a KV cache refuses tensors that carry gradients', async () => {
    const model = await Llama.fromFolder(join(LLAMA_FIXTURES, 'llama'));
    model.requiresGrad(true);
    const cache = model.newCache();
    expect(() => model.forward(Int32Array.of(1, 2, 3), { kvCache: cache })).toThrow(/noGrad/);
    expect(cache.length).toBe(0);
    model.dispose();
  });
});

/** A model of the same config whose every weight is the f32 value the packed one dequantizes to. */
async function dequantizedTwin(dir: string): Promise<Llama> {
  const folder = await openModelFolder(dir);
  const registry = createRegistry();
  registerBuiltins(registry);
  const tensors = new Map<string, Tensor>();
  for (const [name, shape] of llamaShapes(folder.config)) {
    const module = name.slice(0, -'.weight'.length);
    const fourBit = folder.has(`${name}.quant_state.bitsandbytes__nf4`);
    const int8 = folder.has(`${module}.SCB`);
    let values: Float32Array;
    if (fourBit || int8) {
      const raw = new Map<string, Awaited<ReturnType<typeof folder.read>>>();
      for (const n of folder.tensorNames.filter((n) => n.startsWith(module + '.'))) raw.set(n, await folder.read(n));
      values = registry.get('quantizer', fourBit ? 'nf4' : 'int8').dequantize(module, (n) => raw.get(n), { backend: referenceBackend }).data;
    } else {
      values = toF32(referenceBackend, await folder.read(name));
    }
    tensors.set(name, tensor(values, shape));
  }
  const cfg = llamaConfig(folder.config);
  await folder.close();
  return Llama.load(VarBuilder.fromTensors(tensors), cfg);
}

describe('folders written by the repo: bf16, int8 and nf4 bases', () => {
  let bf16: string;
  beforeAll(async () => {
    bf16 = join(work, 'bf16');
    await generateTinyLlama(bf16, { dtype: 'BF16', seed: 3, numLayers: 1 });
  });
  const ids = { data: Int32Array.of(1, 40, 41, 42, 300, 7, 1, 9, 9, 9, 12, 250), shape: [2, 6] as [number, number] };

  it('BF16 Linear weights stay bf16 bits and compute what their f32 widening computes', async () => {
    const packed = await Llama.fromFolder(bf16);
    const wide = await Llama.fromFolder(bf16, { widenBf16: true });
    expect(packed.model.layers.at(0).self_attn.o_proj.parameter('weight')!.dtype).toBe('bf16');
    expect(packed.lm_head!.parameter('weight')!.dtype).toBe('bf16');
    expect(packed.model.embed_tokens.parameter('weight')!.dtype).toBe('f32');
    expect(wide.model.layers.at(0).self_attn.o_proj.parameter('weight')!.dtype).toBe('f32');
    expect(relErr(logitsOf(packed, ids), logitsOf(wide, ids))).toBeLessThan(1e-6);
    packed.dispose();
    wide.dispose();
  });

  it.each(['int8', 'nf4'] as const)('%s from peft quantize loads packed and equals its dequantized twin', async (type) => {
    const out = join(work, type);
    const registry = createRegistry();
    registerBuiltins(registry);
    const quantizer = registry.get('quantizer', type);
    await quantizeModel({ modelDir: bf16, outDir: out, quantizer, options: resolveOptions(type, quantizer.options, {}), backend: referenceBackend });
    const model = await Llama.fromFolder(out);
    expect(model.model.layers.at(0).mlp.down_proj.parameter('weight')!.dtype).toBe(type);
    const twin = await dequantizedTwin(out);
    expect(relErr(logitsOf(model, ids), logitsOf(twin, ids))).toBeLessThan(1e-6);
    model.dispose();
    twin.dispose();
  });
});

describe('names, shapes and sources', () => {
  it('modules and parameters carry Hugging Face names (tied: no lm_head, nothing listed twice)', async () => {
    const model = await Llama.fromFolder(join(LLAMA_FIXTURES, 'llama_tied'));
    const modules = model.namedModules().map(([n]) => n);
    expect(modules).toEqual(expect.arrayContaining([
      'model.embed_tokens', 'model.layers.1.self_attn.q_proj', 'model.layers.0.mlp.down_proj',
      'model.layers.0.input_layernorm', 'model.layers.1.post_attention_layernorm', 'model.norm',
    ]));
    expect(modules).not.toContain('lm_head');
    const names = model.namedParameters().map(([n]) => n);
    const folder = await openModelFolder(join(LLAMA_FIXTURES, 'llama_tied'));
    expect(names.sort()).toEqual([...folder.tensorNames].sort());
    await folder.close();
    expect(model.lmHeadWeight).toBe(model.model.embed_tokens.parameter('weight'));
    model.dispose();
  });

  it('a tensor whose shape disagrees with config.json is named with its file', async () => {
    const dir = join(work, 'bad');
    await generateTinyLlama(dir, { numLayers: 1 });
    const config = JSON.parse(await fsp.readFile(join(dir, 'config.json'), 'utf8'));
    await fsp.writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, intermediate_size: 96 }));
    const err = await Llama.fromFolder(dir).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'E_SHAPE', exitCode: 2 });
    expect(String((err as Error).message)).toMatch(/model\.safetensors: tensor model\.layers\.0\.mlp\.gate_proj\.weight has shape \[128, 64\] but config\.json implies \[96, 64\]/);
  });

  it('an init VarBuilder builds a fresh trainable model with every checkpoint key', async () => {
    const config = JSON.parse(await fsp.readFile(join(LLAMA_FIXTURES, 'qwen2', 'config.json'), 'utf8'));
    const vars = new Map<string, Tensor>();
    const model = await Llama.load(VarBuilder.init(vars, 7), llamaConfig(config));
    expect([...vars.keys()].sort()).toEqual([...llamaShapes(config).keys()].sort());
    expect(model.parameters({ trainable: false })).toEqual([]);
    expect(vars.get('model.norm.weight')!.toArray().every((v) => v === 1)).toBe(true);
    expect(vars.get('model.layers.0.self_attn.q_proj.bias')!.toArray().every((v) => v === 0)).toBe(true);
    const loss = model.loss(Int32Array.of(1, 5, 9, 3), Int32Array.of(1, 5, 9, 3));
    // A random init knows nothing: its loss is near the uniform guess's ln(vocab) (ln 96 = 4.56).
    expect(Math.abs(loss.item() - Math.log(config.vocab_size))).toBeLessThan(0.25);
    loss.backward();
    expect(vars.get('model.embed_tokens.weight')!.grad!.toArray().some((v) => v !== 0)).toBe(true);
    loss.dispose();
    model.dispose();
  });

  it('rejects positions of the wrong length and ragged token rows', async () => {
    const model = await Llama.fromFolder(join(LLAMA_FIXTURES, 'llama'));
    expect(() => model.forward([[1, 2, 3], [4, 5, 6]], { positions: [0, 1] })).toThrow(/2 positions for a \[2, 3\] batch/);
    expect(() => model.forward([[1, 2, 3], [4, 5]])).toThrow(/differ in length/);
    model.dispose();
  });
});
