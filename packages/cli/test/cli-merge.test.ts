/**
 * `peft merge` and `peft compress` run as users run them: a flag-built merge equals its recipe byte
 * for byte, --check reports mismatches as exit 2, folding an adapter gives the loss of base + adapter,
 * adapter merges and ComPEFT containers round-trip through the CLI, and bad input writes nothing.
 */
import { generateTinyLlama } from '@peft/core-tensor';
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
    expect(lin.json().relError).toBeGreaterThanOrEqual(0);
  });
});

describe('peft compress', () => {
  it('compresses, inspects and decompresses an adapter', async () => {
    const out = join(work, 'packed');
    const r = await peft(['compress', adapterA, '--density', '0.1', '--out', out, '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ method: 'compeft', density: expect.any(Number) });
    expect(r.json().ratio).toBeGreaterThan(5); // a tiny adapter: the header weighs; the 25x target is shown at realistic size in plugin-merge
    const shown = await peft(['inspect', out]);
    expect(shown.stdout).toMatch(/compressed\s+compeft density=0\.1 .*x smaller than fp16/);
    const back = await peft(['compress', '--decompress', out, '--out', join(work, 'restored'), '--json']);
    expect(back.exitCode, back.stderr).toBe(0);
    expect(await evalLoss([m(1), '--adapter', join(work, 'restored')])).toBeGreaterThan(0);
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
