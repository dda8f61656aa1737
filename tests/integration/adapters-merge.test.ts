/**
 * mergeAdapters against scripts/ref/adapter_merge_reference.py: cat reproduces Σ wᵢ sᵢ Bᵢ Aᵢ exactly
 * (f32 rounding), linear / ties + SVD equal NumPy's best rank-r approximation, rsLoRA scales are
 * taken from each adapter's config, the written adapter has scaling 1 and use_rslora false, and the
 * reported SVD error matches NumPy's. Mergers are plugin-merge's registry entries; the adapters are
 * read and written by plugin-lora's delta() / fromDelta() (found by peft_type), both built packages.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asF32, createRegistry, mergeAdapters, readPeftAdapter, SafetensorsFile, type MethodDef, type Registry } from '@peft/core-tensor';
import { register as registerLora } from '@peft/plugin-lora';
import { register as registerMerge } from '@peft/plugin-merge';
import { denseDelta, relFrobenius } from './helpers.js';

const FIX = join(__dirname, '..', '..', 'packages', 'core-tensor', 'test', 'fixtures', 'adapters');
const [A, B, DORA] = ['a', 'b', 'dora'].map((d) => join(FIX, d));
let root: string;
let n = 0;
const fresh = () => join(root, `case${n++}`);
let registry: Registry;
let lora: MethodDef;
let expected: SafetensorsFile;
let meta: { weights: number[]; density: number; linear: Record<string, { rank: number; rel_error: number }>; ties: Record<string, { rank: number; rel_error: number }> };

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'peft-adapter-merge-'));
  registry = createRegistry();
  registerLora(registry);
  lora = registry.get('method', 'lora');
  registerMerge(registry);
  expected = await SafetensorsFile.open(join(FIX, 'expected.safetensors'));
  meta = JSON.parse(await readFile(join(FIX, 'expected.json'), 'utf8'));
});
afterAll(async () => {
  await expected.close();
  await rm(root, { recursive: true, force: true });
});

const MODULES = [0, 1].flatMap((l) => ['k_proj', 'q_proj', 'v_proj'].map((m) => `model.layers.${l}.self_attn.${m}`));

/** The merged adapter's per-module s · B · A, through the method's own delta(). */
async function mergedDeltas(dir: string) {
  const adapter = await readPeftAdapter(dir);
  return { config: adapter.config, deltas: new Map(lora.delta!(adapter).map((d) => [d.module, d])) };
}

describe('cat', () => {
  it('reproduces Σ wᵢ sᵢ Bᵢ Aᵢ exactly, rank Σ rᵢ, scaling 1, rsLoRA from b', async () => {
    const out = fresh();
    const r = await mergeAdapters({ adapters: [A, B], weights: meta.weights, method: 'cat', out }, registry);
    expect(r).toMatchObject({ method: 'cat', adapters: 2, modules: 6, rank: 10, relError: 0 });
    const { config, deltas } = await mergedDeltas(out);
    expect(config).toMatchObject({ peft_type: 'LORA', use_rslora: false, r: 10, lora_alpha: 10, target_modules: ['k_proj', 'q_proj', 'v_proj'] });
    for (const m of MODULES) {
      const d = deltas.get(m)!;
      expect(d.scale, m).toBe(1);
      expect(d.r, m).toBe(m.endsWith('k_proj') ? 4 : 10); // k_proj only in a: a zero update from b
      const want = asF32(await expected.read(`sum.${m}`));
      // f32 factors (w s B rounded once) against the f64 reference rounded to f32: a few ulps.
      expect(relFrobenius(denseDelta(d), want), m).toBeLessThan(1e-6);
    }
  });

  it('ignoring rsLoRA would not match (the reference is sensitive to sᵢ)', async () => {
    const out = fresh();
    await mergeAdapters({ adapters: [B], weights: [1], method: 'cat', out }, registry);
    const d = (await mergedDeltas(out)).deltas.get('model.layers.0.self_attn.q_proj')!;
    const src = lora.delta!(await readPeftAdapter(B)).find((x) => x.module === d.module)!;
    expect(src.scale).toBeCloseTo(8 / Math.sqrt(6), 12);
    expect(relFrobenius(denseDelta(d), denseDelta(src))).toBeLessThan(1e-6);
    expect(relFrobenius(denseDelta(d), denseDelta({ ...src, scale: 8 / 6 }))).toBeGreaterThan(0.5);
  });
});

describe('merger + SVD', () => {
  for (const method of ['linear', 'ties'] as const) {
    it(`${method} equals NumPy's best rank-r approximation, error reported`, async () => {
      const out = fresh();
      const options = method === 'ties' ? { density: meta.density } : {};
      const r = await mergeAdapters({ adapters: [A, B], weights: meta.weights, method, ...options, out }, registry);
      const { config, deltas } = await mergedDeltas(out);
      expect(config.use_rslora).toBe(false);
      let e2 = 0, n2 = 0;
      for (const m of MODULES) {
        const ref = meta[method][m];
        const d = deltas.get(m)!;
        expect([d.r, d.scale], m).toEqual([ref.rank, 1]);
        const want = asF32(await expected.read(`${method}.${m}`));
        expect(relFrobenius(denseDelta(d), want), m).toBeLessThan(1e-5);
        const got = r.perModule.find((p) => p.module === m)!;
        expect(got.rank).toBe(ref.rank);
        expect(Math.abs(got.relError - ref.rel_error), m).toBeLessThan(1e-5);
        e2 += got.relError ** 2;
        n2 += 1;
      }
      expect(r.relError).toBeGreaterThan(0);
      expect(r.relError).toBeLessThanOrEqual(Math.sqrt(e2 / n2) * 2);
    });
  }

  it('dare_linear at density 1 is the plain weighted sum Σ wᵢ ΔWᵢ (no normalize), truncated', async () => {
    const out = fresh();
    await mergeAdapters({ adapters: [A, B], weights: meta.weights, method: 'dare_linear', density: 1, out }, registry);
    const { deltas } = await mergedDeltas(out);
    const sumW = meta.weights[0] + meta.weights[1];
    for (const m of MODULES) {
      const want = Array.from(asF32(await expected.read(`linear.${m}`)), (v) => v * sumW);
      expect(relFrobenius(denseDelta(deltas.get(m)!), want), m).toBeLessThan(1e-5);
    }
  });

  it('dare_ties is reproducible from the seed', async () => {
    const run = async (seed: number) => {
      const out = fresh();
      await mergeAdapters({ adapters: [A, B], weights: meta.weights, method: 'dare_ties', density: 0.5, seed, out }, registry);
      return readFile(join(out, 'adapter_model.safetensors'));
    };
    const [x, y, z] = [await run(1), await run(1), await run(2)];
    expect(x.equals(y)).toBe(true);
    expect(x.equals(z)).toBe(false);
  });

  it('an explicit rank truncates further and reports a larger error', async () => {
    const out = fresh();
    const r = await mergeAdapters({ adapters: [A, B], weights: meta.weights, method: 'linear', rank: 2, out }, registry);
    expect(r.rank).toBe(2);
    for (const p of r.perModule) expect(p.relError).toBeGreaterThan(meta.linear[p.module].rel_error);
  });
});

describe('bad input: exit 2, nothing written', () => {
  const cases: [string, () => Parameters<typeof mergeAdapters>[0], RegExp][] = [
    ['DoRA', () => ({ adapters: [A, DORA], method: 'linear', out: '' }), /DoRA adapters cannot be merged/],
    ['weights count', () => ({ adapters: [A, B], weights: [1], method: 'cat', out: '' }), /1 weights for 2 adapters/],
    ['unknown method', () => ({ adapters: [A, B], method: 'nope', out: '' }), /unknown merger "nope"/],
    ['density with cat', () => ({ adapters: [A, B], method: 'cat', density: 0.5, out: '' }), /cat is exact/],
    ['density out of range', () => ({ adapters: [A, B], method: 'ties', density: 1.5, out: '' }), /density/],
    ['slerp (base + one model) cannot combine two adapters', () => ({ adapters: [A, B], method: 'slerp', out: '' }), /"slerp" combines 1 model\(s\) besides its base, got 2 adapters/],
    ['weights for a merger without weights', () => ({ adapters: [A, B], weights: [1, 2], method: 'model_stock', out: '' }), /takes no per-model weights/],
  ];
  for (const [what, make, msg] of cases) {
    it(what, async () => {
      const out = fresh();
      const e = await mergeAdapters({ ...make(), out }, registry).then(() => undefined, (x: unknown) => x as Error & { code: string; exitCode: number });
      expect(e).toBeDefined();
      expect(e!.exitCode).toBe(2);
      expect(e!.message).toMatch(msg);
      expect(existsSync(out)).toBe(false);
    });
  }
});
