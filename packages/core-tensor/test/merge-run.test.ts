/**
 * The streaming merge driver on generated tiny Llamas (seeds 1, 2, 3), one of them quantized to
 * 4-bit with `quantizeModel`: per-tensor parameters reach the merger, quantized inputs arrive
 * dequantized, outputs are written in the asked dtype with config / tokenizer / recipe, seeds are
 * per tensor, and every mismatch or bad value is one E_INPUT line with nothing written.
 * The mergers here are small test entries: the methods' math is proven in plugin-merge's tests.
 */
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { referenceBackend, toF32 } from '../src/backend/index.js';
import { numel, type RawTensor } from '../src/dtype.js';
import { PeftError } from '../src/errors.js';
import { generateTinyLlama } from '../src/fixtures/tiny-llama.js';
import { openModelFolder } from '../src/io/model-folder.js';
import { createRegistry, mergeRng, registerBuiltins, resolveOptions, type MergerDef, type Registry } from '../src/plugin/index.js';
import { quantizeModel } from '../src/tasks/quantize-model.js';
import {
  checkMerge, evaluateSetting, layerPosition, parseMergeRecipe, planFromFlags, runMerge, tensorSeed,
} from '../src/tasks/merge/index.js';

let root: string;
let registry: Registry;
const dir = (name: string) => join(root, name);
const backend = referenceBackend;

/** Σ wᵢ xᵢ / Σ wᵢ (no base), in f64 then rounded: easy to recompute in the test. */
const wsum: MergerDef = {
  name: 'wsum', description: 'test: weighted mean', base: 'none', models: { min: 1 },
  options: {}, perModelOptions: { weight: { type: 'number', description: '' } }, required: ['weight'],
  mergeTensor: ({ models, perModel, out }) => {
    const w = perModel.map((o) => o.weight as number);
    const total = w.reduce((a, b) => a + b, 0);
    for (let j = 0; j < out.length; j++) out[j] = models.reduce((a, m, i) => a + w[i] * m[j], 0) / total;
    return out;
  },
};

/** base + t (model - base) plus u / 1000 with u from the tensor's seed: exactly one model besides the base. */
const toward: MergerDef = {
  name: 'toward', description: 'test: lerp with noise', base: 'required', models: { min: 1, max: 1 },
  options: { t: { type: 'number', description: '' } }, perModelOptions: {}, required: ['t'],
  checkParams: (p) => {
    if ((p.global.t as number) > 1) throw new PeftError('E_INPUT', `toward: tensor ${p.name}: t must be at most 1`);
  },
  mergeTensor: ({ base, models, global, out, seed }) => {
    const t = global.t as number;
    const rng = mergeRng(seed, 0);
    for (let j = 0; j < out.length; j++) out[j] = base![j] + t * (models[0][j] - base![j]) + rng.nextFloat() / 1000;
    return out;
  },
};

async function tensorsOf(path: string): Promise<Map<string, { raw: RawTensor; f32: Float32Array }>> {
  const f = await openModelFolder(path);
  const out = new Map<string, { raw: RawTensor; f32: Float32Array }>();
  for (const n of f.tensorNames) {
    const raw = await f.read(n);
    out.set(n, { raw, f32: ['F32', 'F16', 'BF16'].includes(raw.dtype) ? Float32Array.from(toF32(backend, raw)) : new Float32Array() });
  }
  await f.close();
  return out;
}

function refusal(e: unknown): PeftError {
  if (e instanceof PeftError) return e;
  throw e;
}

async function failure(p: Promise<unknown>): Promise<PeftError> {
  try {
    await p;
  } catch (e) {
    return refusal(e);
  }
  throw new Error('expected a PeftError');
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'peft-merge-'));
  for (const seed of [1, 2, 3]) await generateTinyLlama(dir(`m${seed}`), { preset: 'tiny', seed });
  registry = createRegistry();
  registerBuiltins(registry);
  registry.merger(wsum);
  registry.merger(toward);
  const q = registry.get('quantizer', 'nf4');
  await quantizeModel({ modelDir: dir('m2'), outDir: dir('m2-nf4'), quantizer: q, options: resolveOptions('nf4', q.options, {}), backend });
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('runMerge', () => {
  it('streams every tensor through the method with its per-tensor parameters', async () => {
    const recipe = `merge_method: wsum
models:
  - model: ${dir('m1')}
    parameters: {weight: [1, 3]}
  - model: ${dir('m2')}
  - model: ${dir('m3')}
    parameters:
      weight: [{filter: mlp, value: 0.5}]
parameters:
  weight: 2
`;
    const plan = parseMergeRecipe(recipe, 'r.yml');
    const report = await runMerge(plan, registry, { out: dir('out-wsum'), backend });
    const ins = await Promise.all(['m1', 'm2', 'm3'].map((m) => tensorsOf(dir(m))));
    const out = await tensorsOf(dir('out-wsum'));
    expect([...out.keys()]).toEqual([...ins[0].keys()]);
    for (const [name, { raw, f32 }] of out) {
      expect(raw.dtype).toBe('F32'); // as the inputs
      const t = layerPosition(name, 2);
      const w = [evaluateSetting([1, 3], name, t) as number, 2, name.includes('mlp') ? 0.5 : 2];
      const want = Float32Array.from(f32, (_, j) => (w[0] * ins[0].get(name)!.f32[j] + w[1] * ins[1].get(name)!.f32[j] + w[2] * ins[2].get(name)!.f32[j]) / (w[0] + w[1] + w[2]));
      expect(f32).toEqual(want);
    }
    expect(report).toMatchObject({ method: 'wsum', tensors: out.size, dtype: 'as input', seed: 0 });
    const inBytes = 3 * [...ins[0].values()].reduce((a, t) => a + t.raw.data.byteLength, 0);
    expect(report.bytesIn).toBe(inBytes);
    expect(report.mbPerSecond).toBeCloseTo(inBytes / 1e6 / report.seconds, 6);
    const files = (await readdir(dir('out-wsum'))).sort();
    expect(files).toEqual(['.peft-output.json', 'config.json', 'generation_config.json', 'mergekit_config.yml', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json']);
    expect(await readFile(dir('out-wsum/config.json'), 'utf8')).toBe(await readFile(dir('m1/config.json'), 'utf8'));
    expect(parseMergeRecipe(await readFile(dir('out-wsum/mergekit_config.yml'), 'utf8'), 'r.yml')).toEqual(plan);
  });

  it('dequantizes a 4-bit input on the fly and writes the asked dtype', async () => {
    const plan = planFromFlags({ method: 'toward', base: dir('m1'), models: [dir('m2-nf4')], params: { t: 0.5 } });
    const report = await runMerge(plan, registry, { out: dir('out-nf4'), dtype: 'bf16', seed: 7, backend });
    const base = await tensorsOf(dir('m1'));
    const orig = await tensorsOf(dir('m2'));
    const packed = await tensorsOf(dir('m2-nf4'));
    const nf4 = registry.get('quantizer', 'nf4');
    const out = await tensorsOf(dir('out-nf4'));
    expect([...out.keys()]).toEqual([...base.keys()]);
    let quantized = 0;
    for (const [name, { raw, f32 }] of out) {
      expect(raw.dtype).toBe('BF16');
      const b = base.get(name)!.f32;
      const state = `${name}.quant_state.bitsandbytes__nf4`;
      let m = packed.get(name)!.f32;
      if (packed.has(state)) {
        quantized++;
        m = nf4.dequantize(name.slice(0, -'.weight'.length), (k) => packed.get(k)?.raw, { backend }).data;
        const o = orig.get(name)!.f32;
        const err = m.reduce((a, v, j) => a + Math.abs(v - o[j]), 0) / m.length;
        expect(err).toBeGreaterThan(0); // really went through 4 bits
        expect(err).toBeLessThan(0.004); // N(0, 0.02) weights, NF4 blocks of 64
      }
      const rng = mergeRng(tensorSeed(7, name), 0);
      const exact = Float32Array.from(b, (v, j) => v + 0.5 * (m[j] - v) + rng.nextFloat() / 1000);
      expect(raw.data).toEqual(new Uint8Array(backend.f32ToBf16(exact).buffer));
    }
    expect(quantized).toBe(14); // 7 projections x 2 layers
    const config = JSON.parse(await readFile(dir('out-nf4/config.json'), 'utf8'));
    expect(config.torch_dtype).toBe('bfloat16');
    expect(config.quantization_config).toBeUndefined();
    expect(report.check.inputs.map((i) => [i.role, i.quantization])).toEqual([['base', undefined], ['model', 'nf4']]);
    expect(report.bytesIn).toBeLessThan(2 * [...base.values()].reduce((a, t) => a + t.raw.data.byteLength, 0));
  });

  it('reads an LLM.int8 folder through the int8 quantizer entry', async () => {
    const q = registry.get('quantizer', 'int8');
    await quantizeModel({ modelDir: dir('m3'), outDir: dir('m3-int8'), quantizer: q, options: resolveOptions('int8', q.options, {}), backend });
    const plan = planFromFlags({ method: 'wsum', models: [dir('m1'), dir('m3-int8')], params: { weight: 1 } });
    await runMerge(plan, registry, { out: dir('out-int8'), backend });
    const [a, packed, out] = await Promise.all(['m1', 'm3-int8', 'out-int8'].map((d) => tensorsOf(dir(d))));
    let quantized = 0;
    for (const [name, { f32 }] of out) {
      let m = packed.get(name)!.f32;
      if (packed.has(`${name.slice(0, -'.weight'.length)}.SCB`)) {
        quantized++;
        m = q.dequantize(name.slice(0, -'.weight'.length), (k) => packed.get(k)?.raw, { backend }).data;
      }
      expect(f32).toEqual(Float32Array.from(a.get(name)!.f32, (v, j) => (v + m[j]) / 2));
    }
    expect(quantized).toBe(14);
    expect([...out.keys()]).toEqual([...a.keys()]);
  });

  it('uses the 4-bit folder as the base too (config without quantization_config)', async () => {
    const plan = planFromFlags({ method: 'toward', base: dir('m2-nf4'), models: [dir('m3')], params: { t: 0 } });
    await runMerge(plan, registry, { out: dir('out-nf4-base'), seed: 1, backend });
    const config = JSON.parse(await readFile(dir('out-nf4-base/config.json'), 'utf8'));
    expect(config.quantization_config).toBeUndefined();
    const out = await tensorsOf(dir('out-nf4-base'));
    expect(out.get('model.layers.0.mlp.up_proj.weight')!.raw.dtype).toBe('F32'); // the dtype the 4-bit weight was made from
    expect(out.has('model.layers.0.mlp.up_proj.weight.absmax')).toBe(false);
  });

  it('gives the same bytes for the same seed and other bytes for another', async () => {
    const plan = planFromFlags({ method: 'toward', base: dir('m1'), models: [dir('m3')], params: { t: 0.25 } });
    await runMerge(plan, registry, { out: dir('s1a'), seed: 1, backend });
    await runMerge(plan, registry, { out: dir('s1b'), seed: 1, backend });
    await runMerge(plan, registry, { out: dir('s2'), seed: 2, backend });
    const [a, b, c] = await Promise.all(['s1a', 's1b', 's2'].map((d) => readFile(dir(`${d}/model.safetensors`))));
    expect(a.equals(b)).toBe(true);
    expect(a.equals(c)).toBe(false);
  });
});

describe('checks before merging', () => {
  beforeAll(async () => {
    await generateTinyLlama(dir('wide'), { preset: 'tiny', seed: 4, intermediateSize: 192 });
    await generateTinyLlama(dir('vocab'), { preset: 'tiny', seed: 4, vocabSize: 384 });
    await generateTinyLlama(dir('tied'), { preset: 'tiny', seed: 4, tieEmbeddings: true });
    await generateTinyLlama(dir('mistral'), { preset: 'tiny', seed: 4, modelType: 'mistral' });
    await cp(dir('m3'), dir('tok'), { recursive: true });
    await writeFile(dir('tok/tokenizer.json'), `${await readFile(dir('tok/tokenizer.json'), 'utf8')}\n`);
  });

  it('reports the inputs of a compatible plan without writing anything', async () => {
    const plan = planFromFlags({ method: 'wsum', models: [dir('m1'), dir('m2-nf4'), dir('m3')], params: { weight: 1 } });
    const r = await checkMerge(plan, registry);
    expect(r.tensors).toBe(21);
    expect(r.numLayers).toBe(2);
    expect(r.largestTensorElements).toBe(320 * 64);
    expect(r.inputs.map((i) => [i.architecture, i.vocabSize, i.quantization ?? 'none', i.tensors])).toEqual([
      ['LlamaForCausalLM', 320, 'none', 21], ['LlamaForCausalLM', 320, 'nf4', 21], ['LlamaForCausalLM', 320, 'none', 21],
    ]);
    expect(new Set(r.inputs.map((i) => i.tokenizerSha256)).size).toBe(1);
  });

  it.each([
    ['wide', /shape of model.layers.0.mlp.down_proj.weight is \[64, 192\] in .*wide vs \[64, 128\] in .*m1 \(and 5 more\)/],
    ['vocab', /vocabSize 384 in .*vocab vs 320 in .*m1/],
    ['tied', /tied lacks lm_head.weight/],
    ['mistral', /architecture "MistralForCausalLM" in .*mistral vs "LlamaForCausalLM" in .*m1; modelType "mistral"/],
    ['tok', /tokenizer.json differs between .*tok and .*m1/],
  ])('refuses %s with what differs, writing nothing', async (other, why) => {
    const plan = planFromFlags({ method: 'wsum', models: [dir('m1'), dir(other)], params: { weight: 1 } });
    const e = await failure(runMerge(plan, registry, { out: dir(`bad-${other}`), backend }));
    expect(e.exitCode).toBe(2);
    expect(e.message).toMatch(/^command line: the models cannot be merged: /);
    expect(e.message).toMatch(why);
    expect(e.message).not.toMatch(/\n/);
    expect((await readdir(root)).filter((f) => f.includes(`bad-${other}`))).toEqual([]);
  });

  it('refuses bad plans by name', async () => {
    const msg = async (flags: Parameters<typeof planFromFlags>[0]) => (await failure(checkMerge(planFromFlags(flags), registry))).message;
    expect(await msg({ method: 'nope', models: [dir('m1')] })).toBe('command line: unknown merge method "nope" (valid: toward, wsum)');
    expect(await msg({ method: 'toward', models: [dir('m1')], params: { t: 0.5 } })).toMatch(/toward needs a base model/);
    expect(await msg({ method: 'toward', base: dir('m1'), models: [dir('m2'), dir('m3')], params: { t: 0.5 } })).toBe(
      'command line: toward takes exactly 1 model besides the base model (2 in all with the base), got 2',
    );
    // the base listed among the models is the base, not a second model
    const listed = planFromFlags({ method: 'toward', base: dir('m1'), models: [dir('m1'), dir('m2')], params: { t: 0.5 } });
    expect((await checkMerge(listed, registry)).inputs.map((i) => i.role)).toEqual(['base', 'model']);
    expect(await msg({ method: 'toward', base: dir('m1'), models: [dir('m2')] })).toMatch(/toward needs parameter "t" \(tensor lm_head.weight\)/);
    expect(await msg({ method: 'toward', base: dir('m1'), models: [dir('m2')], params: { t: 2 } })).toBe(
      'command line: toward: tensor lm_head.weight: t must be at most 1',
    );
    expect(await msg({ method: 'wsum', models: [dir('m1'), join(root, 'missing')], params: { weight: 1 } })).toMatch(/missing/);
  });

  it('adds a base-less method\'s base_model as one more input, as mergekit does, and takes its side files', async () => {
    await cp(dir('m3'), dir('gen'), { recursive: true });
    await writeFile(dir('gen/generation_config.json'), '{"bos_token_id": 1, "eos_token_id": 2, "temperature": 0.5}\n');
    const plan = planFromFlags({ method: 'wsum', base: dir('gen'), models: [dir('m1')], params: { weight: 1 } });
    expect((await checkMerge(plan, registry)).inputs.map((i) => [i.role, i.path])).toEqual([['model', dir('m1')], ['model', dir('gen')]]);
    await runMerge(plan, registry, { out: dir('out-gen'), backend });
    expect(await readFile(dir('out-gen/generation_config.json'), 'utf8')).toMatch(/temperature/);
    const noBase = planFromFlags({ method: 'wsum', models: [dir('m1')], params: { weight: 1 }, tokenizerSource: 'base' });
    expect((await failure(checkMerge(noBase, registry))).message).toBe('command line: tokenizer_source: base needs a base_model');
  });

  it('leaves nothing behind when the method fails midway, and refuses an existing output', async () => {
    const failing: MergerDef = { ...wsum, name: 'failing', mergeTensor: ({ name, out }) => {
      if (name.includes('layers.1')) throw new Error('boom');
      return out;
    } };
    registry.merger(failing);
    const plan = planFromFlags({ method: 'failing', models: [dir('m1')], params: { weight: 1 } });
    await expect(runMerge(plan, registry, { out: dir('out-fail'), backend })).rejects.toThrow('boom');
    expect((await readdir(root)).filter((f) => f.includes('out-fail'))).toEqual([]);
    const ok = planFromFlags({ method: 'wsum', models: [dir('m1')], params: { weight: 1 } });
    const e = await failure(runMerge(ok, registry, { out: dir('out-wsum'), backend }));
    expect(e.code).toBe('E_EXISTS');
  });

  it('sizes its buffers by the largest tensor', async () => {
    const plan = planFromFlags({ method: 'wsum', models: [dir('m1'), dir('m2')], params: { weight: 1 } });
    const r = await checkMerge(plan, registry);
    const f = await openModelFolder(dir('m1'));
    expect(r.largestTensorElements).toBe(Math.max(...f.tensorNames.map((n) => numel(f.info(n).shape))));
    await f.close();
  });
});
