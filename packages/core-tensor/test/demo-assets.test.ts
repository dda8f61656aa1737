/**
 * The committed assets of `make demo` (demo/): the pretrained base model loads as a Hugging Face
 * folder and is a trained language model (its loss on text from the corpus generator is far below
 * uniform, and it counts) that does not already answer the tasks' prompts; the task files parse,
 * follow their rules, keep held-out inputs out of training, and are exactly what the seeded generator
 * (scripts/demo/data.mjs) writes today.
 */
import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { generateTokens, Llama, noGrad, readEvalData, tidy, Tokenizer, type EvalRow } from '../src/index.js';

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

async function rows(task: string, split: string): Promise<EvalRow[]> {
  const data = await readEvalData(join(dataDir, task, `${split}.jsonl`));
  if (data.format !== 'prompt_completion') throw new Error(`${task}/${split}: ${data.format} rows`);
  return data.rows;
}
const numberIn = (re: RegExp, prompt: string): number => Number(re.exec(prompt)![1]);
const A = /^Add one: (\d{3}) =>$/;
const B = /^Reverse: (\d{3}) =>$/;

/** Rows parse, follow `rule`, and no test number is a training input. */
async function checkTask(task: string, re: RegExp, rule: (n: number) => string, sizes: { train: number; test: number }) {
  const [train, test] = [await rows(task, 'train'), await rows(task, 'test')];
  expect([train.length, test.length]).toEqual([sizes.train, sizes.test]);
  for (const r of [...train, ...test]) expect(r.completion).toBe(rule(numberIn(re, r.prompt)));
  const trainNums = new Set(train.map((r) => numberIn(re, r.prompt)));
  expect(test.filter((r) => trainNums.has(numberIn(re, r.prompt)))).toEqual([]);
  expect(new Set(test.map((r) => r.prompt)).size).toBe(test.length);
}

describe('demo task files', () => {
  it('are byte for byte what the generator writes', () => {
    for (const [name, text] of Object.entries(gen.taskFiles())) {
      expect(readFileSync(join(dataDir, name), 'utf8'), name).toBe(text);
    }
  });

  it('task A: add one, held-out numbers never a training input', async () => {
    await checkTask('task-a', A, (n) => ` ${n + 1}`, gen.SIZES.taskA);
    // Carries are in both splits (419 -> 420 needs more than the last digit).
    const test = await rows('task-a', 'test');
    expect(test.filter((r) => numberIn(A, r.prompt) % 10 === 9).length).toBeGreaterThan(5);
  });

  it('task B: reverse the digits, held-out numbers never a training input', async () => {
    await checkTask('task-b', B, (n) => ` ${String(n)[2]}${String(n)[1]}${String(n)[0]}`, gen.SIZES.taskB);
  });

  it('the corpus generator repeats itself for a seed and differs across seeds', () => {
    const a = corpus(new RngClass(7), 3000);
    expect(corpus(new RngClass(7), 3000)).toEqual(a);
    expect(corpus(new RngClass(8), 3000)).not.toEqual(a);
    // The tasks' prompts are never part of the pretraining text.
    expect(a.join(' ')).not.toMatch(/=>|Add one|Reverse/);
  });
});

describe('demo base model', () => {
  it('is a small bf16 Hugging Face folder with a byte-level tokenizer', async () => {
    const config = JSON.parse(readFileSync(join(base, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ model_type: 'llama', torch_dtype: 'bfloat16', hidden_size: 128, num_hidden_layers: 4, vocab_size: 320 });
    expect(statSync(join(base, 'model.safetensors')).size).toBeLessThan(4e6);
    const tok = await Tokenizer.fromFolder(base);
    expect(tok.vocabSize).toBe(259);
    expect(tok.encode('Add one: 417 =>', { addSpecialTokens: false })).toHaveLength(15); // one token per byte
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
      expect(loss).toBeLessThan(1.5);
    } finally {
      model.dispose();
    }
  });

  it('counts, but does not follow the task prompts before fine-tuning', async () => {
    const tok = await Tokenizer.fromFolder(base);
    const model = await Llama.fromFolder(base);
    const greedy = (prompt: string, n: number): string =>
      tok.decode([...generateTokens(model, tok.encode(prompt), { maxNewTokens: n, stopTokenIds: [] })]);
    try {
      // Three-digit counting (what task A builds on), carries included: 198 199 -> 200 201.
      for (const n of [103, 198, 417, 589, 698, 777, 950]) expect(greedy(`Kim counted ${n} ${n + 1}`, 8)).toBe(` ${n + 2} ${n + 3}`);
      for (const [task, re] of [['task-a', A], ['task-b', B]] as const) {
        const test = (await rows(task, 'test')).slice(0, 20);
        const hits = test.filter((r) => greedy(r.prompt, r.completion.length) === r.completion).length;
        expect(hits, `${task} rows the base already answers`).toBeLessThanOrEqual(2);
        expect(re.test(test[0].prompt)).toBe(true);
      }
    } finally {
      model.dispose();
    }
  });
});
