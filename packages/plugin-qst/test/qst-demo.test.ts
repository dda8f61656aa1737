/**
 * Learning: QST on the demo's task A (demo/data/task-a: "Add one: 417 =>" -> " 418", held-out numbers)
 * over the committed demo base quantized to NF4 by `peft quantize`, with the settings demo/README.md
 * reports (r=4, adapter downsample, AdamW lr 2e-3, 20 warmup steps, 400 steps of 16 rows, seed 1, the
 * QLoRA run's 5 % validation split): at least 90 % exact match on the 180 held-out rows, where the NF4
 * base alone scores 0.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEMO_BASE, DEMO_DATA, peft, tempDir } from './helpers.js';

describe('qst on the demo task A', () => {
  it('reaches >= 90 % held-out exact match on the NF4 demo base', async () => {
    const work = tempDir('qst-demo');
    const nf4 = join(work, 'base-nf4');
    expect((await peft(['quantize', DEMO_BASE, '--out', nf4])).exitCode).toBe(0);
    const train = await peft(['train', nf4, '--data', join(DEMO_DATA, 'train.jsonl'), '--out', join(work, 'qst'), '--method', 'qst', '--set', 'r=4',
      '--lr', '2e-3', '--warmup-steps', '20', '--steps', '400', '--batch', '16', '--seq-len', '32', '--seed', '1', '--val-split', '0.05',
      '--eval-every', '100', '--json']);
    expect(train.exitCode, train.stderr).toBe(0);
    const evalArgs = ['eval', nf4, '--data', join(DEMO_DATA, 'test.jsonl'), '--batch', '32', '--json'];
    expect((await peft(evalArgs)).json().exactMatches).toBe(0);
    const after = (await peft([...evalArgs, '--adapter', join(work, 'qst/adapter')])).json();
    expect(after.rows).toBe(180);
    expect(after.exactMatch).toBeGreaterThanOrEqual(0.9);
  }, 600_000);
});
