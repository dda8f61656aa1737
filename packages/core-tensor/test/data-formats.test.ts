/**
 * data/ loading: the three JSONL formats on the fixture byte-level BPE tokenizer, label masks checked
 * token by token against hand-worked ids (byte b is token 3 + b; merges looked up by their text),
 * eval-data's prompt/completion tokenization and truncation, chat assistant spans found by rendering
 * prefixes (and refused when a template breaks the prefix property), and bad rows naming file:line.
 */
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDataset, type Example } from '../src/data/index.js';
import { PeftError } from '../src/errors.js';
import { tokenizerConfigJson, tokenizerJson } from '../src/fixtures/tokenizer.js';
import { readEvalData, tokenizeRow } from '../src/tasks/eval-data.js';
import { Tokenizer } from '../src/tokenizer/index.js';

const FIX = join(import.meta.dirname, 'fixtures', 'data');
const X = -100;
const BOS = 1;
const EOS = 2;
const tokWith = (extra: Record<string, unknown> = {}) =>
  new Tokenizer({ tokenizer: tokenizerJson(320) as Record<string, unknown>, config: { ...tokenizerConfigJson(2048), ...extra } }, 'fixture');
const tok = tokWith();
/** Byte-level tokens of ASCII text with no merges: byte b is id 3 + b (fixtures/tokenizer.ts). */
const b = (s: string) => [...Buffer.from(s)].map((x) => 3 + x);
const id = (t: string) => {
  const v = tok.tokenToId(t);
  if (v === undefined) throw new Error(`no token ${t}`);
  return v;
};
const arr = (ex: Example) => ({ ids: [...ex.ids], labels: [...ex.labels], line: ex.line });

let work: string;
beforeAll(async () => {
  work = await fsp.mkdtemp(join(tmpdir(), 'peft-data-'));
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});
async function jsonl(name: string, lines: string[]): Promise<string> {
  const f = join(work, name);
  await fsp.writeFile(f, lines.join('\n'));
  return f;
}

describe('text rows', () => {
  it('are [BOS] text [EOS], every token trained, lines counted past blank ones', async () => {
    const ds = await loadDataset(join(FIX, 'text.jsonl'), tok, { seqLen: 64, seed: 0 });
    expect(ds.format).toBe('text');
    expect(ds.stats).toMatchObject({ rows: 4, trainRows: 4, valRows: 0, truncated: 0 });
    const want = [BOS, ...b('Hi!?'), EOS];
    expect(arr(ds.train[0])).toEqual({ ids: want, labels: want, line: 1 });
    expect(ds.train.map((e) => e.line)).toEqual([1, 3, 4, 5]);
    expect(ds.stats.tokens).toBe(ds.train.reduce((s, e) => s + e.ids.length, 0));
    expect(ds.stats.trainedTokens).toBe(ds.stats.tokens - 4); // position 0 of each is never predicted
  });

  it('longer than seqLen are split into chunks sharing one token, so every token is still predicted once', async () => {
    const full = await loadDataset(join(FIX, 'text.jsonl'), tok, { seqLen: 64, seed: 0 });
    const ds = await loadDataset(join(FIX, 'text.jsonl'), tok, { seqLen: 4, seed: 0 });
    expect(arr(ds.train[0])).toEqual({ ids: [BOS, ...b('Hi!')], labels: [BOS, ...b('Hi!')], line: 1 });
    expect(arr(ds.train[1])).toEqual({ ids: [...b('!?'), EOS], labels: [...b('!?'), EOS], line: 1 });
    for (const whole of full.train) {
      const chunks = ds.train.filter((e) => e.line === whole.line);
      expect(chunks.every((c) => c.ids.length <= 4 && c.ids.length >= 2)).toBe(true);
      const joined = chunks.flatMap((c, k) => [...c.ids].slice(k === 0 ? 0 : 1));
      expect(joined).toEqual([...whole.ids]);
    }
    expect(ds.stats.truncated).toBe(0);
    expect(ds.stats.trainedTokens).toBe(full.stats.trainedTokens);
  });
});

describe('prompt/completion rows', () => {
  it('train the completion and its EOS only (hand-worked)', async () => {
    const ds = await loadDataset(join(FIX, 'prompt-completion.jsonl'), tok, { seqLen: 64, seed: 0 });
    expect(ds.format).toBe('prompt_completion');
    expect(arr(ds.train[0])).toEqual({
      ids: [BOS, ...b('Hi'), ...b('!?'), EOS],
      labels: [X, X, X, ...b('!?'), EOS],
      line: 1,
    });
    // An empty prompt still has BOS to predict the first completion token from.
    expect(arr(ds.train[2]).labels[0]).toBe(X);
    expect(ds.train[2].ids[0]).toBe(BOS);
  });

  it('are tokenized exactly as `peft eval` does, plus EOS', async () => {
    const file = join(FIX, 'prompt-completion.jsonl');
    const ds = await loadDataset(file, tok, { seqLen: 64, seed: 0 });
    const data = await readEvalData(file);
    if (data.format !== 'prompt_completion') throw new Error(`read as ${data.format}`);
    data.rows.forEach((row, i) => {
      const ev = tokenizeRow(tok, row, 64, file);
      const ex = arr(ds.train[i]);
      expect(ex.ids).toEqual([...ev.ids, EOS]);
      expect(ex.labels).toEqual([...ev.ids.map((t, j) => (j < ev.start ? X : t)), EOS]);
    });
  });

  it('truncate as eval-data: the prompt loses its start; a completion too long for seqLen loses its end and EOS', async () => {
    const f = await jsonl('pc.jsonl', ['{"prompt": "Hi", "completion": "!?"}']);
    const four = await loadDataset(f, tok, { seqLen: 4, seed: 0 });
    expect(arr(four.train[0])).toEqual({ ids: [...b('i!?'), EOS], labels: [X, ...b('!?'), EOS], line: 1 });
    expect(four.stats.truncated).toBe(1);
    const three = await loadDataset(f, tok, { seqLen: 3, seed: 0 });
    expect(arr(three.train[0])).toEqual({ ids: b('i!?'), labels: [X, ...b('!?')], line: 1 });
    const fits = await loadDataset(f, tok, { seqLen: 6, seed: 0 });
    expect(fits.stats.truncated).toBe(0);
  });
});

describe('messages rows', () => {
  const userHi = [...b('<|us'), id('er'), ...b('|>\nHi'), EOS, ...b('\n')];
  const asstHeader = [...b('<|assist'), id('an'), ...b('t|>\n')];
  const hello = [...b('H'), id('el'), ...b('lo.'), EOS, ...b('\n')];

  it('train the tokens each assistant turn adds, its end of turn included (hand-worked)', async () => {
    const ds = await loadDataset(join(FIX, 'messages.jsonl'), tok, { seqLen: 64, seed: 0 });
    expect(ds.format).toBe('messages');
    expect(arr(ds.train[0])).toEqual({
      ids: [...userHi, ...asstHeader, ...hello],
      labels: [...userHi.map(() => X), ...asstHeader.map(() => X), ...hello],
      line: 1,
    });
  });

  it('train every assistant turn of a multi-turn chat and nothing after the last one', async () => {
    const ds = await loadDataset(join(FIX, 'messages.jsonl'), tok, { seqLen: 128, seed: 0 });
    const enc = (s: string) => tok.encode(s, { addSpecialTokens: false });
    const seg = (s: string, train: boolean) => ({ ids: enc(s), train });
    const segs = [
      seg('<|system|>\nBe brief.</s>\n<|user|>\nSum 2+2?</s>\n<|assistant|>\n', false), seg('4</s>\n', true),
      seg('<|user|>\nok</s>\n<|assistant|>\n', false), seg('Hi</s>\n', true),
    ];
    expect(enc('4</s>\n')).toEqual([...b('4'), EOS, ...b('\n')]);
    const ex = arr(ds.train[1]);
    expect(ex.ids).toEqual(segs.flatMap((s) => s.ids));
    expect(ex.labels).toEqual(segs.flatMap((s) => (s.train ? s.ids : s.ids.map(() => X))));
    const third = arr(ds.train[2]);
    const tail = enc('<|user|>\nThanks</s>\n');
    expect(third.labels.slice(-tail.length)).toEqual(tail.map(() => X));
    expect(third.labels.filter((l) => l !== X)).toEqual(enc('I am fine, thank you.</s>\n'));
  });

  it('keep the first seqLen tokens; a row whose assistant tokens all fall beyond is refused by line', async () => {
    const n = userHi.length + asstHeader.length; // 24 untrained tokens before "Hello."
    // Row 2 of the fixture has more context than that before its first answer.
    await expect(loadDataset(join(FIX, 'messages.jsonl'), tok, { seqLen: n + 1, seed: 0 })).rejects.toThrow(`messages.jsonl:2: no assistant token`);
    const f = await jsonl('m1.jsonl', ['{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}']);
    const cut = await loadDataset(f, tok, { seqLen: n + 1, seed: 0 });
    expect(arr(cut.train[0]).labels).toEqual([...userHi.map(() => X), ...asstHeader.map(() => X), hello[0]]);
    expect(cut.stats.truncated).toBe(1);
    await expect(loadDataset(f, tok, { seqLen: n, seed: 0 })).rejects.toThrow(`${f}:1: no assistant token within the first ${n} tokens`);
  });

  it('refuse a template that breaks the prefix property, naming the row', async () => {
    // Marks the last message: rendering a prefix changes how earlier messages look.
    const bad = tokWith({ chat_template: "{% for m in messages %}{% if loop.last %}LAST:{% endif %}{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}A:{% endif %}" });
    const f = await jsonl('m2.jsonl', ['', '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}']);
    await expect(loadDataset(f, bad, { seqLen: 64, seed: 0 })).rejects.toThrow(`${f}:2: the chat template does not render messages[:1] as a prefix`);
  });

  it('name the row when the template raises', async () => {
    const strict = tokWith({ chat_template: "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}{% for m in messages %}{{ m.content }}{% endfor %}" });
    const f = await jsonl('m3.jsonl', ['{"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]}']);
    const err = await loadDataset(f, strict, { seqLen: 64, seed: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PeftError);
    expect((err as PeftError).code).toBe('E_INPUT');
    expect((err as PeftError).message).toMatch(new RegExp(`^${f}:1: .*first must be user`));
  });
});

describe('bad input', () => {
  const cases: [string, string[], number, RegExp][] = [
    ['invalid JSON', ['{"text": "a"}', '{"text": '], 2, /not valid JSON/],
    ['a non-object row', ['["text"]'], 1, /must be a JSON object/],
    ['a non-string text', ['{"text": 3}'], 1, /"text" must be a non-empty string/],
    ['an empty text', ['{"text": "a"}', '', '{"text": ""}'], 3, /"text" must be a non-empty string/],
    ['an empty completion', ['{"prompt": "p", "completion": ""}'], 1, /"completion" must be a non-empty string/],
    ['a completion without prompt', ['{"completion": "c"}'], 1, /"prompt" must be a string/],
    ['empty messages', ['{"messages": []}'], 1, /non-empty list/],
    ['a message without content', ['{"messages": [{"role": "user"}]}'], 1, /messages\[0\] must be an object/],
    ['no assistant message', ['{"messages": [{"role": "user", "content": "x"}]}'], 1, /no "assistant" message/],
    ['mixed formats', ['{"text": "a"}', '{"text": "b"}', '{"prompt": "p", "completion": "c"}'], 3, /a prompt_completion row, but line 1 is text/],
    ['keys of two formats', ['{"text": "a", "messages": []}'], 1, /several formats/],
    ['no known key', ['{"content": "a"}'], 1, /needs "text"/],
  ];
  it.each(cases)('%s is E_INPUT naming file:line', async (name, lines, line, msg) => {
    const f = await jsonl(`bad-${name.replace(/\W+/g, '-')}.jsonl`, lines);
    const err = await loadDataset(f, tok, { seqLen: 64, seed: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PeftError);
    expect((err as PeftError).code).toBe('E_INPUT');
    expect((err as PeftError).exitCode).toBe(2);
    expect((err as PeftError).message.startsWith(`${f}:${line}: `)).toBe(true);
    expect((err as PeftError).message).toMatch(msg);
  });

  it('an empty dataset, bad options and a validation file of another format are E_INPUT', async () => {
    const empty = await jsonl('empty.jsonl', ['', '  ', '']);
    await expect(loadDataset(empty, tok, { seqLen: 64, seed: 0 })).rejects.toThrow(/no rows/);
    const text = join(FIX, 'text.jsonl');
    await expect(loadDataset(text, tok, { seqLen: 1, seed: 0 })).rejects.toThrow(/seq-len/);
    await expect(loadDataset(text, tok, { seqLen: 8, seed: 0, valSplit: 0.5 })).rejects.toThrow(/val-split/);
    await expect(loadDataset(text, tok, { seqLen: 8, seed: 0, valSplit: 0.2, valFile: text })).rejects.toThrow(/not both/);
    await expect(loadDataset(text, tok, { seqLen: 8, seed: 0, valFile: join(FIX, 'messages.jsonl') }))
      .rejects.toThrow(`${join(FIX, 'messages.jsonl')}: messages rows, but the training file`);
    const err = await loadDataset(join(work, 'missing.jsonl'), tok, { seqLen: 8, seed: 0 }).catch((e: unknown) => e);
    expect((err as PeftError).exitCode).toBe(2);
  });
});
