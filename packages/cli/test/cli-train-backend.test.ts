/**
 * `peft train --backend reference` end to end (the built binary): LoRA trains on the TS reference kernels
 * (the optimizer included; train-backend-calls.test.ts in core counts that no native kernel runs), writes
 * the adapter, agrees with `--backend native` to f32 rounding, and an interrupted reference run resumed
 * from its checkpoint (optimizer.safetensors with each state tensor's shape) gives identical losses.
 */
import { generateTinyLlama, SafetensorsFile } from '@peft/core-tensor';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { peft, tempDir } from './helpers.js';

let work: string;
let base: string;
let data: string;
const COMMON = ['--steps', '4', '--batch', '4', '--seq-len', '32', '--lr', '1e-2', '--set', 'r=4', '--save-every', '2', '--json'];

const losses = (dir: string): number[] =>
  readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => 'loss' in r).map((r) => r.loss);

async function tensorsOf(file: string): Promise<Map<string, Float32Array>> {
  const f = await SafetensorsFile.open(file);
  const out = new Map<string, Float32Array>();
  for (const t of f.tensors) {
    const b = await f.read(t.name);
    out.set(t.name, new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4));
  }
  await f.close();
  return out;
}

beforeAll(async () => {
  work = tempDir('peft-train-backend-');
  base = join(work, 'base');
  await generateTinyLlama(base, { preset: 'tiny', seed: 5 });
  data = join(work, 'rows.jsonl');
  const words = ['red', 'green', 'blue', 'cyan'];
  writeFileSync(data, Array.from({ length: 16 }, (_, i) => JSON.stringify({ prompt: `Shout: ${words[i % 4]} =>`, completion: ` ${words[i % 4].toUpperCase()}` })).join('\n') + '\n');
});

describe('peft train --backend reference', () => {
  it('trains, writes the adapter and agrees with --backend native', async () => {
    const ref = join(work, 'ref');
    const nat = join(work, 'native');
    const r = await peft(['train', base, '--data', data, '--out', ref, '--backend', 'reference', ...COMMON]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ steps: 4, stoppedBy: 'done', method: 'lora' });
    const n = await peft(['train', base, '--data', data, '--out', nat, '--backend', 'native', ...COMMON]);
    expect(n.exitCode, n.stderr).toBe(0);
    const [lr, ln] = [losses(ref), losses(nat)];
    expect(lr).toHaveLength(4);
    expect(lr[3]).toBeLessThan(lr[0]);
    lr.forEach((l, i) => expect(Math.abs(l - ln[i]), `loss ${i + 1}`).toBeLessThan(1e-4 * ln[i]));
    const [a, b] = await Promise.all([ref, nat].map((d) => tensorsOf(join(d, 'adapter/adapter_model.safetensors'))));
    expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
    for (const [name, x] of a) {
      const y = b.get(name)!;
      const scale = Math.max(...Array.from(y, Math.abs));
      x.forEach((v, i) => expect(Math.abs(v - y[i]), `${name}[${i}]`).toBeLessThan(1e-3 * scale));
    }
  });

  it('resumes an interrupted reference run with identical losses', async () => {
    const full = join(work, 'ref'); // the run above: checkpoints at steps 2 and 4
    const cut = join(work, 'cut');
    expect((await peft(['train', base, '--data', data, '--out', cut, '--backend', 'reference', ...COMMON])).exitCode).toBe(0);
    rmSync(join(cut, 'checkpoints/step-4'), { recursive: true });
    rmSync(join(cut, 'adapter'), { recursive: true });
    const r = await peft(['train', base, '--data', data, '--out', cut, '--backend', 'reference', '--resume', ...COMMON]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(losses(cut)).toEqual(losses(full));
    expect(readFileSync(join(cut, 'adapter/adapter_model.safetensors'))).toEqual(readFileSync(join(full, 'adapter/adapter_model.safetensors')));
  });
});
