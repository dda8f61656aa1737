/**
 * The committed assets of `make demo` (demo/): the pretrained base model loads as a Hugging Face
 * folder and is a trained language model (its loss on text from the corpus generator is far below
 * uniform); the task files parse, follow their rules, keep held-out inputs out of training, and are
 * exactly what the seeded generator (scripts/demo/data.mjs) writes today.
 */
import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Llama, noGrad, readEvalRows, tidy, Tokenizer, type EvalRow } from '../src/index.js';

const root = resolve(import.meta.dirname, '../../..');
const base = join(root, 'demo/base');
const dataDir = join(root, 'demo/data');

interface Rng { u32(): number }
interface DemoData {
  SIZES: Record<'taskA' | 'taskB', { train: number; test: number }>;
  taskFiles(): Record<string, string>;
}
interface DemoCorpus { corpus(r: Rng, chars: number): string[] }

// The generator is plain ESM under scripts/ (run by node without a build); loaded by URL, untyped.
const load = async <T>(file: string): Promise<T> => (await import(pathToFileURL(join(root, 'scripts/demo', file)).href)) as T;
const gen = await load<DemoData>('data.mjs');
const { corpus } = await load<DemoCorpus>('corpus.mjs');
const { Rng: RngClass } = await load<{ Rng: new (seed: number) => Rng }>('rng.mjs');

const rows = (task: string, split: string): Promise<EvalRow[]> => readEvalRows(join(dataDir, task, `${split}.jsonl`));
const WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];
const numberIn = (re: RegExp, prompt: string): number => Number(re.exec(prompt)![1]);
const A = /^Last digit in words: (\d+) =>$/;
const B = /^Even or odd: (\d+) =>$/;

describe('demo task files', () => {
  it('are byte for byte what the generator writes', () => {
    for (const [name, text] of Object.entries(gen.taskFiles())) {
      expect(readFileSync(join(dataDir, name), 'utf8'), name).toBe(text);
    }
  });

  it('task A: last digit in words, held-out numbers never a training input', async () => {
    const [train, test] = [await rows('task-a', 'train'), await rows('task-a', 'test')];
    expect([train.length, test.length]).toEqual([gen.SIZES.taskA.train, gen.SIZES.taskA.test]);
    for (const r of [...train, ...test]) expect(r.completion).toBe(` ${WORDS[numberIn(A, r.prompt) % 10]}`);
    const trainNums = new Set(train.map((r) => numberIn(A, r.prompt)));
    expect(test.filter((r) => trainNums.has(numberIn(A, r.prompt)))).toEqual([]);
  });

  it('task B: even or odd, held-out numbers never a training input', async () => {
    const [train, test] = [await rows('task-b', 'train'), await rows('task-b', 'test')];
    expect([train.length, test.length]).toEqual([gen.SIZES.taskB.train, gen.SIZES.taskB.test]);
    for (const r of [...train, ...test]) expect(r.completion).toBe(numberIn(B, r.prompt) % 2 === 0 ? ' even' : ' odd');
    const trainNums = new Set(train.map((r) => numberIn(B, r.prompt)));
    expect(test.filter((r) => trainNums.has(numberIn(B, r.prompt)))).toEqual([]);
  });

  it('the corpus generator repeats itself for a seed and differs across seeds', () => {
    const a = corpus(new RngClass(7), 3000);
    expect(corpus(new RngClass(7), 3000)).toEqual(a);
    expect(corpus(new RngClass(8), 3000)).not.toEqual(a);
    // The tasks' prompts are never part of the pretraining text.
    expect(a.join(' ')).not.toMatch(/=>|Last digit|Even or odd/);
  });
});

describe('demo base model', () => {
  it('is a small bf16 Hugging Face folder with a byte-level tokenizer', async () => {
    const config = JSON.parse(readFileSync(join(base, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ model_type: 'llama', torch_dtype: 'bfloat16', hidden_size: 128, num_hidden_layers: 4, vocab_size: 320 });
    expect(statSync(join(base, 'model.safetensors')).size).toBeLessThan(4e6);
    const tok = await Tokenizer.fromFolder(base);
    expect(tok.vocabSize).toBe(259);
    expect(tok.encode('Even or odd: 42 =>', { addSpecialTokens: false })).toHaveLength(18); // one token per byte
  });

  it('predicts generated text far better than uniform', async () => {
    const tok = await Tokenizer.fromFolder(base);
    const model = await Llama.fromFolder(base);
    try {
      const text = corpus(new RngClass(12345), 400).join(' ');
      const ids = tok.encode(text).slice(0, 128);
      const loss = noGrad(() => tidy(() => model.loss({ data: Int32Array.from(ids), shape: [1, ids.length] },
        { data: Int32Array.from(ids), shape: [1, ids.length] }).item()));
      // Uniform over the 259 byte-level ids is ln 259 = 5.56 nats per token; the pretrained model is far below.
      expect(loss).toBeLessThan(2);
    } finally {
      model.dispose();
    }
  });
});
