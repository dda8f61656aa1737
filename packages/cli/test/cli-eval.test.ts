/**
 * `peft eval` run as users run it (the built binary): its loss equals the model's own chunked
 * cross-entropy on the completion tokens, exact match counts the rows whose completion is the
 * model's greedy continuation, batching does not change the numbers, 4-bit models run, and bad
 * rows are exit 2 naming their line.
 */
import {
  createRegistry, generateTinyLlama, Llama, quantizeModel, referenceBackend, registerBuiltins, resolveOptions, tokenizeRow,
  Tokenizer, tokenizerConfigJson, tokenizerJson,
} from '@peft/core-tensor';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { peft, tempDir } from './helpers.js';

const FIXTURE = resolve(import.meta.dirname, '../../core-tensor/test/fixtures/llama/llama');
const ROWS = [
  { prompt: 'The answer is', completion: '\u0003I9' }, // the model's greedy continuation (see cli-generate / the reference)
  { prompt: 'Hello world!', completion: ' How are you today?' },
  { prompt: 'A language model', completion: ' predicts the next token.' },
  { prompt: '', completion: 'Once upon a time' },
];
let work: string;
let parity: string;
let data: string;

beforeAll(async () => {
  work = tempDir();
  parity = join(work, 'parity');
  mkdirSync(parity);
  for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(FIXTURE, f), join(parity, f));
  writeFileSync(join(parity, 'tokenizer.json'), JSON.stringify(tokenizerJson(320)));
  writeFileSync(join(parity, 'tokenizer_config.json'), JSON.stringify(tokenizerConfigJson(2048)));
  data = join(work, 'rows.jsonl');
  writeFileSync(data, ROWS.map((r) => JSON.stringify(r)).join('\n') + '\n');
});

/** Token-weighted mean of the model's own loss (labels -100 on the prompt) over the rows. */
async function expectedLoss(dir: string): Promise<{ loss: number; tokens: number }> {
  const model = await Llama.fromFolder(dir);
  const tok = await Tokenizer.fromFolder(dir);
  let sum = 0;
  let tokens = 0;
  for (const r of ROWS) {
    const t = tokenizeRow(tok, { ...r, line: 0 }, 1024, 'rows');
    const labels = t.ids.map((id, i) => (i < t.start ? -100 : id));
    const loss = model.loss(Int32Array.from(t.ids), Int32Array.from(labels));
    sum += loss.item() * (t.ids.length - t.start);
    tokens += t.ids.length - t.start;
    loss.dispose();
  }
  model.dispose();
  return { loss: sum / tokens, tokens };
}

describe('peft eval', () => {
  it('loss, perplexity and exact match of the parity model', async () => {
    const r = await peft(['eval', parity, '--data', data, '--batch', '3', '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const s = r.json();
    const want = await expectedLoss(parity);
    expect(s).toMatchObject({ rows: 4, completionTokens: want.tokens, exactMatches: 1, exactMatch: 0.25, truncatedRows: 0 });
    expect(s.loss).toBeCloseTo(want.loss, 5);
    expect(s.perplexity).toBeCloseTo(Math.exp(want.loss), 3);
    expect(s.tokenAccuracy).toBeGreaterThanOrEqual(3 / want.tokens);
  });

  it('batching and the kernel backend do not change the numbers; text output names the metrics', async () => {
    const one = (await peft(['eval', parity, '--data', data, '--batch', '1', '--backend', 'reference', '--no-exact-match', '--json'])).json();
    const four = (await peft(['eval', parity, '--data', data, '--batch', '4', '--backend', 'native', '--no-exact-match', '--json'])).json();
    expect(four.loss).toBeCloseTo(one.loss, 5);
    expect(four.tokenAccuracy).toBe(one.tokenAccuracy);
    expect(one.exactMatch).toBeNull();
    const text = await peft(['eval', parity, '--data', data]);
    expect(text.exitCode, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/perplexity\s+\d+\.\d{3}/);
    expect(text.stdout).toMatch(/exact match\s+25\.00 % \(1\/4\)/);
  });

  it('a 4-bit model written by peft quantize evaluates close to its base', async () => {
    const base = join(work, 'tiny');
    await generateTinyLlama(base, { seed: 9, numLayers: 1 });
    const nf4 = join(work, 'tiny-nf4');
    const registry = createRegistry();
    registerBuiltins(registry);
    const q = registry.get('quantizer', 'nf4');
    await quantizeModel({ modelDir: base, outDir: nf4, quantizer: q, options: resolveOptions('nf4', q.options, {}), backend: referenceBackend });
    const a = (await peft(['eval', base, '--data', data, '--no-exact-match', '--json'])).json();
    const b = await peft(['eval', nf4, '--data', data, '--no-exact-match', '--json']);
    expect(b.exitCode, b.stderr).toBe(0);
    expect(b.json().completionTokens).toBe(a.completionTokens);
    expect(Math.abs(b.json().loss - a.loss) / a.loss).toBeLessThan(0.01);
    expect(b.json().loss).not.toBe(a.loss); // the 4-bit weights are really used
  });

  it('--seq-len truncates prompts from the start and says so', async () => {
    const r = await peft(['eval', parity, '--data', data, '--seq-len', '6', '--no-exact-match', '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json().truncatedRows).toBeGreaterThan(0);
  });

  it.each([
    ['a row without a completion', '{"prompt": "a", "completion": "b"}\n{"prompt": "a"}\n', /bad\.jsonl:2: "completion" must be a non-empty string/],
    ['a line that is not JSON', '\n{"prompt": "a", "completion": "b"}\n{oops\n', /bad\.jsonl:3: not valid JSON/],
    ['a row that is not an object', '["a", "b"]\n', /bad\.jsonl:1: a row must be a JSON object/],
    ['an empty file', '\n\n', /bad\.jsonl: no rows/],
  ])('%s is exit 2 naming the line', async (_name, content, pattern) => {
    const bad = join(work, 'bad.jsonl');
    writeFileSync(bad, content);
    const r = await peft(['eval', parity, '--data', bad]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(pattern);
  });

  it('--adapter with a peft_type no plugin registered is exit 2', async () => {
    const adapter = join(work, 'lora');
    mkdirSync(adapter, { recursive: true });
    writeFileSync(join(adapter, 'adapter_config.json'), JSON.stringify({ peft_type: 'IA3', target_modules: ['k_proj'] }));
    const r = await peft(['eval', parity, '--data', data, '--adapter', adapter]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/no adapter method registered for IA3/);
  });
});
