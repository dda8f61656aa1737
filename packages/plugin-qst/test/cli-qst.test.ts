/**
 * `peft` with the side methods, run as users run it (the built binary, child processes): `peft methods`
 * lists qst and lst with every option; `peft train --method qst` on an NF4 base writes a QST folder that
 * `peft inspect`, `peft eval --adapter` and `peft generate --adapter` read; `--resume` continues with
 * the losses of an uninterrupted run; `lst` trains on the float base; cache_features with cache_max_mb=0
 * keeps its features in OUT/feature-cache.bin and a resumed run reuses them; bad input is exit 2 with one
 * line on stderr and nothing written.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEMO_BASE as BASE, DEMO_DATA as DATA, FIXTURES, peft, tempDir } from './helpers.js';

const losses = (dir: string): number[] =>
  readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => 'loss' in r).map((r) => r.loss);
const COMMON = ['--data', join(DATA, 'train.jsonl'), '--batch', '8', '--seq-len', '32', '--lr', '2e-3', '--seed', '1', '--json'];

let work: string;
let nf4: string;
beforeAll(async () => {
  work = tempDir('qst-cli');
  nf4 = join(work, 'base-nf4');
  expect((await peft(['quantize', BASE, '--out', nf4])).exitCode).toBe(0);
});

describe('peft with qst / lst', () => {
  it('methods lists both with their options', async () => {
    const r = await peft(['methods']);
    expect(r.exitCode).toBe(0);
    for (const opt of ['r=<integer 1..inf> (default 16)', 'adapter_dim=', 'downsample=<adapter|linear|maxpool|avgpool> (default "adapter")', 'cache_features=', 'cache_max_mb=']) {
      expect(r.stdout).toContain(opt);
    }
    expect(r.stdout).toMatch(/\n {2}lst .*\n(.*\n)*.*gate_t=<number/);
  });

  it('trains QST on NF4; inspect, eval --adapter and generate --adapter read the folder', async () => {
    const out = join(work, 'qst');
    const r = await peft(['train', nf4, '--out', out, '--method', 'qst', '--set', 'r=4', '--steps', '12', ...COMMON]);
    expect(r.exitCode, r.stderr).toBe(0);
    const s = r.json();
    expect(s).toMatchObject({ steps: 12, stoppedBy: 'done', method: 'qst', adaptedModules: 4 });
    const cfg = JSON.parse(readFileSync(join(out, 'adapter/adapter_config.json'), 'utf8'));
    expect(cfg).toMatchObject({ peft_type: 'QST', base_model_name_or_path: 'base-nf4', r: 4, adapter_dim: 16, downsample: 'adapter', base_hidden_size: 128 });
    const ins = await peft(['inspect', join(out, 'adapter'), '--json']);
    expect(ins.exitCode, ins.stderr).toBe(0);
    expect(ins.json()).toMatchObject({ kind: 'adapter', parameters: s.trainableParams, adapter: { peftType: 'QST', r: 4 } });
    const evalArgs = ['eval', nf4, '--data', join(DATA, 'test.jsonl'), '--batch', '32', '--json'];
    const plain = await peft(evalArgs);
    const adapted = await peft([...evalArgs, '--adapter', join(out, 'adapter')]);
    expect(adapted.exitCode, adapted.stderr).toBe(0);
    expect(adapted.json().loss).not.toBeCloseTo(plain.json().loss, 3);
    const gen = ['generate', nf4, '--adapter', join(out, 'adapter'), '--prompt', 'Add one: 417 =>', '-n', '6', '--json'];
    const g1 = await peft(gen);
    expect(g1.exitCode, g1.stderr).toBe(0);
    expect(g1.json().tokenIds.length).toBeGreaterThan(0);
    expect((await peft(gen)).json().tokenIds).toEqual(g1.json().tokenIds);
  });

  it('--resume continues with the losses of an uninterrupted run', async () => {
    const [full, cut] = [join(work, 'full'), join(work, 'cut')];
    const args = ['--method', 'qst', '--set', 'r=4', '--set', 'downsample=maxpool', '--steps', '8', '--save-every', '4', ...COMMON];
    expect((await peft(['train', nf4, '--out', full, ...args])).exitCode).toBe(0);
    expect((await peft(['train', nf4, '--out', cut, ...args])).exitCode).toBe(0);
    rmSync(join(cut, 'checkpoints/step-8'), { recursive: true });
    rmSync(join(cut, 'adapter'), { recursive: true });
    const r = await peft(['train', nf4, '--out', cut, '--resume', ...args]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(losses(cut)).toEqual(losses(full));
    expect(readFileSync(join(cut, 'adapter/adapter_model.safetensors'))).toEqual(readFileSync(join(full, 'adapter/adapter_model.safetensors')));
  });

  it('lst trains on the float base; cache_features spills to OUT/feature-cache.bin and a resumed run reuses it', async () => {
    const out = join(work, 'lst');
    const args = ['--method', 'lst', '--set', 'r=4', '--set', 'downsample=avgpool', '--set', 'cache_features=true', '--set', 'cache_max_mb=0', ...COMMON];
    const r = await peft(['train', BASE, '--out', out, '--steps', '4', '--save-every', '2', ...args]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(out, 'adapter/adapter_config.json'), 'utf8'))).toMatchObject({ peft_type: 'LST', gate_t: 0.1, cache_features: true });
    const bin = join(out, 'feature-cache.bin');
    const size = readFileSync(bin).length;
    expect(size).toBeGreaterThan(4 * 8 * 4 * 32 * 2); // 4 steps x 8 rows of 4 pooled rungs of 32, bf16
    rmSync(join(out, 'checkpoints/step-4'), { recursive: true });
    rmSync(join(out, 'adapter'), { recursive: true });
    const again = await peft(['train', BASE, '--out', out, '--steps', '4', '--save-every', '2', '--resume', ...args]);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(readFileSync(bin).length).toBe(size); // steps 3-4 read the rows the first session stored
    const e = await peft(['eval', BASE, '--data', join(DATA, 'test.jsonl'), '--adapter', join(out, 'adapter'), '--json']);
    expect(e.exitCode, e.stderr).toBe(0);
  });

  it('bad input is exit 2, one line on stderr, nothing written', async () => {
    const bad: [string[], RegExp][] = [
      [['train', nf4, '--method', 'qst', '--set', 'r=3', '--steps', '1'], /qst: r = 3 does not divide hidden_size 128/],
      [['train', nf4, '--method', 'qst', '--set', 'r=64', '--steps', '1'], /qst: r = 64 gives side hidden size 2, not a multiple of the 4 attention heads/],
      [['train', nf4, '--method', 'lst', '--set', 'r=4', '--steps', '1'], /lst trains on a full-precision base, but .* is nf4: use qst for a quantized one/],
      [['train', nf4, '--method', 'qst', '--set', 'downsample=conv', '--steps', '1'], /qst: invalid value "conv" for option "downsample"/],
    ];
    for (const [args, re] of bad) {
      const out = join(work, 'refused');
      const r = await peft([...args, '--out', out, ...COMMON.filter((a) => a !== '--json')]);
      expect(r.exitCode, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(re);
      expect(existsSync(out)).toBe(false);
    }
    const r = await peft(['eval', nf4, '--data', join(DATA, 'test.jsonl'), '--adapter', join(FIXTURES, 'qst_gqa/adapter')]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/the adapter was trained on a base with hidden_size 32, .*; this base has hidden_size 128/);
  });
});
