/**
 * data/ batching: right padding and trainedTokens on hand-made examples, packing into rows of exactly
 * seqLen with labels moving with their ids, seeded epoch shuffles (deterministic, epoch-dependent,
 * unbiased), and the seeded train/val split done before packing.
 */
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batchesFor, loadDataset, padIdFor, type Example } from '../src/data/index.js';
import { tokenizerConfigJson, tokenizerJson } from '../src/fixtures/tokenizer.js';
import { Tokenizer } from '../src/tokenizer/index.js';

const FIX = join(import.meta.dirname, 'fixtures', 'data');
const X = -100;
const EOS = 2;
const tok = new Tokenizer({ tokenizer: tokenizerJson(320) as Record<string, unknown>, config: tokenizerConfigJson(2048) as Record<string, unknown> });
const ex = (ids: number[], labels: number[], line: number): Example => ({ ids: Int32Array.from(ids), labels: Int32Array.from(labels), line });

let work: string;
beforeAll(async () => {
  work = await fsp.mkdtemp(join(tmpdir(), 'peft-batches-'));
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

describe('padded batches', () => {
  const examples = [
    ex([10, 11, 12], [10, 11, 12], 1), // all trained: 2 scored (position 0 never is)
    ex([20, 21, 22, 23, 24], [X, X, 22, 23, 24], 2), // 3 scored
    ex([30, 31], [X, 31], 3), // 1 scored
  ];

  it('right-pad each batch to its longest row with the pad id and label -100', () => {
    const batches = batchesFor(examples, { batchSize: 2, seqLen: 8, seed: 0, epoch: 0, shuffle: false, padId: 7 });
    expect(batches.map((b) => [b.B, b.T, b.trainedTokens])).toEqual([[2, 5, 5], [1, 2, 1]]);
    expect([...batches[0].inputIds]).toEqual([10, 11, 12, 7, 7, 20, 21, 22, 23, 24]);
    expect([...batches[0].labels]).toEqual([10, 11, 12, X, X, X, X, 22, 23, 24]);
    expect([...batches[1].inputIds]).toEqual([30, 31]);
    expect([...batches[1].labels]).toEqual([X, 31]);
  });

  it('refuse an example longer than seqLen and bad sizes', () => {
    expect(() => batchesFor(examples, { batchSize: 2, seqLen: 4, seed: 0, epoch: 0, padId: 0 })).toThrow(/line 2 has 5 tokens/);
    expect(() => batchesFor(examples, { batchSize: 0, seqLen: 8, seed: 0, epoch: 0, padId: 0 })).toThrow(/batch size/);
    expect(batchesFor([], { batchSize: 2, seqLen: 8, seed: 0, epoch: 0, padId: 0 })).toEqual([]);
  });

  it('pad with the tokenizer pad token, else EOS, else 0', () => {
    expect(padIdFor(tok)).toBe(EOS); // the fixture has pad_token null
    const withPad = new Tokenizer({ tokenizer: tokenizerJson(320) as Record<string, unknown>, config: { ...tokenizerConfigJson(2048), pad_token: '<unk>' } });
    expect(padIdFor(withPad)).toBe(0);
    const bare = new Tokenizer({ tokenizer: tokenizerJson(320) as Record<string, unknown>, config: { ...tokenizerConfigJson(2048), eos_token: null } });
    expect(padIdFor(bare)).toBe(0);
  });
});

describe('packing', () => {
  it('cuts the concatenated examples into rows of exactly seqLen; the tail row is padded', () => {
    const examples = [ex([1, 2, 3], [X, 2, 3], 1), ex([4, 5, 6, 7, 8], [X, X, 6, 7, 8], 2), ex([9, 10], [X, 10], 3)];
    const batches = batchesFor(examples, { batchSize: 2, seqLen: 4, seed: 0, epoch: 0, shuffle: false, packing: true, padId: 0 });
    expect(batches.map((b) => [b.B, b.T])).toEqual([[2, 4], [1, 4]]);
    expect([...batches[0].inputIds]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect([...batches[0].labels]).toEqual([X, 2, 3, X, X, 6, 7, 8]);
    expect([...batches[1].inputIds]).toEqual([9, 10, 0, 0]);
    expect([...batches[1].labels]).toEqual([X, 10, X, X]);
    // scored: row 0 positions 1..3 -> 2, 3 (2); row 1 -> 6, 7, 8 (3; its position-0 label is -100 anyway); row 2 -> 10
    expect(batches.map((b) => b.trainedTokens)).toEqual([5, 1]);
  });

  it('loads examples whole, each ending in one EOS (the chat separator unscored)', async () => {
    const text = await loadDataset(join(FIX, 'text.jsonl'), tok, { seqLen: 4, seed: 0, packing: true });
    expect(text.train).toHaveLength(4); // not split: the packer cuts rows
    for (const e of text.train) expect([e.ids.at(-1), e.ids.at(-2) === EOS]).toEqual([EOS, false]);
    const pc = await loadDataset(join(FIX, 'prompt-completion.jsonl'), tok, { seqLen: 4, seed: 0, packing: true });
    expect(pc.stats.truncated).toBe(0);
    expect(pc.train.every((e) => e.ids.at(-1) === EOS && e.labels.at(-1) === EOS)).toBe(true);
    const chat = await loadDataset(join(FIX, 'messages.jsonl'), tok, { seqLen: 64, seed: 0, packing: true });
    const plain = await loadDataset(join(FIX, 'messages.jsonl'), tok, { seqLen: 128, seed: 0 });
    expect(plain.stats.truncated).toBe(0);
    chat.train.forEach((e, i) => {
      expect([...e.ids]).toEqual([...plain.train[i].ids, EOS]); // the template ends turns with "</s>\n"
      expect([...e.labels]).toEqual([...plain.train[i].labels, X]);
    });
    const rows = batchesFor(chat.train, { batchSize: 2, seqLen: 16, seed: 3, epoch: 0, packing: true, padId: EOS });
    const total = chat.train.reduce((s, e) => s + e.ids.length, 0);
    expect(rows.reduce((s, b) => s + b.B, 0)).toBe(Math.ceil(total / 16));
    expect(rows.every((b) => b.T === 16)).toBe(true);
  });
});

describe('seeded shuffling', () => {
  const many = Array.from({ length: 20 }, (_, i) => ex([i + 3, i + 4], [X, i + 4], i + 1));
  const order = (seed: number, epoch: number, shuffle?: boolean) =>
    batchesFor(many, { batchSize: 3, seqLen: 8, seed, epoch, shuffle, padId: 0 }).flatMap((b) => Array.from({ length: b.B }, (_, r) => b.inputIds[r * b.T] - 2));

  it('gives the same order for the same (seed, epoch), another for another epoch or seed, file order unshuffled', () => {
    const e0 = order(42, 0);
    expect(order(42, 0)).toEqual(e0);
    expect([...e0].sort((a, b) => a - b)).toEqual(many.map((e) => e.line));
    expect(order(42, 1)).not.toEqual(e0);
    expect(order(43, 0)).not.toEqual(e0);
    expect(order(42, 0, false)).toEqual(many.map((e) => e.line));
  });

  it('draws the 24 orders of 4 examples about equally often over epochs (chi-square; a naive swap shuffle fails it)', () => {
    const four = many.slice(0, 4);
    const counts = new Map<string, number>();
    const N = 4800;
    for (let epoch = 0; epoch < N; epoch++) {
      const key = [...batchesFor(four, { batchSize: 4, seqLen: 8, seed: 9, epoch, padId: 0 })[0].inputIds].join();
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    expect(counts.size).toBe(24);
    const chi2 = [...counts.values()].reduce((s, c) => s + (c - N / 24) ** 2 / (N / 24), 0);
    expect(chi2).toBeLessThan(60); // 23 degrees of freedom: P(chi2 > 60) ~ 4e-5 for a uniform shuffle
  });
});

describe('validation split', () => {
  async function rowsFile(n: number): Promise<string> {
    const f = join(work, `rows-${n}.jsonl`);
    await fsp.writeFile(f, Array.from({ length: n }, (_, i) => JSON.stringify({ text: `row ${i}` })).join('\n'));
    return f;
  }
  const lines = (es: readonly Example[]) => [...new Set(es.map((e) => e.line))];

  it('holds out ceil(fraction * rows) seeded rows, the same with or without packing', async () => {
    const f = await rowsFile(40);
    const a = await loadDataset(f, tok, { seqLen: 16, seed: 5, valSplit: 0.22 });
    expect(a.stats).toMatchObject({ rows: 40, trainRows: 31, valRows: 9 });
    const tl = lines(a.train);
    const vl = lines(a.val);
    expect(vl).toHaveLength(9);
    expect([...tl, ...vl].sort((x, y) => x - y)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(vl).not.toEqual(Array.from({ length: 9 }, (_, i) => i + 1)); // not simply the first rows
    expect(lines((await loadDataset(f, tok, { seqLen: 16, seed: 5, valSplit: 0.22 })).val)).toEqual(vl);
    expect(lines((await loadDataset(f, tok, { seqLen: 16, seed: 6, valSplit: 0.22 })).val)).not.toEqual(vl);
    expect(lines((await loadDataset(f, tok, { seqLen: 4, seed: 5, valSplit: 0.22, packing: true })).val)).toEqual(vl);
    expect(a.stats.tokens).toBe(a.train.reduce((s, e) => s + e.ids.length, 0));
  });

  it('takes a separate validation file; refuses a split that leaves no training row', async () => {
    const f = await rowsFile(3);
    const ds = await loadDataset(join(FIX, 'text.jsonl'), tok, { seqLen: 16, seed: 0, valFile: f });
    expect(ds.stats).toMatchObject({ rows: 7, trainRows: 4, valRows: 3 });
    expect(ds.val.map((e) => e.ids.length)).toEqual(ds.val.map((_, i) => tok.encode(`row ${i}`).length + 1));
    const one = await rowsFile(1);
    await expect(loadDataset(one, tok, { seqLen: 16, seed: 0, valSplit: 0.1 })).rejects.toThrow(/leave none for training/);
  });
});
