/**
 * data/lines.ts, the JSONL line reader of train and eval: lines split across read chunks come back
 * whole, a BOM is skipped at the start of the file only, invalid UTF-8 and over-long lines are
 * E_INPUT naming file:line, CRLF / blank / unterminated last lines behave, and the fingerprint is
 * the file's size and SHA-256. Also the rule that src never spreads an array into call arguments.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDataset } from '../src/data/index.js';
import { MAX_ROW_BYTES, readLines } from '../src/data/lines.js';
import { tokenizerConfigJson, tokenizerJson } from '../src/fixtures/tokenizer.js';
import { readEvalData } from '../src/tasks/eval-data.js';
import { Tokenizer } from '../src/tokenizer/index.js';

let work: string;
beforeAll(async () => {
  work = await fsp.mkdtemp(join(tmpdir(), 'peft-lines-'));
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

let n = 0;
async function file(content: string | Buffer): Promise<string> {
  const f = join(work, `f${n++}.jsonl`);
  await fsp.writeFile(f, content);
  return f;
}
async function lines(f: string, max = MAX_ROW_BYTES): Promise<[string, number][]> {
  const out: [string, number][] = [];
  await readLines(f, max, (text, line) => out.push([text, line]));
  return out;
}

describe('readLines', () => {
  it('returns every non-blank line with its number, across 1 MiB read chunks, CRLF kept for JSON to ignore', async () => {
    const long = 'x'.repeat(3 * 2 ** 20 + 5); // spans four chunks
    const f = await file(`a\r\n\n  \n${long}\nlast`);
    expect(await lines(f)).toEqual([['a\r', 1], [long, 4], ['last', 5]]);
  });

  it('skips a UTF-8 BOM at the start of the file only', async () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    expect(await lines(await file(Buffer.concat([bom, Buffer.from('{"a":1}\n')])))).toEqual([['{"a":1}', 1]]);
    const mid = await lines(await file(Buffer.concat([Buffer.from('x\n'), bom, Buffer.from('y')])));
    expect(mid[1]).toEqual(['\ufeffy', 2]);
  });

  it('refuses invalid UTF-8 naming file:line (it was read as U+FFFD)', async () => {
    for (const bad of [[0xff], [0xc3], [0xed, 0xa0, 0x80], [0xe2, 0x82]]) { // stray, truncated, surrogate, cut
      const f = await file(Buffer.concat([Buffer.from('ok\n\n"'), Buffer.from(bad), Buffer.from('"\n')]));
      await expect(lines(f)).rejects.toMatchObject({ code: 'E_INPUT', exitCode: 2, message: `${f}:3: not valid UTF-8` });
    }
    expect(await lines(await file('naïve 日本 🙂'))).toEqual([['naïve 日本 🙂', 1]]);
  });

  it('refuses a line longer than the limit as soon as it passes it, naming file:line; the newline is not counted', async () => {
    const f = await file(`${'a'.repeat(10)}\n${'b'.repeat(11)}\n`);
    expect(await lines(f, 11)).toEqual([['a'.repeat(10), 1], ['b'.repeat(11), 2]]);
    await expect(lines(f, 10)).rejects.toMatchObject({ code: 'E_INPUT', message: `${f}:2: a row longer than 10 bytes (--max-row-bytes)` });
    const huge = await file(`ok\n${'z'.repeat(5 * 2 ** 20)}`);
    let seen = 0;
    await expect(readLines(huge, 2 ** 20, () => seen++)).rejects.toThrow(`${huge}:2: a row longer than 1048576 bytes`);
    expect(seen).toBe(1);
    await expect(lines(f, 0)).rejects.toThrow(/max-row-bytes must be an integer >= 1/);
  });

  it('fingerprints the file: its size and SHA-256', async () => {
    const content = Buffer.from(`${'{"text": "hello"}\n'.repeat(70000)}tail`); // > 1 MiB: several chunks
    const f = await file(content);
    expect(await readLines(f, MAX_ROW_BYTES, () => undefined)).toEqual({
      bytes: content.length, sha256: createHash('sha256').update(content).digest('hex'),
    });
  });

  it('is what train and eval read: both accept the BOM, both name the bad line', async () => {
    const tok = new Tokenizer({ tokenizer: tokenizerJson(320) as Record<string, unknown>, config: tokenizerConfigJson(2048) as Record<string, unknown> });
    const f = await file(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"prompt": "a", "completion": "b"}\n')]));
    expect(await readEvalData(f)).toEqual({ format: 'prompt_completion', rows: [{ format: 'prompt_completion', prompt: 'a', completion: 'b', line: 1 }] });
    const ds = await loadDataset(f, tok, { seqLen: 16, seed: 0 });
    expect(ds.stats.trainRows).toBe(1);
    expect(ds.fingerprint.bytes).toBe(3 + 35);
    await expect(readEvalData(f, 10)).rejects.toThrow(`${f}:1: a row longer than 10 bytes`);
    await expect(loadDataset(f, tok, { seqLen: 16, seed: 0, maxRowBytes: 10 })).rejects.toThrow(`${f}:1: a row longer than 10 bytes`);
  });
});

describe('source rules', () => {
  it('no src file spreads an array into call arguments (push(...x), Math.max(...x): a long array overflows the stack)', async () => {
    const root = join(import.meta.dirname, '../../..');
    const offenders: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else if (/\.[cm]?[jt]s$/.test(e.name)) {
          (await fsp.readFile(p, 'utf8')).split('\n').forEach((l, i) => {
            if (/\.(push|unshift)\(\s*\.\.\.|Math\.(max|min)\([^)]*\.\.\.|fromCharCode\(\s*\.\.\./.test(l)) offenders.push(`${p}:${i + 1}`);
          });
        }
      }
    };
    const dirs = [...(await fsp.readdir(join(root, 'packages'))).map((d) => join(root, 'packages', d, 'src')),
      ...(await fsp.readdir(join(root, 'examples'))).map((d) => join(root, 'examples', d, 'src'))];
    for (const d of dirs) if (await fsp.stat(d).then((s) => s.isDirectory(), () => false)) await walk(d);
    expect(offenders).toEqual([]);
  });
});
