/**
 * `peft merge` and `peft compress` run as users run them: a flag-built merge equals its recipe byte
 * for byte, --check reports mismatches as exit 2, folding an adapter gives the loss of base + adapter,
 * adapter merges and ComPEFT containers round-trip through the CLI, and bad input writes nothing.
 */
import { asF32, generateTinyLlama, readPeftAdapter, referenceBackend, toF32 } from '@peft/core-tensor';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { listing, peft, tempDir } from './helpers.js';

let work: string;
const m = (i: number) => join(work, `m${i}`);
let data: string;
let adapterA: string;
let adapterB: string;

async function trainAdapter(name: string, seed: number): Promise<string> {
  const out = join(work, name);
  const r = await peft(['train', m(1), '--data', data, '--out', out, '--steps', '2', '--batch', '4', '--lr', '5e-2', '--seed', String(seed),
    '--seq-len', '32', '--set', 'r=4', '--set', 'target_modules=q_proj,v_proj,down_proj', '--json']);
  expect(r.exitCode, r.stderr).toBe(0);
  return join(out, 'adapter');
}

beforeAll(async () => {
  work = tempDir('peft-merge-');
  for (const s of [1, 2, 3]) await generateTinyLlama(m(s), { preset: 'tiny', seed: s });
  await generateTinyLlama(join(work, 'qwen'), { preset: 'tiny', seed: 4, modelType: 'qwen2' });
  data = join(work, 'rows.jsonl');
  writeFileSync(data, Array.from({ length: 16 }, (_, i) => JSON.stringify({ prompt: `Count ${i}:`, completion: ` ${i + 1}` })).join('\n') + '\n');
  adapterA = await trainAdapter('a', 1);
  adapterB = await trainAdapter('b', 2);
});

const evalLoss = async (args: string[]) => {
  const r = await peft(['eval', ...args, '--data', data, '--no-exact-match', '--json']);
  expect(r.exitCode, r.stderr).toBe(0);
  return r.json().loss as number;
};

describe('peft merge', () => {
  it('a TIES merge from flags equals the same recipe, byte for byte', async () => {
    const flags = await peft(['merge', '--method', 'ties', '--base', m(1), '--model', m(2), '--model', m(3), '--weight', '0.7', '--weight', '0.3',
      '--density', '0.5', '--out', join(work, 'ties-flags'), '--json']);
    expect(flags.exitCode, flags.stderr).toBe(0);
    const recipe = join(work, 'ties.yml');
    writeFileSync(recipe, [
      'merge_method: ties', `base_model: ${m(1)}`, 'models:', `  - model: ${m(2)}`, '    parameters: {weight: 0.7}',
      `  - model: ${m(3)}`, '    parameters: {weight: 0.3}', 'parameters:', '  density: 0.5', '',
    ].join('\n'));
    const fromRecipe = await peft(['merge', recipe, '--out', join(work, 'ties-recipe'), '--json']);
    expect(fromRecipe.exitCode, fromRecipe.stderr).toBe(0);
    expect(readFileSync(join(work, 'ties-recipe/model.safetensors'))).toEqual(readFileSync(join(work, 'ties-flags/model.safetensors')));
    writeFileSync(recipe, `merge_method: ties\nbase_model: ${m(1)}\nmodels:\n  - model: ${m(2)}\nslices: []\n`);
    const bad = await peft(['merge', recipe, '--out', join(work, 'never')]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/slices/);
  });

  it('--check reports a mismatch as exit 2 and bad parameters write nothing', async () => {
    const ok = await peft(['merge', '--check', '--method', 'linear', '--model', m(1), '--model', m(2), '--weight', '1', '--json']);
    expect(ok.exitCode, ok.stderr).toBe(0);
    const mismatch = await peft(['merge', '--check', '--method', 'linear', '--model', m(1), '--model', join(work, 'qwen'), '--weight', '1']);
    expect(mismatch.exitCode).toBe(2);
    expect(mismatch.stderr.trim().split('\n')).toHaveLength(1);
    for (const extra of [['--density', '1.5'], ['--weight', '1', '--weight', '-1']]) {
      const r = await peft(['merge', '--method', extra[0] === '--density' ? 'ties' : 'linear', '--base', m(1), '--model', m(2), '--model', m(3),
        ...extra, '--out', join(work, 'bad-out')]);
      expect(r.exitCode, r.stderr).toBe(2);
    }
    expect(listing(work)).not.toContain('bad-out');
  });

  it('folding an adapter gives the loss of base + adapter', async () => {
    const r = await peft(['merge', m(1), '--adapter', adapterA, '--dtype', 'f32', '--out', join(work, 'folded'), '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const withAdapter = await evalLoss([m(1), '--adapter', adapterA]);
    expect(withAdapter).not.toBeCloseTo(await evalLoss([m(1)]), 4);
    expect(await evalLoss([join(work, 'folded')])).toBeCloseTo(withAdapter, 5);
  });

  it('cat-merges two adapters exactly (rank 8) and linear-merges with an SVD report', async () => {
    const cat = await peft(['merge', '--adapter', adapterA, '--adapter', adapterB, '--method', 'cat', '--out', join(work, 'cat'), '--json']);
    expect(cat.exitCode, cat.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(work, 'cat/adapter_config.json'), 'utf8'))).toMatchObject({ r: 8, lora_alpha: 8 });
    const both = await peft(['merge', m(1), '--adapter', adapterA, '--adapter', adapterB, '--dtype', 'f32', '--out', join(work, 'folded-ab'), '--json']);
    expect(both.exitCode, both.stderr).toBe(0);
    expect(await evalLoss([m(1), '--adapter', join(work, 'cat')])).toBeCloseTo(await evalLoss([join(work, 'folded-ab')]), 5);
    const lin = await peft(['merge', '--adapter', adapterA, '--adapter', adapterB, '--method', 'linear', '--weight', '0.5', '--weight', '0.5',
      '--out', join(work, 'lin'), '--json']);
    expect(lin.exitCode, lin.stderr).toBe(0);
    // The reported error, recomputed: each module's 0.5 ΔW_a + 0.5 ΔW_b (rank 8) against the rank-4 ΔW written.
    const [a, b, merged] = await Promise.all([adapterA, adapterB, join(work, 'lin')].map(denseDeltas));
    let err2 = 0, norm2 = 0;
    for (const [module, got] of merged) {
      const want = a.get(module)!.map((v, i) => 0.5 * v + 0.5 * b.get(module)![i]);
      want.forEach((v, i) => { err2 += (got[i] - v) ** 2; norm2 += v ** 2; });
    }
    expect(merged.size).toBe(6);
    expect(Math.sqrt(err2 / norm2)).toBeGreaterThan(1e-3); // rank 4 cannot hold the sum: truncation shows
    expect(Math.abs(lin.json().relError - Math.sqrt(err2 / norm2))).toBeLessThan(1e-4);
  });
});

/** module -> s · B · A of a LoRA adapter without rank / alpha patterns, as f64 [out * in]. */
async function denseDeltas(dir: string): Promise<Map<string, Float64Array>> {
  const { config, tensors } = await readPeftAdapter(dir);
  expect({ ...(config.rank_pattern as object), ...(config.alpha_pattern as object) }).toEqual({});
  const s = (config.lora_alpha as number) / (config.use_rslora ? Math.sqrt(config.r as number) : (config.r as number));
  const out = new Map<string, Float64Array>();
  for (const [key, t] of tensors) {
    if (!key.endsWith('.lora_A.weight')) continue;
    const module = key.slice('base_model.model.'.length, -'.lora_A.weight'.length);
    const tB = tensors.get(key.replace('lora_A', 'lora_B'))!;
    expect([t.dtype, tB.dtype]).toEqual(['F32', 'F32']);
    const A = asF32(t.data), B = asF32(tB.data);
    const [r, inF] = t.shape;
    const outF = B.length / r;
    const d = new Float64Array(outF * inF);
    for (let i = 0; i < outF; i++) for (let k = 0; k < r; k++) for (let j = 0; j < inF; j++) d[i * inF + j] += s * B[i * r + k] * A[k * inF + j];
    out.set(module, d);
  }
  return out;
}

describe('peft compress', () => {
  it('compresses, inspects and decompresses an adapter', async () => {
    const out = join(work, 'packed');
    const r = await peft(['compress', adapterA, '--density', '0.1', '--out', out, '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json().method).toBe('compeft');
    // ComPEFT keeps the top int(0.1 · n) magnitudes of the n adapter values (ties at the threshold: one more).
    const n = [...(await readPeftAdapter(adapterA)).tensors.values()].reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
    expect(Math.abs(r.json().density * n - Math.trunc(0.1 * n))).toBeLessThanOrEqual(1);
    expect(r.json().ratio).toBeGreaterThan(5); // a tiny adapter: the header weighs; the 25x target is shown at realistic size in plugin-merge
    const shown = await peft(['inspect', out]);
    expect(shown.stdout).toMatch(/compressed\s+compeft density=0\.1 .*x smaller than fp16/);
    const back = await peft(['compress', '--decompress', out, '--out', join(work, 'restored'), '--json']);
    expect(back.exitCode, back.stderr).toBe(0);
    // The restored adapter is ComPEFT's ternary update, recomputed here over all n values: the top
    // int(0.1 n) + 1 magnitudes keep their sign at the scale std (unbiased), every other value is 0.
    const orig = (await readPeftAdapter(adapterA)).tensors;
    const restored = (await readPeftAdapter(join(work, 'restored'))).tensors;
    const all = [...orig.values()].flatMap((t) => [...toF32(referenceBackend, t)]);
    const mean = all.reduce((s, v) => s + v, 0) / all.length;
    const std = Math.sqrt(all.reduce((s, v) => s + (v - mean) ** 2, 0) / (all.length - 1));
    const threshold = all.map(Math.abs).sort((x, y) => x - y)[all.length - Math.trunc(0.1 * all.length) - 1];
    let wrong = 0;
    for (const [name, t] of orig) {
      const got = toF32(referenceBackend, restored.get(name)!);
      toF32(referenceBackend, t).forEach((v, i) => {
        const want = Math.abs(v) >= threshold ? Math.sign(v) * std : 0;
        if (!(Math.abs(got[i] - want) <= 1e-6 * std)) wrong++;
      });
    }
    expect(restored.size).toBe(orig.size);
    expect(wrong).toBe(0);
    await evalLoss([m(1), '--adapter', join(work, 'restored')]); // and peft eval loads it (exit 0)
  });

  it('refuses a density outside (0, 1] and a corrupted container', async () => {
    const bad = await peft(['compress', adapterA, '--density', '0', '--out', join(work, 'nope')]);
    expect(bad.exitCode).toBe(2);
    const out = join(work, 'packed2');
    expect((await peft(['compress', adapterA, '--out', out])).exitCode).toBe(0);
    const file = join(out, listing(out).find((f) => f.endsWith('.peftz'))!);
    const bytes = readFileSync(file);
    bytes[bytes.length - 5] ^= 0xff;
    writeFileSync(file, bytes);
    const r = await peft(['compress', '--decompress', out, '--out', join(work, 'nope')]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(listing(work)).not.toContain('nope');
  });
});
