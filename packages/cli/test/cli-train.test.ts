/**
 * `peft train` run as users run it (the built binary): it trains LoRA on a full and a 4-bit base and
 * writes a PEFT adapter that `peft eval --adapter` applies; an interrupted run resumed with --resume
 * gives the losses of an uninterrupted one; recipes hold the same settings as flags; bad options and
 * bad data are exit 2 with nothing written.
 */
import { generateTinyLlama } from '@peft/core-tensor';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { listing, peft, tempDir } from './helpers.js';

let work: string;
let base: string;
let nf4: string;
let data: string;
const WORDS = ['cat', 'dog', 'bird', 'fish', 'cow', 'pig', 'hen', 'fox'];
const COMMON = ['--steps', '6', '--batch', '4', '--seq-len', '32', '--set', 'r=4', '--set', 'lora_dropout=0.1', '--json'];

function losses(dir: string): number[] {
  return readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => 'loss' in r).map((r) => r.loss);
}

beforeAll(async () => {
  work = tempDir('peft-train-');
  base = join(work, 'base');
  nf4 = join(work, 'base-nf4');
  await generateTinyLlama(base, { preset: 'tiny', seed: 3 });
  data = join(work, 'upper.jsonl');
  writeFileSync(data, Array.from({ length: 40 }, (_, i) => JSON.stringify({ prompt: `Upper: ${WORDS[i % 8]} =>`, completion: ` ${WORDS[i % 8].toUpperCase()}` })).join('\n') + '\n');
  expect((await peft(['quantize', base, '--out', nf4])).exitCode).toBe(0);
});

describe('peft train', () => {
  it('trains LoRA and writes a PEFT adapter that eval applies', async () => {
    const out = join(work, 'run');
    const r = await peft(['train', base, '--data', data, '--out', out, '--lr', '1e-2', ...COMMON]);
    expect(r.exitCode, r.stderr).toBe(0);
    const s = r.json();
    expect(s).toMatchObject({ steps: 6, stoppedBy: 'done', method: 'lora', adaptedModules: 4, data: { format: 'prompt_completion', trainRows: 40 } });
    expect(s.trainableParams).toBe(2 * 4 * ((64 + 64) + (64 + 32))); // r=4 on q [64,64] and v [32,64] (GQA) of 2 layers
    const l = losses(out);
    expect(l).toHaveLength(6);
    expect(l[5]).toBeLessThan(l[0]);
    const config = JSON.parse(readFileSync(join(out, 'adapter/adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 8, base_model_name_or_path: 'base', inference_mode: true });
    expect(existsSync(join(out, 'loss.svg'))).toBe(true);
    const before = (await peft(['eval', base, '--data', data, '--no-exact-match', '--json'])).json();
    const after = await peft(['eval', base, '--data', data, '--no-exact-match', '--adapter', join(out, 'adapter'), '--json']);
    expect(after.exitCode, after.stderr).toBe(0);
    expect(after.json().loss).toBeLessThan(before.loss);
  });

  it('trains QLoRA on a 4-bit base', async () => {
    const out = join(work, 'qrun');
    const r = await peft(['train', nf4, '--data', data, '--out', out, '--lr', '1e-2', ...COMMON]);
    expect(r.exitCode, r.stderr).toBe(0);
    const l = losses(out);
    expect(l[5]).toBeLessThan(l[0]);
  });

  it('resumes an interrupted run with identical losses', async () => {
    const full = join(work, 'full');
    const cut = join(work, 'cut');
    expect((await peft(['train', base, '--data', data, '--out', full, '--save-every', '3', ...COMMON])).exitCode).toBe(0);
    // A run stopped after its step-3 checkpoint: train 3 of the 6 steps' schedule, then resume.
    expect((await peft(['train', base, '--data', data, '--out', cut, '--save-every', '3', ...COMMON])).exitCode).toBe(0);
    const { rmSync } = await import('node:fs');
    rmSync(join(cut, 'checkpoints/step-6'), { recursive: true });
    rmSync(join(cut, 'adapter'), { recursive: true });
    const r = await peft(['train', base, '--data', data, '--out', cut, '--save-every', '3', '--resume', ...COMMON]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(losses(cut)).toEqual(losses(full));
    expect(readFileSync(join(cut, 'adapter/adapter_model.safetensors'))).toEqual(readFileSync(join(full, 'adapter/adapter_model.safetensors')));
  });

  it('reads a recipe; flags win', async () => {
    const recipe = join(work, 'recipe.yaml');
    writeFileSync(recipe, `method: lora\noptions:\n  r: 2\n  target_modules: [q_proj, k_proj, v_proj]\n  rank_pattern: {k_proj: 1}\n  init_lora_weights: gaussian\ndata: ${data}\nsteps: 2\nbatch: 4\nseq_len: 32\n`);
    const r = await peft(['train', base, '--recipe', recipe, '--out', join(work, 'rec'), '--steps', '1', '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ steps: 1, adaptedModules: 6, trainableParams: 2 * (2 * (64 + 64) + (1 + 2) * (64 + 32)) }); // q [64,64] r=2, k [32,64] r=1, v [32,64] r=2 (GQA), 2 layers
    writeFileSync(recipe, 'learning_rate: 3\n');
    const bad = await peft(['train', base, '--recipe', recipe, '--data', data, '--out', join(work, 'rec2'), '--steps', '1']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/unknown key "learning_rate" \(valid: .*lr/);
  });

  it('refuses bad options and bad data with exit 2, writing nothing', async () => {
    const out = join(work, 'bad');
    const cases: [string[], RegExp][] = [
      [['--set', 'r=0'], /invalid value "0" for option "r"/],
      [['--set', 'rank=4'], /unknown option "rank" \(valid: r, lora_alpha/],
      [['--set', 'use_dora=maybe'], /use_dora/],
      [['--method', 'nope'], /unknown method "nope" \(available: [a-z, -]*\blora\b/],
      [['--schedule', 'cosine', '--lr', 'fast'], /--lr must be a number/],
      [['--val-split', '0.7'], /val-split must be in \[0, 0.5\)/],
    ];
    for (const [extra, message] of cases) {
      const r = await peft(['train', base, '--data', data, '--out', out, '--steps', '2', ...extra]);
      expect(r.exitCode, extra.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
    }
    const rows = join(work, 'rows.jsonl');
    writeFileSync(rows, '{"prompt": "a", "completion": "b"}\n{"prompt": 3}\n');
    const r = await peft(['train', base, '--data', rows, '--out', out, '--steps', '2']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/rows\.jsonl:2/);
    expect(listing(work)).not.toContain('bad');
  });
});
