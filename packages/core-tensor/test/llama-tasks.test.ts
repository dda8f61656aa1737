/**
 * Generation and evaluation as library calls: sampling rules (greedy, temperature, top-p, seeds),
 * greedy generation through the KV cache reproducing torch's greedy continuation, text streaming
 * over split UTF-8, and `runEval`'s metrics checked against the model's own chunked loss and argmax.
 */
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Xoshiro128 } from '../src/random/rng.js';
import { Llama } from '../src/models/llama.js';
import { readEvalData, tokenizeRow } from '../src/tasks/eval-data.js';
import { exactMatch, runEval } from '../src/tasks/eval.js';
import { generateTokens, sampleToken, TextStream } from '../src/tasks/generate.js';
import { runGenerate } from '../src/tasks/generate-run.js';
import { tidy } from '../src/tensor/scope.js';
import { memoryStats } from '../src/tensor/storage.js';
import { Tokenizer } from '../src/tokenizer/index.js';
import { fixtureWithTokenizer, KERNEL_SETS, kernelsOf, LLAMA_FIXTURES, readReference, type Reference } from './llama-fixtures.js';

let work: string;
let modelDir: string;
let ref: Reference;
beforeAll(async () => {
  work = await fsp.mkdtemp(join(tmpdir(), 'peft-tasks-'));
  modelDir = await fixtureWithTokenizer('llama', join(work, 'llama'));
  ref = await readReference('llama');
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

describe('sampling', () => {
  const logits = Float32Array.from([Math.log(0.1), Math.log(0.4), Math.log(0.2), Math.log(0.3)]);
  const draw = (o: object, n: number, seed = 1) => {
    const rng = new Xoshiro128(seed);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < n; i++) counts[sampleToken(logits, o, rng)]++;
    return counts.map((c) => c / n);
  };

  it('temperature 0 is argmax (first of ties)', () => {
    expect(sampleToken(logits, { temperature: 0 }, new Xoshiro128(0))).toBe(1);
    expect(sampleToken(Float32Array.of(2, 5, 5), {}, new Xoshiro128(0))).toBe(1);
  });

  it('temperature 1 draws from softmax; temperature 0.5 sharpens it', () => {
    const f = draw({ temperature: 1 }, 20000);
    [0.1, 0.4, 0.2, 0.3].forEach((p, i) => expect(Math.abs(f[i] - p)).toBeLessThan(0.015));
    const sharp = draw({ temperature: 0.5 }, 20000); // p^2 normalised: .01 .16 .04 .09 over .30
    expect(Math.abs(sharp[1] - 0.16 / 0.3)).toBeLessThan(0.015);
  });

  it('top-p keeps the smallest set of likeliest tokens reaching p (transformers TopPLogitsWarper)', () => {
    const f = draw({ temperature: 1, topP: 0.5 }, 20000); // 0.4 + 0.3 reach 0.5
    expect(f[0]).toBe(0);
    expect(f[2]).toBe(0);
    expect(Math.abs(f[1] - 0.4 / 0.7)).toBeLessThan(0.015);
    expect(draw({ temperature: 1, topP: 0.01 }, 200)).toEqual([0, 1, 0, 0]);
  });

  it('the same seed gives the same draws', () => {
    expect(draw({ temperature: 1 }, 50, 9)).toEqual(draw({ temperature: 1 }, 50, 9));
  });
});

describe.each(KERNEL_SETS)('generation ($name kernels)', (set) => {
  it.skipIf(set.skip !== undefined)('greedy through the KV cache reproduces torch\'s greedy continuation', async () => {
    const kernels = kernelsOf(set);
    const model = await Llama.fromFolder(join(LLAMA_FIXTURES, 'llama'));
    const prompt = Array.from(ref.get('greedy.prompt_ids').values);
    const got = [...generateTokens(model, prompt, { maxNewTokens: 10, stopTokenIds: [], kernels })];
    expect(got).toEqual(Array.from(ref.get('greedy.tokens').values));
    model.dispose();
  });
});

describe('generation', () => {
  it('stops at a stop id (included) and reports why; seeds reproduce sampled text', async () => {
    const model = await Llama.fromFolder(join(LLAMA_FIXTURES, 'llama'));
    const prompt = Array.from(ref.get('greedy.prompt_ids').values);
    const greedy = Array.from(ref.get('greedy.tokens').values);
    const gen = generateTokens(model, prompt, { maxNewTokens: 10, stopTokenIds: [greedy[3]] });
    const seen: number[] = [];
    let step = gen.next();
    for (; !step.done; step = gen.next()) seen.push(step.value);
    expect(step.value).toEqual({ tokenIds: greedy.slice(0, 4), stopReason: 'stop' });
    const sample = (seed: number) => [...generateTokens(model, prompt, { maxNewTokens: 8, temperature: 1.5, topP: 0.95, seed, stopTokenIds: [] })];
    expect(sample(3)).toEqual(sample(3));
    expect(sample(3)).not.toEqual(sample(4));
    expect(() => [...generateTokens(model, [1, 999], {})]).toThrow(/outside the model's vocabulary/);
    expect(() => [...generateTokens(model, prompt, { topP: 0 })]).toThrow(/top-p/);
    model.dispose();
  });

  it('leaves no tensor behind, finished or abandoned half way', async () => {
    const model = await Llama.fromFolder(join(LLAMA_FIXTURES, 'llama'));
    const prompt = Array.from(ref.get('greedy.prompt_ids').values);
    [...generateTokens(model, prompt, { maxNewTokens: 2 })]; // builds the rotary tables once
    const before = memoryStats();
    [...generateTokens(model, prompt, { maxNewTokens: 6, temperature: 1 })];
    for (const id of generateTokens(model, prompt, { maxNewTokens: 6 })) if (id >= 0) break;
    expect(memoryStats()).toEqual(before);
    model.dispose();
  });

  it('TextStream holds back split UTF-8 and emits each character once', async () => {
    const tok = await Tokenizer.fromFolder(modelDir);
    const ids = tok.encode('a🙂é', { addSpecialTokens: false });
    const stream = new TextStream(tok);
    const deltas = ids.map((id) => stream.push(id));
    expect(deltas.join('') + stream.flush()).toBe('a🙂é');
    expect(deltas.filter((d) => d.includes('\uFFFD'))).toEqual([]);
  });

  it('runGenerate streams what it returns', async () => {
    const pieces: string[] = [];
    const r = await runGenerate({ modelDir, prompt: ref.metadata.prompt_text, maxNewTokens: 10, onText: (d) => pieces.push(d) });
    expect(r.promptTokenIds).toEqual(Array.from(ref.get('greedy.prompt_ids').values));
    expect(r.tokenIds).toEqual(Array.from(ref.get('greedy.tokens').values));
    expect(pieces.join('')).toBe(r.text);
    expect(r.stopReason).toBe('length');
  });
});

describe('evaluation', () => {
  it('bad rows name their line', async () => {
    const file = join(work, 'bad.jsonl');
    await fsp.writeFile(file, '{"prompt": "a", "completion": "b"}\n\n{"prompt": "a"}\n');
    await expect(readEvalData(file)).rejects.toMatchObject({ code: 'E_INPUT', message: `${file}:3: "completion" must be a non-empty string` });
    await fsp.writeFile(file, '{"prompt": "a", "completion": "b"}\nnot json\n');
    await expect(readEvalData(file)).rejects.toThrow(`${file}:2: not valid JSON`);
  });

  it('truncation drops prompt tokens first and keeps the completion scored', async () => {
    const tok = await Tokenizer.fromFolder(modelDir);
    const row = { prompt: 'The answer is', completion: ' forty two', line: 1 };
    const full = tokenizeRow(tok, row, 100, 'f');
    const cut = tokenizeRow(tok, row, full.ids.length - 2, 'f');
    expect(cut.truncated).toBe(true);
    expect(cut.ids).toEqual(full.ids.slice(2));
    expect(cut.ids.length - cut.start).toBe(full.ids.length - full.start);
  });

  it('loss, accuracy and exact match agree with the model computed directly', async () => {
    const greedy = Array.from(ref.get('greedy.tokens').values);
    const rows = [
      { prompt: 'The answer is', completion: '\u0003I9' }, // the first 3 greedy tokens, byte tokens that re-encode alike
      { prompt: 'Hello world!', completion: ' How are you today?' },
      { prompt: '', completion: 'Once upon a time' },
    ];
    const file = join(work, 'eval.jsonl');
    await fsp.writeFile(file, rows.map((r) => JSON.stringify(r)).join('\n'));
    const s = await runEval({ modelDir, dataFile: file, batchSize: 2 });
    const model = await Llama.fromFolder(modelDir);
    const tok = await Tokenizer.fromFolder(modelDir);
    expect(tok.encode(rows[0].completion, { addSpecialTokens: false })).toEqual(greedy.slice(0, 3));
    let lossSum = 0;
    let count = 0;
    for (const r of rows) {
      const t = tokenizeRow(tok, { ...r, line: 0 }, 1024, 'f');
      const labels = t.ids.map((id, i) => (i < t.start ? -100 : id));
      const n = t.ids.length - t.start;
      lossSum += n * tidy(() => model.loss(Int32Array.from(t.ids), Int32Array.from(labels)).item());
      count += n;
    }
    if (s.format !== 'prompt_completion') throw new Error(`scored as ${s.format}`);
    expect(s.completionTokens).toBe(count);
    expect(s.loss).toBeCloseTo(lossSum / count, 5);
    expect(s.perplexity).toBeCloseTo(Math.exp(lossSum / count), 3);
    expect(s.exactMatches).toBe(1);
    expect(s.exactMatch).toBeCloseTo(1 / 3, 12);
    expect(s.tokenAccuracy).toBeGreaterThanOrEqual(3 / count); // the greedy row's 3 tokens are argmaxes
    const prompt = Array.from(ref.get('greedy.prompt_ids').values);
    expect(exactMatch(model, { ids: [...prompt, ...greedy], start: prompt.length, truncated: false })).toBe(true);
    expect(exactMatch(model, { ids: [...prompt, ...greedy.slice(0, 9), greedy[9] + 1], start: prompt.length, truncated: false })).toBe(false);
    model.dispose();
  });
});
