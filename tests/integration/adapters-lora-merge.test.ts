/**
 * Two plugins together, through the built packages as a library user imports them: the adapter
 * jobs with the real LoRA method (plugin-lora, found in the registry by peft_type) and plugin-merge:
 * folding then running the model gives the logits of the base with the adapter applied
 * (loadAdapter), for LoRA, rsLoRA and DoRA, on a float and on a 4-bit base; a merged adapter
 * (cat, linear) loaded on the base gives the logits of folding its inputs.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createRegistry, foldAdapters, generateTinyLlama, Llama, mergeAdapters, noGrad, quantizeModel, readPeftAdapter,
  registerBuiltins, resolveOptions, tidy, writePeftAdapter, Xoshiro128, type Registry,
} from '@peft/core-tensor';
import { loraKey, register as registerLora } from '@peft/plugin-lora';
import { register as registerMerge } from '@peft/plugin-merge';

let root: string;
let n = 0;
const fresh = () => join(root, `case${n++}`);
let registry: Registry;
let base: string;
let base4: string;

const IDS = [[5, 17, 99, 3, 250, 42, 7, 300], [1, 2, 3, 4, 5, 6, 7, 8]];
const LINEARS: [string, number, number][] = [
  ['self_attn.q_proj', 64, 64], ['self_attn.k_proj', 32, 64], ['self_attn.v_proj', 32, 64], ['self_attn.o_proj', 64, 64],
  ['mlp.gate_proj', 128, 64], ['mlp.up_proj', 128, 64], ['mlp.down_proj', 64, 128],
];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'peft-adapters-lora-'));
  registry = createRegistry();
  registerBuiltins(registry);
  registerLora(registry);
  registerMerge(registry);
  base = fresh();
  await generateTinyLlama(base, { preset: 'tiny', seed: 21, dtype: 'F32' });
  base4 = fresh();
  const q = registry.get('quantizer', 'nf4');
  await quantizeModel({ modelDir: base, outDir: base4, quantizer: q, options: resolveOptions('nf4', q.options, { compute_dtype: 'f32' }) });
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

interface AdapterSpec { seed: number; r: number; alpha: number; rslora?: boolean; dora?: boolean; modules?: string[] }

/** A LoRA adapter over every Linear of both layers with random (nonzero) A and B, as PEFT saves one. */
async function makeAdapter(s: AdapterSpec): Promise<string> {
  const rng = new Xoshiro128(s.seed);
  const tensors = [];
  for (const l of [0, 1]) {
    for (const [name, out, inF] of LINEARS.filter(([m]) => !s.modules || s.modules.some((x) => m.endsWith(x)))) {
      const mod = `model.layers.${l}.${name}`;
      const a = new Float32Array(s.r * inF), b = new Float32Array(out * s.r);
      rng.fillNormal(a, 0, 1 / Math.sqrt(inF));
      rng.fillNormal(b, 0, 0.05);
      tensors.push({ name: loraKey(mod, 'lora_A'), dtype: 'F32' as const, shape: [s.r, inF], data: new Uint8Array(a.buffer) });
      tensors.push({ name: loraKey(mod, 'lora_B'), dtype: 'F32' as const, shape: [out, s.r], data: new Uint8Array(b.buffer) });
      if (s.dora) {
        const m = new Float32Array(out);
        rng.fillNormal(m, 0.3, 0.05);
        tensors.push({ name: loraKey(mod, 'lora_magnitude_vector'), dtype: 'F32' as const, shape: [out], data: new Uint8Array(m.buffer) });
      }
    }
  }
  const targets = [...new Set(LINEARS.map(([m]) => m.split('.')[1]).filter((m) => !s.modules || s.modules.includes(m)))].sort();
  const config = {
    peft_type: 'LORA', task_type: 'CAUSAL_LM', r: s.r, lora_alpha: s.alpha, lora_dropout: 0, target_modules: targets, bias: 'none',
    use_rslora: s.rslora ?? false, use_dora: s.dora ?? false, fan_in_fan_out: false, base_model_name_or_path: 'tiny',
  };
  const dir = fresh();
  await writePeftAdapter(dir, { config, tensors });
  return dir;
}

/** Logits [B, T, V] of the model in `dir`, with `adapter` applied through the LoRA method's loadAdapter. */
async function logits(dir: string, adapter?: string): Promise<Float32Array> {
  const model = await Llama.fromFolder(dir);
  try {
    if (adapter) {
      const a = await readPeftAdapter(adapter);
      await registry.get('method', 'lora').loadAdapter(model, adapter, a.config);
    }
    return Float32Array.from(tidy(() => noGrad(() => model.logits(model.forward(IDS).hidden).toArray())));
  } finally {
    model.dispose();
  }
}

function expectClose(got: Float32Array, want: Float32Array, tol: number): void {
  let worst = 0, scale = 0;
  for (let i = 0; i < want.length; i++) {
    worst = Math.max(worst, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  expect(worst / scale).toBeLessThan(tol);
}

describe('fold then run = base + adapter', () => {
  const cases: [string, AdapterSpec][] = [
    ['LoRA', { seed: 1, r: 4, alpha: 8 }],
    ['rsLoRA', { seed: 2, r: 8, alpha: 4, rslora: true }],
    ['DoRA', { seed: 3, r: 4, alpha: 8, dora: true }],
  ];
  for (const [what, spec] of cases) {
    it(`${what}, float base`, async () => {
      const adapter = await makeAdapter(spec);
      const out = fresh();
      await foldAdapters({ base, adapters: [adapter], out }, registry);
      const want = await logits(base, adapter);
      const plain = await logits(base);
      expectClose(await logits(out), want, 1e-5);
      // The adapter matters: without it the logits are far off.
      expect(Math.max(...want.map((v, i) => Math.abs(v - plain[i])))).toBeGreaterThan(1e-2);
    });
  }

  it('LoRA on a 4-bit base, dequantized (no requantize)', async () => {
    const adapter = await makeAdapter({ seed: 4, r: 4, alpha: 16 });
    const out = fresh();
    const r = await foldAdapters({ base: base4, adapters: [adapter], dtype: 'f32', out }, registry);
    expect(r.dequantizedModules).toBe(14);
    expectClose(await logits(out), await logits(base4, adapter), 1e-5);
  });
});

describe('merged adapters through plugin-lora', () => {
  it('cat of two adapters (one rsLoRA, different ranks) loads to the logits of folding both', async () => {
    const a = await makeAdapter({ seed: 5, r: 4, alpha: 8 });
    const b = await makeAdapter({ seed: 6, r: 2, alpha: 4, rslora: true, modules: ['q_proj', 'v_proj'] });
    const merged = fresh();
    await mergeAdapters({ adapters: [a, b], weights: [0.6, 1.5], method: 'cat', out: merged }, registry);
    const folded = fresh();
    await foldAdapters({ base, adapters: [a, b], weights: [0.6, 1.5], out: folded }, registry);
    expectClose(await logits(base, merged), await logits(folded), 1e-5);
  });

  it('linear at full rank (rank = Σ rᵢ) is exact too: no cross terms, no double scaling', async () => {
    const a = await makeAdapter({ seed: 7, r: 2, alpha: 8 });
    const b = await makeAdapter({ seed: 8, r: 2, alpha: 2, rslora: true });
    const merged = fresh();
    const r = await mergeAdapters({ adapters: [a, b], weights: [1, 3], method: 'linear', rank: 4, options: { normalize: false }, out: merged }, registry);
    expect(r.relError).toBeLessThan(1e-6);
    const folded = fresh();
    await foldAdapters({ base, adapters: [a, b], weights: [1, 3], out: folded }, registry);
    expectClose(await logits(base, merged), await logits(folded), 1e-5);
  });
});
