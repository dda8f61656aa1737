/**
 * `peft generate` run as users run it (the built binary): greedy generation reproduces torch's greedy
 * continuation of the parity fixture token for token on both kernel backends; streamed text equals
 * the JSON text; sampling is seeded; bad input is exit 2 with one line.
 */
import { generateTinyLlama, Tokenizer, tokenizerConfigJson, tokenizerJson } from '@peft/core-tensor';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { peft, tempDir } from './helpers.js';

const FIXTURE = resolve(import.meta.dirname, '../../core-tensor/test/fixtures/llama/llama');
let work: string;
let parity: string;
let tiny: string;
let greedy: { prompt: string; promptIds: number[]; tokens: number[] };

/** The reference's greedy fields (I32 tensors and metadata) read straight from the safetensors bytes. */
function readGreedy(): typeof greedy {
  const bytes = readFileSync(join(FIXTURE, 'reference.safetensors'));
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  const ints = (name: string) => {
    const [a, b] = header[name].data_offsets as [number, number];
    const s = bytes.subarray(8 + n + a, 8 + n + b);
    return Array.from(new Int32Array(s.buffer.slice(s.byteOffset, s.byteOffset + s.byteLength)));
  };
  return { prompt: header.__metadata__.prompt_text, promptIds: ints('greedy.prompt_ids'), tokens: ints('greedy.tokens') };
}

beforeAll(async () => {
  work = tempDir();
  parity = join(work, 'parity');
  mkdirSync(parity);
  for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(FIXTURE, f), join(parity, f));
  writeFileSync(join(parity, 'tokenizer.json'), JSON.stringify(tokenizerJson(320)));
  writeFileSync(join(parity, 'tokenizer_config.json'), JSON.stringify(tokenizerConfigJson(2048)));
  greedy = readGreedy();
  tiny = join(work, 'tiny');
  await generateTinyLlama(tiny, { seed: 5, dtype: 'BF16' });
});

describe('peft generate', () => {
  it.each(['reference', 'native'])('temperature 0 reproduces the torch greedy continuation (--backend %s)', async (backend) => {
    const r = await peft(['generate', parity, '--prompt', greedy.prompt, '--max-new-tokens', '10', '--temperature', '0', '--backend', backend, '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const out = r.json();
    expect(out.promptTokenIds).toEqual(greedy.promptIds);
    expect(out.tokenIds).toEqual(greedy.tokens);
    expect(out.stopReason).toBe('length');
  });

  it('streams to stdout exactly the text --json reports', async () => {
    const args = ['generate', tiny, '--prompt', 'Once upon a time', '-n', '12'];
    const json = await peft([...args, '--json']);
    const text = await peft(args);
    expect(text.exitCode, text.stderr).toBe(0);
    expect(text.stderr).toBe('');
    expect(text.stdout).toBe(json.json().text); // plus the final newline, which execa strips
    expect(json.json().tokenIds).toHaveLength(12);
  });

  it('sampling is reproducible by seed and changes with it', async () => {
    const run = async (seed: string) => (await peft(['generate', tiny, '-p', 'Hello', '-t', '1.2', '--top-p', '0.9', '--seed', seed, '-n', '16', '--json'])).json().tokenIds;
    const a = await run('11');
    expect(await run('11')).toEqual(a);
    expect(await run('12')).not.toEqual(a);
  });

  it('--chat sends the prompt through the chat template', async () => {
    const r = await peft(['generate', tiny, '--prompt', 'What is 2+2?', '--chat', '-n', '3', '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const tok = await Tokenizer.fromFolder(tiny);
    expect(r.json().promptTokenIds).toEqual(await tok.encodeChat([{ role: 'user', content: 'What is 2+2?' }], { addGenerationPrompt: true }));
  });

  it.each([
    ['a temperature that is not a number', ['--temperature', 'warm'], /--temperature must be a number, got "warm"/],
    ['top-p above 1', ['--top-p', '1.5'], /top-p must be in \(0, 1\]/],
    ['a negative temperature', ['--temperature', '-1'], /temperature must be >= 0/],
  ])('%s is exit 2 with one line', async (_name, extra, pattern) => {
    const r = await peft(['generate', tiny, '--prompt', 'x', ...extra]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(pattern);
  });

  it('a folder without a tokenizer, and an adapter no plugin handles, are exit 2', async () => {
    const noTok = await peft(['generate', join(FIXTURE), '--prompt', 'x']);
    expect(noTok.exitCode).toBe(2);
    expect(noTok.stderr).toMatch(/no tokenizer\.json/);
    const adapter = join(work, 'adapter');
    mkdirSync(adapter);
    const missing = await peft(['generate', tiny, '--prompt', 'x', '--adapter', adapter]);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toMatch(/adapter_config\.json: no adapter_config\.json/);
    writeFileSync(join(adapter, 'adapter_config.json'), JSON.stringify({ peft_type: 'VERA', r: 4 }));
    const r = await peft(['generate', tiny, '--prompt', 'x', '--adapter', adapter, '--json']);
    expect(r.exitCode).toBe(2);
    expect(r.json().error).toMatchObject({ code: 'E_INPUT', message: expect.stringContaining('no adapter method registered for VERA') });
  });
});
