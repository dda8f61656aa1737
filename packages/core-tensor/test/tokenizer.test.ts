/**
 * Tokenizer: the repo's fixture folders (byte-level BPE tokenizer.json from src/fixtures/tokenizer.ts)
 * load through @huggingface/tokenizers and round-trip any text; special and stop ids come from the
 * folder's files; chat templates render with transformers' apply_chat_template semantics.
 */
import fc from 'fast-check';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateTinyLlama } from '../src/fixtures/tiny-llama.js';
import { tokenizerConfigJson, tokenizerJson } from '../src/fixtures/tokenizer.js';
import { Tokenizer } from '../src/tokenizer/index.js';

let dir: string;
let tok: Tokenizer;
beforeAll(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'peft-tok-'));
  await generateTinyLlama(dir, { numLayers: 1 });
  tok = await Tokenizer.fromFolder(dir);
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('the fixture tokenizer', () => {
  it('knows its special tokens and size', () => {
    expect(tok.bosToken).toBe('<s>');
    expect(tok.bosTokenId).toBe(1);
    expect(tok.eosTokenIds).toEqual([2]);
    expect(tok.vocabSize).toBe(320);
    expect(tok.tokenToId('</s>')).toBe(2);
    expect(tok.idToToken(3 + 0x41)).toBe('A'); // byte tokens start at id 3
  });

  it('adds BOS once with special tokens, never without; merges shorten common text', () => {
    const ids = tok.encode('The answer is');
    expect(ids).toEqual([1, 301, 270, 118, 122, 264, 297]);
    expect(tok.encode('The answer is', { addSpecialTokens: false })).toEqual(ids.slice(1));
    expect(ids.length - 1).toBeLessThan('The answer is'.length);
    expect(tok.decode(ids)).toBe('<s>The answer is');
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('The answer is');
  });

  it.each(['', ' ', 'Hello world!\n\n  x', 'naïve café 日本語 🙂👍🏽', 'tab\there\r\nend', 'ids 1, 10, 100'])('round-trips %j', (text) => {
    expect(tok.decode(tok.encode(text, { addSpecialTokens: false }))).toBe(text);
  });

  it('round-trips arbitrary Unicode text (property)', () => {
    fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (text) => {
      expect(tok.decode(tok.encode(text, { addSpecialTokens: false }))).toBe(text);
    }), { numRuns: 200, seed: 7 });
  });
});

describe('chat templates', () => {
  const messages = [{ role: 'user', content: 'Hi there' }, { role: 'assistant', content: 'Hello.' }, { role: 'user', content: 'Sum 2+2?' }];

  it('renders the folder\'s template with eos_token and add_generation_prompt', async () => {
    expect(await tok.applyChatTemplate(messages.slice(0, 1))).toBe('<|user|>\nHi there</s>\n');
    const text = await tok.applyChatTemplate(messages, { addGenerationPrompt: true });
    expect(text).toBe('<|user|>\nHi there</s>\n<|assistant|>\nHello.</s>\n<|user|>\nSum 2+2?</s>\n<|assistant|>\n');
    const ids = await tok.encodeChat(messages, { addGenerationPrompt: true });
    expect(ids.filter((i) => i === 2)).toHaveLength(3); // "</s>" in the text is the special token
    expect(ids[0]).not.toBe(1); // no BOS added on top of the template
    expect(tok.decode(ids)).toBe(text);
  });

  function withTemplate(config: object, chatTemplate?: string): Tokenizer {
    return new Tokenizer({ tokenizer: tokenizerJson(320) as Record<string, unknown>,
      config: { ...(tokenizerConfigJson(2048) as object), ...config }, chatTemplate });
  }

  it('a template that writes bos_token gets exactly one BOS', async () => {
    const t = withTemplate({ chat_template: "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }} {% endfor %}" });
    const ids = await t.encodeChat(messages.slice(0, 1));
    expect(ids.filter((i) => i === 1)).toEqual([1]);
    expect(ids[0]).toBe(1);
    expect(t.decode(ids)).toBe('<s>[user] Hi there ');
  });

  it('picks the "default" of a template list; chat_template.jinja wins over tokenizer_config.json', async () => {
    const list = withTemplate({ chat_template: [{ name: 'tool_use', template: 'TOOLS' }, { name: 'default', template: 'D{{ messages|length }}' }] });
    expect(await list.applyChatTemplate(messages)).toBe('D3');
    expect(await withTemplate({ chat_template: 'CONFIG' }, 'FILE {{ messages[0].content }}').applyChatTemplate(messages)).toBe('FILE Hi there');
    expect(() => withTemplate({ chat_template: [{ name: 'x', template: 'y' }] })).toThrow(/without a "default"/);
  });

  it('a template\'s raise_exception and a missing template are input errors', async () => {
    const strict = withTemplate({ chat_template: "{% if messages[0]['role'] != 'system' %}{{ raise_exception('first message must be system') }}{% endif %}ok" });
    await expect(strict.applyChatTemplate(messages)).rejects.toThrow(/first message must be system/);
    expect(await strict.applyChatTemplate([{ role: 'system', content: 's' }])).toBe('ok');
    const none = withTemplate({ chat_template: null });
    await expect(none.applyChatTemplate(messages)).rejects.toThrow(expect.objectContaining({ code: 'E_INPUT' }));
    await expect(tok.applyChatTemplate([{ role: 'user' } as never])).rejects.toThrow(/message 0 needs a string "role" and "content"/);
  });

  it('a folder without tokenizer.json is named in the error', async () => {
    const empty = await fsp.mkdtemp(join(tmpdir(), 'peft-tok-empty-'));
    await expect(Tokenizer.fromFolder(empty)).rejects.toMatchObject({ code: 'E_NOT_FOUND', message: expect.stringContaining(empty) });
    await fsp.rm(empty, { recursive: true });
  });
});
