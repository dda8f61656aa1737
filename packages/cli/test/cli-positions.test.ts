/**
 * One positions rule in `peft generate`, `peft eval` and `peft train` (issue 9, item 7), run as
 * users run it (the built binary) on a model with max_position_embeddings 512: generate -n 2000 stops
 * at the limit and says so (stderr note, stopReason in --json) instead of running past it; a
 * 100k-character prompt is exit 2 at once (it ran > 120 s); --seq-len above the limit is exit 2 in
 * eval (it was accepted) as in train; the train default is clamped to a smaller limit.
 */
import { generateTinyLlama } from '@peft/core-tensor';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { peft, tempDir } from './helpers.js';

let work: string;
let m512: string;
let m64: string;
let data: string;

beforeAll(async () => {
  work = tempDir('peft-positions-');
  m512 = join(work, 'm512');
  m64 = join(work, 'm64');
  await generateTinyLlama(m512, { preset: 'tiny', seed: 3, maxPositionEmbeddings: 512 });
  await generateTinyLlama(m64, { preset: 'tiny', seed: 3, maxPositionEmbeddings: 64 });
  expect(JSON.parse(readFileSync(join(m512, 'config.json'), 'utf8')).max_position_embeddings).toBe(512);
  data = join(work, 'rows.jsonl');
  writeFileSync(data, ['cat', 'dog', 'fox', 'hen'].map((w) => JSON.stringify({ prompt: `Upper: ${w} =>`, completion: ` ${w.toUpperCase()}` })).join('\n') + '\n');
});

describe('positions (max_position_embeddings 512)', () => {
  it('generate -n 2000 stops when prompt + new tokens fill the positions, with a note and stopReason', async () => {
    const json = await peft(['generate', m512, '--prompt', 'Once upon a time', '-n', '2000', '--json']);
    expect(json.exitCode, json.stderr).toBe(0);
    const r = json.json();
    expect(r.stopReason).toBe('max_position_embeddings');
    expect(r.maxPositions).toBe(512);
    expect(r.promptTokenIds.length + r.tokenIds.length).toBe(512);
    const text = await peft(['generate', m512, '--prompt', 'Once upon a time', '-n', '2000']);
    expect(text.exitCode, text.stderr).toBe(0);
    expect(text.stdout).toBe(r.text);
    expect(text.stderr.trim()).toBe(`note: stopped after ${r.tokenIds.length} new tokens: the prompt's ${r.promptTokenIds.length} and these fill max_position_embeddings (512)`);
  });

  it('a 100k-character prompt is exit 2 before any forward pass (it ran > 120 s)', async () => {
    const t0 = performance.now();
    const r = await peft(['generate', m512, '--prompt', 'word '.repeat(20_000), '-n', '5']);
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/the prompt is \d+ tokens; the model has max_position_embeddings 512, so no token can follow it/);
    expect((performance.now() - t0) / 1000).toBeLessThan(20);
  });

  it('--seq-len above it is exit 2 in eval (it was accepted) and in train, with the same message', async () => {
    const ev = await peft(['eval', m512, '--data', data, '--seq-len', '100000']);
    const tr = await peft(['train', m512, '--data', data, '--out', join(work, 'run'), '--steps', '1', '--seq-len', '100000']);
    for (const r of [ev, tr]) {
      expect(r.exitCode, r.stderr).toBe(2);
      expect(r.stderr.trim()).toBe(`Error: ${join(m512, 'config.json')}: seq-len 100000 exceeds max_position_embeddings 512`);
    }
    const ok = await peft(['eval', m512, '--data', data, '--seq-len', '512', '--no-exact-match', '--json']);
    expect(ok.exitCode, ok.stderr).toBe(0);
  });

  it('train\'s default seq-len is min(512, max_position_embeddings) (it refused a 64-position model)', async () => {
    const r = await peft(['train', m64, '--data', data, '--out', join(work, 'run64'), '--steps', '1', '--batch', '2', '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json().steps).toBe(1);
  });
});
