/**
 * `compeft` and `sparsify` through the core drivers: values equal the PyTorch reference
 * (scripts/ref/compeft_reference.py), decompress ∘ compress is exact on the ternary values,
 * the container is >= 25x smaller than the fp16 adapter at density 0.1, and inspect reports it.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  asF32, compressAdapter, createRegistry, decompressAdapter, inspectPath, openModelFolder, readPeftAdapter,
  SafetensorsFile, writePeftAdapter, Xoshiro128, COMPRESSED_FILE, type Registry,
} from '@peft/core-tensor';
import { registerCompressors } from '../src/compress/index.js';

/** PEFT's on-disk name of a LoRA factor (save_and_load.py). */
const loraKey = (module: string, kind: 'lora_A' | 'lora_B') => `base_model.model.${module}.${kind}.weight`;

const FIX = join(__dirname, 'fixtures', 'compress');
const LORA = join(FIX, 'lora');
let root: string;
let n = 0;
const fresh = () => join(root, `case${n++}`);
let registry: Registry;
let expected: SafetensorsFile;
let meta: {
  compeft: { density: number; alpha: number; std: number; kept: number }[];
  sparsify: { density: number; kept: number }[];
  delta: { density: number; alpha: number; kept: number };
};

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'peft-compress-'));
  registry = createRegistry();
  registerCompressors(registry);
  expected = await SafetensorsFile.open(join(FIX, 'expected.safetensors'));
  meta = JSON.parse(await readFile(join(FIX, 'expected.json'), 'utf8'));
});
afterAll(async () => {
  await expected.close();
  await rm(root, { recursive: true, force: true });
});

async function expectedF32(name: string): Promise<Float32Array> {
  return Float32Array.from(asF32(await expected.read(name)));
}

/** Values as numbers with -0 read as 0 (the reference's `tv * mask` leaves -0 where it prunes a negative). */
const values = (a: Float32Array) => Array.from(a, (v) => v + 0);

/** Compress LORA with `method`/`options`, decompress, return the restored adapter. */
async function roundTrip(method: string, options: Record<string, unknown>) {
  const out = fresh();
  const report = await compressAdapter({ adapter: LORA, method, options, out }, registry);
  const back = fresh();
  await decompressAdapter({ input: out, out: back }, registry);
  return { report, adapter: await readPeftAdapter(back), out };
}

describe('compeft equals the PyTorch reference', () => {
  for (let i = 0; i < 4; i++) {
    it(`case ${i}`, async () => {
      const c = meta.compeft[i];
      const { report, adapter } = await roundTrip('compeft', { density: c.density, alpha: c.alpha });
      expect(report.kept).toBe(c.kept);
      for (const [name, t] of adapter.tensors) {
        expect(t.dtype).toBe('F32');
        // Exact: the scale is torch's f32 alpha * std, the signs and positions are the same.
        expect(values(asF32(t.data)), name).toEqual(values(await expectedF32(`compeft${i}.${name}`)));
      }
      expect(adapter.config).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'] });
    });
  }
});

describe('sparsify equals the reference (top-K values, f16)', () => {
  for (let i = 0; i < 4; i++) {
    it(`case ${i}`, async () => {
      const c = meta.sparsify[i];
      const { report, adapter } = await roundTrip('sparsify', { density: c.density });
      expect(report.kept).toBe(c.kept);
      for (const [name, t] of adapter.tensors) {
        expect(values(asF32(t.data)), name).toEqual(values(await expectedF32(`sparsify${i}.${name}`)));
      }
    });
  }
});

describe('round trips', () => {
  it('compeft of a decompressed (ternary) adapter keeps the same positions and signs', async () => {
    const first = await roundTrip('compeft', { density: 0.1 });
    const dir = fresh();
    await writePeftAdapter(dir, { config: first.adapter.config, tensors: first.adapter.tensors });
    const again = fresh();
    // All nonzeros of the ternary input are tied at the top, so any density above theirs keeps exactly them;
    // only the scale changes (the std of a ternary vector is not the std of the original).
    const r = await compressAdapter({ adapter: dir, method: 'compeft', options: { density: 0.11 }, out: again }, registry);
    expect(r.kept).toBe(first.report.kept);
    const back = fresh();
    await decompressAdapter({ input: join(again, COMPRESSED_FILE), out: back }, registry);
    for (const [name, t] of (await readPeftAdapter(back)).tensors) {
      expect(values(asF32(t.data)).map(Math.sign), name).toEqual(values(asF32(first.adapter.tensors.get(name)!.data)).map(Math.sign));
    }
  });

  it('restores the original dtype on request', async () => {
    const out = fresh();
    await compressAdapter({ adapter: LORA, method: 'compeft', options: {}, out }, registry);
    const back = fresh();
    await decompressAdapter({ input: out, out: back, dtype: 'original' }, registry);
    expect([...(await readPeftAdapter(back)).tensors.values()].every((t) => t.dtype === 'F32')).toBe(true);
  });

  it('a full-model delta against --base equals the reference and needs the base back', async () => {
    const base = join(FIX, 'delta', 'base');
    const out = fresh();
    const r = await compressAdapter({ adapter: join(FIX, 'delta', 'tuned'), base, method: 'compeft', options: { density: 0.2 }, out }, registry);
    expect(r.kind).toBe('model-delta');
    expect(r.kept).toBe(meta.delta.kept);
    const err = await decompressAdapter({ input: out, out: fresh() }, registry).catch((e) => e);
    expect(err.code).toBe('E_INPUT');
    const back = fresh();
    await decompressAdapter({ input: out, out: back, base }, registry);
    const [m, b] = [await openModelFolder(back), await openModelFolder(base)];
    try {
      expect(m.tensorNames).toEqual(b.tensorNames);
      for (const name of m.tensorNames) {
        const want = Float32Array.from(asF32((await b.read(name)).data));
        const delta = await expectedF32(`delta.${name}`);
        for (let i = 0; i < want.length; i++) want[i] += delta[i];
        expect(asF32((await m.read(name)).data), name).toEqual(want);
      }
      expect(m.config).toMatchObject({ model_type: 'llama', hidden_size: 16 });
    } finally {
      await Promise.all([m.close(), b.close()]);
    }
  });
});

/** An r=8 LoRA over q/k/v/o of the demo model's shape (hidden 288, 6 layers), N(0, 1) factors, f32. */
async function realisticAdapter(dir: string): Promise<number> {
  const rng = new Xoshiro128(7);
  const tensors = [];
  for (let l = 0; l < 6; l++) {
    for (const m of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) {
      const mod = `model.layers.${l}.self_attn.${m}`;
      for (const [kind, shape] of [['lora_A', [8, 288]], ['lora_B', [288, 8]]] as const) {
        const a = new Float32Array(shape[0] * shape[1]);
        rng.fillNormal(a);
        tensors.push({ name: loraKey(mod, kind), dtype: 'F32' as const, shape: [...shape], data: new Uint8Array(a.buffer) });
      }
    }
  }
  const config = { peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], task_type: 'CAUSAL_LM' };
  await writePeftAdapter(dir, { config, tensors });
  return tensors.reduce((s, t) => s + t.shape[0] * t.shape[1], 0);
}

describe('size', () => {
  it('is at least 25x smaller than the fp16 adapter at density 0.1, near the entropy bound', async () => {
    const dir = fresh();
    const params = await realisticAdapter(dir);
    const out = fresh();
    const r = await compressAdapter({ adapter: dir, method: 'compeft', options: { density: 0.1 }, out }, registry);
    expect(r.params).toBe(params);
    expect(r.fp16Bytes).toBe(2 * params);
    const file = (await readFile(join(out, COMPRESSED_FILE))).length;
    expect(r.bytes).toBe(file);
    expect(r.ratio).toBeCloseTo((2 * params) / file, 10);
    expect(r.ratio).toBeGreaterThanOrEqual(25);
    // H(0.1) + 0.1 = 0.569 bits: Rice coding of the gaps stays within 2 % of it, the header adds the rest.
    expect(r.entropyBitsPerParam).toBeCloseTo(0.569, 3);
    expect(r.payloadBitsPerParam / r.entropyBitsPerParam).toBeLessThan(1.02);
    console.log(`compeft d=0.1: ${params} params, ${file} bytes, ratio ${r.ratio.toFixed(2)}x, ${r.bitsPerParam.toFixed(4)} bits/param`
      + ` (payload ${r.payloadBitsPerParam.toFixed(4)}, bound ${r.entropyBitsPerParam.toFixed(4)})`);

    const info = await inspectPath(out);
    expect(info.kind).toBe('compressed');
    expect(info.parameters).toBe(params);
    expect(info.compressed).toMatchObject({ method: 'compeft', kind: 'adapter', peftType: 'LORA', kept: r.kept, bytes: file });
    expect(info.compressed!.ratioVsFp16).toBeCloseTo(r.ratio, 10);
    expect((await inspectPath(join(out, COMPRESSED_FILE))).compressed!.ratioVsFp16).toBeCloseTo(r.ratio, 10);
  });
});

it('refuses a density outside (0, 1] and writes nothing', async () => {
  for (const density of [0, 1.5, -0.1]) {
    const out = fresh();
    const e = await compressAdapter({ adapter: LORA, method: 'compeft', options: { density }, out }, registry).catch((x) => x);
    expect(e.code).toBe('E_INPUT');
    expect(e.message).toMatch(/density/);
    expect(existsSync(out)).toBe(false);
  }
});
