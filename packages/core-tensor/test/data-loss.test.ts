/**
 * The label convention end to end: Llama.loss on batches from data/ equals a cross-entropy computed
 * here in float64 from the model's logits, where position t is scored on the INPUT token t + 1 wherever
 * labels[t + 1] != -100, averaged over exactly batch.trainedTokens positions. Pre-shifted labels,
 * a scored position 0 or a scored pad would each change the number.
 */
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { noGrad } from '../src/ops/tape.js';
import { batchesFor, loadDataset, padIdFor, type Batch } from '../src/data/index.js';
import { generateTinyLlama } from '../src/fixtures/tiny-llama.js';
import { Llama } from '../src/models/llama.js';
import { tidy } from '../src/tensor/scope.js';
import { Tokenizer } from '../src/tokenizer/index.js';

const FIX = join(import.meta.dirname, 'fixtures', 'data');
let dir: string;
let model: Llama;
let tok: Tokenizer;
beforeAll(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'peft-data-loss-'));
  await generateTinyLlama(dir, { preset: 'tiny' });
  model = await Llama.fromFolder(dir);
  tok = await Tokenizer.fromFolder(dir);
});
afterAll(async () => {
  model?.dispose();
  await fsp.rm(dir, { recursive: true, force: true });
});

/** Mean NLL of input token t+1 at position t over the positions whose label t+1 is kept, and their count. */
function referenceLoss(batch: Batch): { loss: number; count: number } {
  const { B, T } = batch;
  const V = model.config.vocabSize;
  const logits = tidy(() => noGrad(() => model.logits(model.forward({ data: batch.inputIds, shape: [B, T] }).hidden).toArray()));
  let sum = 0;
  let count = 0;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t + 1 < T; t++) {
      const label = batch.labels[b * T + t + 1];
      if (label === -100) continue;
      const target = batch.inputIds[b * T + t + 1];
      expect(label).toBe(target); // HF convention: the label is the token at its own position
      const row = logits.slice((b * T + t) * V, (b * T + t + 1) * V);
      const max = Math.max(...row);
      const lse = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
      sum += lse - row[target];
      count++;
    }
  }
  return { loss: sum / count, count };
}

describe('Llama.loss on data/ batches', () => {
  it.each([
    ['padded prompt/completion', 'prompt-completion.jsonl', false],
    ['packed text (rows start mid-example with a trained position 0)', 'text.jsonl', true],
  ] as const)('%s: the mean over trainedTokens', async (_name, file, packing) => {
    const seqLen = 12;
    const ds = await loadDataset(join(FIX, file), tok, { seqLen, seed: 1, packing });
    const [batch] = batchesFor(ds.train, { batchSize: 3, seqLen, seed: 1, epoch: 0, packing, padId: padIdFor(tok) });
    expect(batch.B).toBe(3);
    if (packing) expect(batch.labels[seqLen]).not.toBe(-100); // row 1's position 0 carries a label that must not count
    else expect(batch.labels.includes(-100)).toBe(true);
    const ref = referenceLoss(batch);
    expect(ref.count).toBe(batch.trainedTokens);
    const got = tidy(() => noGrad(() => model.loss({ data: batch.inputIds, shape: [batch.B, batch.T] }, { data: batch.labels, shape: [batch.B, batch.T] }).item()));
    expect(Math.abs(got - ref.loss) / ref.loss).toBeLessThan(1e-5);
  });
});
