/**
 * Hostile but fair data, run as users run it (the built binary), reproducing issue 9 items 3, 4 and
 * 10 as written: a chat template that loops a billion times, and others that grow strings, lists
 * or work without bound, end in exit 2 naming the template and the limit, within bounded time and
 * peak memory (read from the child itself); one long row no longer overflows the stack, rows over
 * --max-row-bytes are exit 2 naming file:line without being read whole; invalid UTF-8 is exit 2
 * naming file:line, a BOM is accepted by train and eval, and --resume notices a changed data file.
 */
import { generateTinyLlama } from '@peft/core-tensor';
import { execa } from 'execa';
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT, tempDir, type Run } from './helpers.js';

const BIN = join(ROOT, 'packages/cli/bin/run.js');
const PROBE = join(import.meta.dirname, 'report-rss.mjs');
/** The template: V8 crashed with exit 133 at 2.3 GB rendering it. */
const BILLION = '{% for i in range(1000000000) %}x{% endfor %}';
let work: string;
let base: string;
let n = 0;

/** The CLI as `peft()` runs it, plus the child's peak RSS (MiB) and wall time (s). */
async function peftMeasured(args: string[]): Promise<Run & { rssMiB: number; seconds: number }> {
  const rssFile = join(work, `rss-${n++}`);
  const t0 = performance.now();
  const r = await execa('node', ['--import', PROBE, BIN, ...args], {
    reject: false, timeout: 120_000, env: { NO_COLOR: '1', FORCE_COLOR: '0', PEFT_TEST_RSS_FILE: rssFile },
  });
  const seconds = (performance.now() - t0) / 1000;
  const rssMiB = existsSync(rssFile) ? Number(readFileSync(rssFile, 'utf8')) / 1024 : Infinity;
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr), json: () => JSON.parse(String(r.stdout)), rssMiB, seconds };
}

/** A copy of the base model whose chat template is `template` (in tokenizer_config.json or chat_template.jinja). */
function withTemplate(template: string, where: 'config' | 'jinja' = 'config'): string {
  const dir = join(work, `tpl-${n++}`);
  mkdirSync(dir);
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'generation_config.json']) writeFileSync(join(dir, f), readFileSync(join(base, f)));
  const config = JSON.parse(readFileSync(join(base, 'tokenizer_config.json'), 'utf8'));
  if (where === 'config') config.chat_template = template;
  else writeFileSync(join(dir, 'chat_template.jinja'), template);
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
  return dir;
}

function file(name: string, content: string | Buffer): string {
  const f = join(work, name);
  writeFileSync(f, content);
  return f;
}

const oneLine = (r: Run) => expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
const TRAIN = ['--steps', '1', '--batch', '2', '--seq-len', '32'];
const CHAT_ROW = JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello.' }] });
const PC_ROWS = ['cat', 'dog', 'fox', 'hen'].map((w) => JSON.stringify({ prompt: `Upper: ${w} =>`, completion: ` ${w.toUpperCase()}` }));

beforeAll(async () => {
  work = tempDir('peft-hostile-');
  base = join(work, 'base');
  await generateTinyLlama(base, { preset: 'tiny', seed: 3 });
});

describe('chat template render limits (issue 9, item 3)', () => {
  it('range(1000000000) in generate --chat is exit 2 naming the template file and the limit, in bounded memory', async () => {
    const r = await peftMeasured(['generate', withTemplate(BILLION), '--prompt', 'hi', '--chat', '-n', '2']);
    expect(r.exitCode, r.stderr).toBe(2);
    oneLine(r);
    expect(r.stderr).toMatch(/tokenizer_config\.json: the chat template exceeds a render limit: range\(\) of 1000000000 items, more than 100000/);
    expect(r.rssMiB).toBeLessThan(400);
    const jinja = await peft(['generate', withTemplate(BILLION, 'jinja'), '--prompt', 'hi', '--chat', '--json']);
    expect(jinja.exitCode).toBe(2);
    expect(jinja.json().error.message).toMatch(/chat_template\.jinja: the chat template exceeds a render limit/);
  });

  it('training on {"messages"} rows with it is exit 2 naming the row and the template; nothing is written', async () => {
    const data = file('chat.jsonl', `${CHAT_ROW}\n${CHAT_ROW}\n`);
    const out = join(work, 'chat-run');
    const r = await peftMeasured(['train', withTemplate(BILLION), '--data', data, '--out', out, ...TRAIN]);
    expect(r.exitCode, r.stderr).toBe(2);
    oneLine(r);
    expect(r.stderr).toContain(`${data}:1: `);
    expect(r.stderr).toMatch(/tokenizer_config\.json: the chat template exceeds a render limit: range\(\)/);
    expect(r.rssMiB).toBeLessThan(400);
    expect(existsSync(join(out, 'checkpoints'))).toBe(false);
  });

  it.each([
    ['nested loops', '{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}', /more than 1000000 steps/],
    ['empty nested loops', '{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}', /more than 1000000 steps/],
    ['loops left by break', '{% set big = range(100000) %}{% for a in big %}{% for b in big %}{% break %}{% endfor %}{% endfor %}', /more than 1000000 steps/],
    ['exponential macro calls', '{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}', /more than 1000000 steps|not a function/],
    ['string doubling (+)', '{% set ns = namespace(s="xy") %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}', /a string longer than 16777216 characters/],
    ['string doubling (~)', '{% set ns = namespace(s="xy") %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}', /a string longer than 16777216 characters/],
    ['list doubling', '{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | length }}', /a list longer than 100000 items/],
    ['a huge indent width', '{{ "a\\na\\na\\na" | indent(100000000) }}', /a string longer than 16777216 characters|MiB of memory/],
    ['many distinct large strings', '{% set ns = namespace(s="aa", l=[]) %}{% for i in range(22) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}' +
      '{% for i in range(10000) %}{% set ns.l = ns.l + [ns.s | upper] %}{% endfor %}{{ ns.l | length }}', /more than 256 MiB of memory/],
    ['recursion through macros', '{% macro a(n) %}{{ b(n) }}{% endmacro %}{% macro b(n) %}{{ a(n) }}{% endmacro %}{{ a(0) }}', /recursion too deep|not a function/],
    ['deeply nested expressions', `{{ ${'('.repeat(100000)}1${')'.repeat(100000)} }}`, /does not parse/],
  ])('%s: exit 2 within bounded time and memory', async (_name, template, limit) => {
    const r = await peftMeasured(['generate', withTemplate(template), '--prompt', 'hi', '--chat', '-n', '1']);
    expect(r.exitCode, r.stderr).toBe(2);
    oneLine(r);
    expect(r.stderr).toMatch(/tokenizer_config\.json: /);
    expect(r.stderr).toMatch(limit);
    expect(r.rssMiB).toBeLessThan(600);
    expect(r.seconds).toBeLessThan(30);
  });
});

describe('long rows (issue 9, item 4)', () => {
  it('{"text": "a" * 5_000_000} trains (was exit 1 "Maximum call stack size exceeded")', async () => {
    const data = file('long5.jsonl', `${JSON.stringify({ text: 'a'.repeat(5_000_000) })}\n`);
    const r = await peftMeasured(['train', base, '--data', data, '--out', join(work, 'long-run'), ...TRAIN, '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json().data).toMatchObject({ trainRows: 1, trainedTokens: 5_000_001 }); // 'a' is one byte token; + EOS
    expect(r.rssMiB).toBeLessThan(800);
  });

  it.each(['train', 'eval'])('%s: a row over --max-row-bytes (default 8 MiB) is exit 2 naming file:line, never read whole', async (cmd) => {
    const data = file(`long9-${cmd}.jsonl`, `${PC_ROWS[0]}\n${JSON.stringify({ prompt: 'a'.repeat(9 * 2 ** 20), completion: 'b' })}\n`);
    const out = join(work, `long9-${cmd}`);
    const args = cmd === 'train' ? ['train', base, '--data', data, '--out', out, ...TRAIN] : ['eval', base, '--data', data];
    const r = await peftMeasured(args);
    expect(r.exitCode, r.stderr).toBe(2);
    oneLine(r);
    expect(r.stderr).toContain(`${data}:2: a row longer than 8388608 bytes (--max-row-bytes)`);
    expect(r.rssMiB).toBeLessThan(250);
    expect(existsSync(out)).toBe(false);
    const small = await peft([...args, '--max-row-bytes', '10']);
    expect(small.exitCode).toBe(2);
    expect(small.stderr).toContain(`${data}:1: a row longer than 10 bytes`);
  });
});

describe('JSONL hygiene and resume (issue 9, item 10)', () => {
  it.each(['train', 'eval'])('%s: invalid UTF-8 is exit 2 naming file:line', async (cmd) => {
    const data = file(`utf8-${cmd}.jsonl`, Buffer.concat([Buffer.from(`${PC_ROWS[0]}\n{"prompt": "`), Buffer.from([0xff, 0xfe]), Buffer.from('", "completion": "b"}\n')]));
    const r = await peft(cmd === 'train' ? ['train', base, '--data', data, '--out', join(work, `u-${cmd}`), ...TRAIN] : ['eval', base, '--data', data]);
    expect(r.exitCode, r.stderr).toBe(2);
    oneLine(r);
    expect(r.stderr).toContain(`${data}:2: not valid UTF-8`);
  });

  it('a UTF-8 BOM at the start of the file is accepted by train and eval (eval refused it)', async () => {
    const data = file('bom.jsonl', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(`${PC_ROWS.join('\n')}\n`)]));
    const ev = await peft(['eval', base, '--data', data, '--no-exact-match', '--json']);
    expect(ev.exitCode, ev.stderr).toBe(0);
    expect(ev.json().rows).toBe(4);
    const tr = await peft(['train', base, '--data', data, '--out', join(work, 'bom-run'), ...TRAIN, '--json']);
    expect(tr.exitCode, tr.stderr).toBe(0);
    expect(tr.json().data.trainRows).toBe(4);
  });

  it('--resume refuses a checkpoint trained on other bytes of --data or --val-data, naming the file', async () => {
    const data = file('resume.jsonl', `${PC_ROWS.join('\n')}\n`);
    const val = file('resume-val.jsonl', `${PC_ROWS[1]}\n`);
    const out = join(work, 'resume-run');
    const args = ['train', base, '--data', data, '--val-data', val, '--out', out, '--steps', '4', '--save-every', '2', '--batch', '2', '--seq-len', '32'];
    expect((await peft(args)).exitCode).toBe(0);
    rmSync(join(out, 'checkpoints/step-4'), { recursive: true });
    rmSync(join(out, 'adapter'), { recursive: true });
    appendFileSync(data, `${PC_ROWS[2]}\n`);
    const changed = await peft([...args, '--resume']);
    expect(changed.exitCode, changed.stderr).toBe(2);
    oneLine(changed);
    expect(changed.stderr).toMatch(new RegExp(`data_content is "${data}: \\d+ bytes, sha256 [0-9a-f]{64}" but the checkpoint was trained with "${data}: `));
    writeFileSync(data, `${PC_ROWS.join('\n')}\n`); // the bytes it was trained on
    appendFileSync(val, `${PC_ROWS[3]}\n`);
    const valChanged = await peft([...args, '--resume']);
    expect(valChanged.exitCode).toBe(2);
    expect(valChanged.stderr).toContain(`val_data_content is "${val}: `);
    writeFileSync(val, `${PC_ROWS[1]}\n`);
    const same = await peft([...args, '--resume', '--json']);
    expect(same.exitCode, same.stderr).toBe(0);
    expect(same.json().steps).toBe(4);
  });
});

/** `peft()` of helpers.ts, kept local so every child here is started the same way. */
async function peft(args: string[]): Promise<Run> {
  return peftMeasured(args);
}
