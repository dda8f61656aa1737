/**
 * `peft train --optimizer galore|galore-8bit|natural-galore|owlore` end to end (the built binary) on the
 * tiny Llama with LoRA: GaLore projects the LoRA factors (r = 8, GaLore rank 4, `--set rank=4` reaches
 * the optimizer while `--set r=8` reaches LoRA), the loss goes down, the checkpoint holds the bases,
 * moments and steps, and an interrupted run resumed from it gives identical losses and adapter bytes.
 * The other optimizers train too (OwLore on one sampled layer), and a bad optimizer option is exit 2.
 */
import { generateTinyLlama, SafetensorsFile } from '@peft/core-tensor';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { listing, peft, tempDir } from './helpers.js';

let work: string;
let base: string;
let data: string;
const COMMON = ['--steps', '8', '--batch', '4', '--seq-len', '32', '--lr', '2e-2', '--set', 'r=8', '--save-every', '4', '--seed', '3', '--json'];
const GALORE = ['--optimizer', 'galore', '--set', 'rank=4', '--set', 'update_proj_gap=3', '--set', 'scale=1'];

const losses = (dir: string): number[] =>
  readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => 'loss' in r).map((r) => r.loss);

beforeAll(async () => {
  work = tempDir('peft-train-galore-');
  base = join(work, 'base');
  await generateTinyLlama(base, { preset: 'tiny', seed: 5 });
  data = join(work, 'rows.jsonl');
  const words = ['red', 'green', 'blue', 'cyan'];
  writeFileSync(data, Array.from({ length: 16 }, (_, i) => JSON.stringify({ prompt: `Shout: ${words[i % 4]} =>`, completion: ` ${words[i % 4].toUpperCase()}` })).join('\n') + '\n');
});

describe('peft train --optimizer galore (LoRA factors projected)', () => {
  const full = () => join(work, 'galore');

  it('trains: the loss goes down and the checkpoint holds GaLore state', async () => {
    const r = await peft(['train', base, '--data', data, '--out', full(), ...GALORE, ...COMMON]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ steps: 8, stoppedBy: 'done', method: 'lora' });
    const l = losses(full());
    expect(l).toHaveLength(8);
    expect(l[7]).toBeLessThan(l[0] - 0.1); // 5.80 -> 5.55 here (AdamW: 5.47)
    const f = await SafetensorsFile.open(join(full(), 'checkpoints/step-8/optimizer.safetensors'));
    const q = f.tensors.filter((t) => t.name.startsWith('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight.'));
    await f.close();
    expect(Object.fromEntries(q.map((t) => [t.name.split('.').pop(), t.shape]))).toEqual({
      exp_avg: [4, 64], exp_avg_sq: [4, 64], ortho_matrix: [8, 4], // A [8, 64]: the smaller side (8) projected to 4
    });
    const state = JSON.parse(readFileSync(join(full(), 'checkpoints/step-8/trainer_state.json'), 'utf8'));
    expect(state.optimizer).toMatchObject({ optimizer: 'galore', 'group.default:galore.rank': 4, 'group.default:galore.update_proj_gap': 3 });
  });

  it('an interrupted run resumed from its step-4 checkpoint equals the uninterrupted one', async () => {
    const cut = join(work, 'galore-cut');
    expect((await peft(['train', base, '--data', data, '--out', cut, ...GALORE, ...COMMON])).exitCode).toBe(0);
    rmSync(join(cut, 'checkpoints/step-8'), { recursive: true });
    rmSync(join(cut, 'adapter'), { recursive: true });
    const r = await peft(['train', base, '--data', data, '--out', cut, '--resume', ...GALORE, ...COMMON]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(losses(cut)).toEqual(losses(full()));
    expect(readFileSync(join(cut, 'adapter/adapter_model.safetensors'))).toEqual(readFileSync(join(full(), 'adapter/adapter_model.safetensors')));
  });

  it('refuses to resume with another rank (exit 2)', async () => {
    const r = await peft(['train', base, '--data', data, '--out', full(), '--resume', ...GALORE, ...COMMON, '--set', 'rank=3']);
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toMatch(/rank/);
  });
});

describe('the other optimizers train', () => {
  it.each([
    ['galore-8bit', ['--set', 'rank=4', '--set', 'min_8bit_size=256']],
    ['natural-galore', ['--set', 'rank=4', '--set', 'natural_history=3']],
    ['owlore', ['--set', 'rank=4', '--set', 'active_layers=1', '--set', 'resample_every=2', '--set', 'prob_mode=uniform']],
  ])('%s', async (name, sets) => {
    const out = join(work, name);
    const r = await peft(['train', base, '--data', data, '--out', out, '--optimizer', name, ...sets, ...COMMON]);
    expect(r.exitCode, r.stderr).toBe(0);
    const l = losses(out);
    expect(l[7]).toBeLessThan(l[0]);
  });

  it('a bad optimizer option is exit 2 with one line, nothing written', async () => {
    const out = join(work, 'bad');
    const r = await peft(['train', base, '--data', data, '--out', out, '--optimizer', 'galore', '--set', 'rank=0', '--steps', '2']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/rank/);
    expect(listing(work)).not.toContain('bad');
  });
});
