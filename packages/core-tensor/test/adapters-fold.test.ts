/**
 * foldAdapters: W' = W + Σ wᵢ sᵢ Bᵢ Aᵢ and DoRA's m / ||W + ΔW||_row · (W + ΔW) equal the NumPy
 * reference (scripts/ref/adapter_merge_reference.py); a 4-bit / int8 base is dequantized through its
 * quantizer and updated, or re-quantized with the same settings (untouched modules byte-identical).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  asF32, createRegistry, foldAdapters, generateTinyLlama, getBackend, openModelFolder, quantizeModel, readPeftAdapter,
  referenceBackend, registerBuiltins, resolveOptions, SafetensorsFile, toF32, writePeftAdapter,
  type LowRankDelta, type ModelFolder, type RawTensor, type Registry,
} from '../src/index.js';
import { Xoshiro128 } from '../src/random/rng.js';
import { denseDelta, loraKey, relFrobenius, testLora } from './adapters-lora-method.js';

const FIX = join(__dirname, 'fixtures', 'adapters');
const [BASE, A, B, DORA] = ['base', 'a', 'b', 'dora'].map((d) => join(FIX, d));
let root: string;
let n = 0;
const fresh = () => join(root, `case${n++}`);
let registry: Registry;
let expected: SafetensorsFile;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'peft-fold-'));
  registry = createRegistry();
  registerBuiltins(registry);
  registry.method(testLora);
  expected = await SafetensorsFile.open(join(FIX, 'expected.safetensors'));
});
afterAll(async () => {
  await expected.close();
  await rm(root, { recursive: true, force: true });
});

async function withModel<T>(dir: string, fn: (m: ModelFolder) => Promise<T>): Promise<T> {
  const m = await openModelFolder(dir);
  try {
    return await fn(m);
  } finally {
    await m.close();
  }
}

const f32Of = (t: RawTensor) => Float32Array.from(toF32(referenceBackend, t));

describe('fold into a float base', () => {
  it('W + Σ wᵢ sᵢ Bᵢ Aᵢ equals the reference; other tensors pass through byte for byte', async () => {
    const out = fresh();
    const r = await foldAdapters({ base: BASE, adapters: [A, B], weights: [0.7, 1.3], out }, registry);
    expect(r).toMatchObject({ foldedModules: 6, dequantizedModules: 0, requantizedModules: 0, tensors: 7 });
    await withModel(out, async (m) => withModel(BASE, async (b) => {
      expect(m.tensorNames).toEqual(b.tensorNames);
      for (const name of m.tensorNames) {
        const got = await m.read(name);
        if (name === 'model.norm.weight') {
          expect(Buffer.from(got.data).equals(Buffer.from((await b.read(name)).data))).toBe(true);
          continue;
        }
        expect(got.dtype).toBe('F32');
        expect(relFrobenius(asF32(got.data), asF32(await expected.read(`fold.${name}`))), name).toBeLessThan(1e-6);
      }
      expect(m.config).toEqual(b.config);
    }));
  });

  it('DoRA: m / ||W + ΔW||_row · (W + ΔW)', async () => {
    const out = fresh();
    await foldAdapters({ base: BASE, adapters: [DORA], out }, registry);
    await withModel(out, async (m) => {
      for (const l of [0, 1]) {
        const name = `model.layers.${l}.self_attn.q_proj.weight`;
        expect(relFrobenius(asF32((await m.read(name)).data), asF32(await expected.read(`fold_dora.${name}`))), name).toBeLessThan(1e-6);
      }
    });
  });

  it('--dtype bf16 converts every float tensor and records torch_dtype', async () => {
    const out = fresh();
    await foldAdapters({ base: BASE, adapters: [A, B], weights: [0.7, 1.3], dtype: 'bf16', out }, registry);
    await withModel(out, async (m) => {
      expect(m.config.torch_dtype).toBe('bfloat16');
      const name = 'model.layers.1.self_attn.v_proj.weight';
      const got = await m.read(name);
      expect(got.dtype).toBe('BF16');
      const want = referenceBackend.bf16ToF32(referenceBackend.f32ToBf16(Float32Array.from(asF32(await expected.read(`fold.${name}`)))));
      const back = f32Of(got);
      for (let i = 0; i < want.length; i++) expect(Math.abs(back[i] - want[i])).toBeLessThanOrEqual(Math.abs(want[i]) * 2 ** -8);
    });
  });
});

/** A tiny Llama (F32), its quantized copy, and an r=4 LoRA over q_proj / v_proj with random factors. */
async function quantizedSetup(type: 'nf4' | 'int8') {
  const dir = fresh();
  await generateTinyLlama(dir, { preset: 'tiny', seed: 3, dtype: 'F32' });
  const q = registry.get('quantizer', type);
  const qdir = fresh();
  await quantizeModel({ modelDir: dir, outDir: qdir, quantizer: q, options: resolveOptions(type, q.options, {}) });
  const rng = new Xoshiro128(5);
  const tensors = [];
  for (const l of [0, 1]) {
    for (const [mod, out] of [['q_proj', 64], ['v_proj', 32]] as const) {
      const a = new Float32Array(4 * 64), b = new Float32Array(out * 4);
      rng.fillNormal(a, 0, 0.1);
      rng.fillNormal(b, 0, 0.1);
      const m = `model.layers.${l}.self_attn.${mod}`;
      tensors.push({ name: loraKey(m, 'lora_A'), dtype: 'F32' as const, shape: [4, 64], data: new Uint8Array(a.buffer) });
      tensors.push({ name: loraKey(m, 'lora_B'), dtype: 'F32' as const, shape: [out, 4], data: new Uint8Array(b.buffer) });
    }
  }
  const adapter = fresh();
  await writePeftAdapter(adapter, { config: { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'] }, tensors });
  const deltas = new Map(testLora.delta!(await readPeftAdapter(adapter)).map((d) => [d.module, d]));
  return { qdir, adapter, deltas, q };
}

/** The dequantized base weight of `module` plus its update, in f32 (the test's own arithmetic). */
async function expectedFolded(qdir: string, module: string, deltas: Map<string, LowRankDelta>, type: string) {
  return withModel(qdir, async (m) => {
    const stored = new Map<string, RawTensor>();
    for (const name of m.tensorNames) if (name.startsWith(`${module}.`)) stored.set(name, await m.read(name));
    const w = registry.get('quantizer', type).dequantize(module, (k) => stored.get(k), { backend: getBackend() });
    const d = denseDelta(deltas.get(module)!);
    return Float32Array.from(w.data, (v, i) => v + d[i]);
  });
}

describe('fold into a quantized base', () => {
  for (const type of ['nf4', 'int8'] as const) {
    it(`${type}: dequantized, updated, written in --dtype f32; quantization_config dropped`, async () => {
      const { qdir, adapter, deltas } = await quantizedSetup(type);
      const out = fresh();
      const r = await foldAdapters({ base: qdir, adapters: [adapter], dtype: 'f32', out }, registry);
      expect(r.foldedModules).toBe(4);
      expect(r.dequantizedModules).toBe(14); // 2 layers x 7 Linear modules
      await withModel(out, async (m) => {
        expect(m.config.quantization_config).toBeUndefined();
        expect(m.auxFiles).toEqual(expect.arrayContaining(['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']));
        expect(m.tensorNames.some((t) => t.includes('absmax') || t.endsWith('.SCB'))).toBe(false);
        for (const module of deltas.keys()) {
          const got = await m.read(`${module}.weight`);
          expect(got.dtype).toBe('F32');
          expect(relFrobenius(asF32(got.data), await expectedFolded(qdir, module, deltas, type)), module).toBeLessThan(1e-6);
        }
      });
    });
  }

  it('nf4 without --dtype: written in the dtype quant_state records (bfloat16)', async () => {
    const { qdir, adapter } = await quantizedSetup('nf4');
    const out = fresh();
    await foldAdapters({ base: qdir, adapters: [adapter], out }, registry);
    await withModel(out, async (m) => {
      expect(m.info('model.layers.0.self_attn.q_proj.weight').dtype).toBe('BF16');
      expect(m.info('model.layers.0.mlp.up_proj.weight').dtype).toBe('BF16');
      expect(m.info('model.norm.weight').dtype).toBe('F32');
    });
  });

  it('--requantize: updated modules re-quantized with the same settings, the rest byte-identical', async () => {
    const { qdir, adapter, deltas, q } = await quantizedSetup('nf4');
    const out = fresh();
    const r = await foldAdapters({ base: qdir, adapters: [adapter], requantize: true, out }, registry);
    expect(r).toMatchObject({ foldedModules: 4, requantizedModules: 4, dequantizedModules: 0 });
    await withModel(out, async (m) => withModel(qdir, async (b) => {
      expect(m.config).toEqual(b.config);
      expect([...m.tensorNames].sort()).toEqual([...b.tensorNames].sort());
      const opts = resolveOptions('nf4', q.options, {});
      const want = new Map<string, Uint8Array>();
      for (const module of deltas.keys()) {
        const w = await expectedFolded(qdir, module, deltas, 'nf4');
        for (const t of q.quantize(module, w, [w.length / 64, 64], opts, { backend: getBackend() })) want.set(t.name, t.data);
      }
      for (const name of m.tensorNames) {
        const got = Buffer.from((await m.read(name)).data);
        const ref = want.get(name) ?? (await b.read(name)).data;
        expect(got.equals(Buffer.from(ref)), name).toBe(true);
      }
      expect(want.size).toBeGreaterThan(8);
    }));
  });
});

describe('bad input: exit 2, nothing written', () => {
  const cases: [string, () => Promise<unknown>, RegExp][] = [
    ['requantize a float base', () => foldAdapters({ base: BASE, adapters: [A], requantize: true, out: fresh() }, registry), /requantize needs a quantized base/],
    ['weights count', () => foldAdapters({ base: BASE, adapters: [A, B], weights: [1], out: fresh() }, registry), /1 weights for 2 adapters/],
    ['DoRA with another adapter on the same module', () => foldAdapters({ base: BASE, adapters: [DORA, A], out: fresh() }, registry), /DoRA adapter cannot be folded together/],
  ];
  for (const [what, run, msg] of cases) {
    it(what, async () => {
      const e = await run().then(() => undefined, (x: unknown) => x as Error & { exitCode: number });
      expect(e?.exitCode).toBe(2);
      expect(e!.message).toMatch(msg);
    });
  }

  it('an adapter module the base lacks, or of another shape', async () => {
    const tiny = fresh();
    await generateTinyLlama(tiny, { preset: 'tiny', seed: 1, dtype: 'F32' });
    for (const [base, msg] of [[tiny, /update is \[24, 24\], the base weight is \[64,64\]/], [BASE, /no weight model.layers.0.mlp.up_proj.weight/]] as const) {
      const adapter = fresh();
      const mod = base === tiny ? 'model.layers.0.self_attn.q_proj' : 'model.layers.0.mlp.up_proj';
      const z = new Uint8Array(4 * 2 * 24);
      await writePeftAdapter(adapter, { config: { peft_type: 'LORA', r: 2, lora_alpha: 2 }, tensors: [
        { name: loraKey(mod, 'lora_A'), dtype: 'F32', shape: [2, 24], data: z }, { name: loraKey(mod, 'lora_B'), dtype: 'F32', shape: [24, 2], data: z },
      ] });
      const out = fresh();
      const e = await foldAdapters({ base, adapters: [adapter], out }, registry).catch((x) => x);
      expect(e.exitCode).toBe(2);
      expect(e.message).toMatch(msg);
      expect(existsSync(out)).toBe(false);
    }
  });
});
