/**
 * `peft eval` on {"text"} rows, run as users run it (the built binary): on texts longer than the window
 * its loss, token / byte / word perplexity and bits per byte equal the torch reference
 * (scripts/ref/eval_reference.py: lm-eval-harness's rolling loglikelihood and the transformers guide's
 * strided loop, transcribed, on the committed tiny Llama) to 1e-5 relative, with and without --stride and
 * with a LoRA adapter; batching and a byte-order mark change nothing; a file mixing formats, a chat row,
 * --stride on prompt/completion rows and a stride as long as the window are exit 2 naming what is wrong.
 */
import { Tokenizer, tokenizerConfigJson, tokenizerJson } from '@peft/core-tensor';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { peft, tempDir } from './helpers.js';

const FIXTURES = resolve(import.meta.dirname, '../../core-tensor/test/fixtures');
const EVAL = join(FIXTURES, 'eval');
const TEXT = join(EVAL, 'text.jsonl');
const LORA = join(EVAL, 'lora');

interface RefCase {
  adapter: string | null; seqLen: number; stride: number | null; rows: number; tokens: number; windows: number; bytes: number;
  words: number; loglikelihood: number; loss: number; perplexity: number; bytePerplexity: number; bitsPerByte: number; wordPerplexity: number;
}
const REF = JSON.parse(readFileSync(join(EVAL, 'reference.json'), 'utf8')) as { ids: number[][]; cases: Record<string, RefCase> };
const METRICS = ['loglikelihood', 'loss', 'perplexity', 'bytePerplexity', 'bitsPerByte', 'wordPerplexity'] as const;

let work: string;
let model: string;

beforeAll(() => {
  work = tempDir();
  model = join(work, 'llama');
  mkdirSync(model);
  for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(FIXTURES, 'llama/llama', f), join(model, f));
  writeFileSync(join(model, 'tokenizer.json'), JSON.stringify(tokenizerJson(320)));
  writeFileSync(join(model, 'tokenizer_config.json'), JSON.stringify(tokenizerConfigJson(2048)));
});

function argsOf(c: RefCase): string[] {
  return [
    ...(c.seqLen === 1024 ? [] : ['--seq-len', String(c.seqLen)]), // 1024: the default, min(1024, max_position_embeddings 2048)
    ...(c.stride === null ? [] : ['--stride', String(c.stride)]),
    ...(c.adapter === null ? [] : ['--adapter', join(EVAL, c.adapter)]),
  ];
}

const rel = (got: number, want: number) => Math.abs(got - want) / Math.abs(want);

function expectReference(s: Record<string, unknown>, c: RefCase): void {
  expect(s).toMatchObject({
    format: 'text', rows: c.rows, tokens: c.tokens, windows: c.windows, bytes: c.bytes, words: c.words, seqLen: c.seqLen, stride: c.stride,
    tokenAccuracy: null, exactMatch: null, exactMatches: null,
  });
  for (const m of METRICS) expect(rel(s[m] as number, c[m]), `${m}: ${String(s[m])} vs ${c[m]}`).toBeLessThan(1e-5);
}

describe('peft eval on text rows', () => {
  it('the fixture tokenizer still encodes the reference texts to the ids the reference scored', async () => {
    const tok = await Tokenizer.fromFolder(model);
    const texts = readFileSync(TEXT, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { text: string }).text);
    expect(texts.map((t) => tok.encode(t))).toEqual(REF.ids);
    expect(Math.max(...REF.ids.map((ids) => ids.length))).toBeGreaterThan(10 * 16); // longer than the window, many times
  });

  it.each(Object.keys(REF.cases))('%s equals the torch reference to 1e-5 relative', async (name) => {
    const c = REF.cases[name];
    const r = await peft(['eval', model, '--data', TEXT, ...argsOf(c), '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    expectReference(r.json(), c);
    if (c.adapter !== null) expect(r.json().warnings).toEqual([]);
  });

  it('rolling and strided windows differ, and the adapter is really applied', () => {
    const { 'rolling-16': a, 'stride-16-6': b, 'rolling-16-lora': l } = REF.cases;
    expect(rel(a.loss, b.loss)).toBeGreaterThan(1e-4); // far above the 1e-5 agreement: the tests above tell them apart
    expect(rel(a.loss, l.loss)).toBeGreaterThan(1e-4);
  });

  it('batching and a byte-order mark change nothing; the table names every metric', async () => {
    const bom = join(work, 'bom.jsonl');
    writeFileSync(bom, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), readFileSync(TEXT)]));
    const c = REF.cases['stride-16-6'];
    const r = await peft(['eval', model, '--data', bom, ...argsOf(c), '--batch', '1', '--backend', 'reference', '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    expectReference(r.json(), c);
    const text = await peft(['eval', model, '--data', TEXT, '--seq-len', '16', '--batch', '5']);
    expect(text.exitCode, text.stderr).toBe(0);
    const want = REF.cases['rolling-16'];
    expect(text.stdout).toMatch(new RegExp(`rows\\s+3 \\(271 tokens, 426 bytes, 78 words\\)`));
    expect(text.stdout).toMatch(/windows\s+18 \(seq-len 16, rolling as lm-evaluation-harness\)/);
    const shown = (label: string) => Number(new RegExp(`^${label}\\s+([\\d.]+)`, 'm').exec(text.stdout)?.[1]);
    for (const [label, v] of [['loss', want.loss], ['perplexity', want.perplexity], ['byte perplexity', want.bytePerplexity],
      ['bits per byte', want.bitsPerByte], ['word perplexity', want.wordPerplexity]] as const) {
      expect(rel(shown(label), v), label).toBeLessThan(5e-5); // as printed: 4 to 6 significant digits
    }
    expect(text.stdout).not.toMatch(/exact match|token accuracy/);
  });

  it.each([
    ['text rows, then a prompt/completion row', ['{"text": "a b"}', '', '{"prompt": "p", "completion": "c"}'], [], /mixed\.jsonl:3: a prompt_completion row, but line 1 is text/],
    ['prompt/completion rows, then a text row', ['{"prompt": "p", "completion": "c"}', '{"text": "a b"}'], [], /mixed\.jsonl:2: a text row, but line 1 is prompt_completion/],
    ['a chat row among text rows', ['{"text": "a b"}', '{"messages": [{"role": "user", "content": "hi"}]}'], [], /mixed\.jsonl:2: a \{"messages"\} row; this command reads \{"text"\} or \{"prompt", "completion"\} rows/],
    ['an empty text', ['{"text": "a"}', '{"text": ""}'], [], /mixed\.jsonl:2: "text" must be a non-empty string/],
    ['--stride on prompt/completion rows', ['{"prompt": "p", "completion": "c"}'], ['--stride', '4'], /mixed\.jsonl: --stride applies to \{"text"\} rows/],
    ['a stride as long as the window', ['{"text": "a b"}'], ['--seq-len', '8', '--stride', '8'], /stride 8 must be below seq-len 8/],
  ])('%s is exit 2: one line naming it, or a JSON error under --json', async (_name, lines, extra, pattern) => {
    const bad = join(work, 'mixed.jsonl');
    writeFileSync(bad, lines.join('\n') + '\n');
    const r = await peft(['eval', model, '--data', bad, ...extra]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(pattern);
    expect(r.stdout).toBe('');
    const j = await peft(['eval', model, '--data', bad, ...extra, '--json']);
    expect(j.exitCode).toBe(2);
    expect(j.json().error.message).toMatch(pattern);
  });
});
