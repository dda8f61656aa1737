/**
 * The bounded chat-template render (tokenizer/render-pool.ts, render-worker.ts) and piecewise
 * encoding of long texts (tokenizer/pieces.ts): each limit ends a hostile template with an E_INPUT
 * naming the template's source and the limit, a worker that died of its heap limit is replaced,
 * ordinary templates render exactly as before, a conversation's prefix renders come back as lengths,
 * and encoding a long text in pieces gives the ids of encoding it whole (or is not done at all when a
 * tokenizer's pieces would differ).
 */
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { tokenizerConfigJson, tokenizerJson } from '../src/fixtures/tokenizer.js';
import { RENDER_LIMITS, renderChatTemplate, renderConversations, Tokenizer } from '../src/tokenizer/index.js';
import { cutAtEverySpace, PIECE_CHARS, pieces } from '../src/tokenizer/pieces.js';

const SOURCE = 'model/chat_template.jinja';
const render = (template: string, messages = [{ role: 'user', content: 'Hi' }]) => renderChatTemplate(template, messages, { eos_token: '</s>' }, {}, SOURCE);
const limitError = (detail: RegExp) => expect.objectContaining({
  code: 'E_INPUT', exitCode: 2, message: expect.stringMatching(new RegExp(`^${SOURCE}: the chat template exceeds a render limit: ${detail.source}`)),
});

describe('bounded chat-template render', () => {
  it('renders ordinary templates as the engine does, globals (range, namespace, raise_exception) included', async () => {
    expect(await render("{% for m in messages %}<{{ m.role }}>{{ m.content }}{{ eos_token }}{% endfor %}")).toBe('<user>Hi</s>');
    expect(await render('{% for i in range(2, 9, 3) %}{{ i }},{% endfor %}{{ range(3) | length }}')).toBe('2,5,8,3');
    expect(await render('{% for i in range(5, 0, -2) %}{{ i }}{% endfor %}')).toBe('531');
    expect(await render('{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}')).toBe('1');
    await expect(render("{{ raise_exception('no system message') }}")).rejects.toThrow(`${SOURCE}: chat template failed: no system message`);
    await expect(render('{% for %}')).rejects.toMatchObject({ code: 'E_FORMAT', message: expect.stringContaining(`${SOURCE}: chat template does not parse`) });
  });

  it.each([
    ['range() sized before allocating', '{% for i in range(1000000000) %}x{% endfor %}', /range\(\) of 1000000000 items, more than 100000/],
    ['steps', '{% for a in range(1000) %}{% for b in range(1000) %}x{% endfor %}{% endfor %}', /more than 1000000 steps/],
    ['steps (a loop\'s items count)', '{% set r = range(100000) %}{% for a in r %}{% for b in r %}{% break %}{% endfor %}{% endfor %}', /more than 1000000 steps/],
    ['string length', '{% set ns = namespace(s="ab") %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}', /a string longer than 16777216 characters/],
    ['list length', '{% set ns = namespace(l=[0]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}', /a list longer than 100000 items/],
    ['heap', '{% set ns = namespace(s="aa", l=[]) %}{% for i in range(22) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}' +
      '{% for i in range(10000) %}{% set ns.l = ns.l + [ns.s | upper] %}{% endfor %}', /more than 256 MiB of memory/],
  ])('the %s limit ends a runaway template with E_INPUT naming it', async (_name, template, detail) => {
    await expect(render(template)).rejects.toThrow(limitError(detail));
    expect(await render('{{ messages[0].content }}')).toBe('Hi'); // the worker (or its replacement) still renders
  });

  it('documents its limits', () => {
    expect(RENDER_LIMITS).toEqual({ steps: 1_000_000, chars: 16 * 2 ** 20, items: 100_000, seconds: 10, conversationChars: 64 * 2 ** 20 });
  });

  it('renders a conversation once whole and returns each assistant turn as prefix lengths', async () => {
    const template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}|{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}";
    const msgs = [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'bb' }, { role: 'user', content: 'c' }, { role: 'assistant', content: 'd' }];
    const [r] = await renderConversations(template, [msgs], {}, SOURCE);
    expect(r).toEqual({
      text: '<user>a|<assistant>bb|<user>c|<assistant>d|',
      turns: [{ index: 1, before: '<user>a|<assistant>'.length, after: '<user>a|<assistant>bb|'.length },
        { index: 3, before: '<user>a|<assistant>bb|<user>c|<assistant>'.length, after: '<user>a|<assistant>bb|<user>c|<assistant>d|'.length }],
    });
  });

  it('a conversation whose prefix renders pass the budget fails alone; its neighbours render', async () => {
    const template = '{% for m in messages %}{{ m.content }}{% endfor %}';
    const big = 'x'.repeat(2 ** 19); // 12 turns: the whole is 12 Mi characters, the prefix renders ~150 Mi
    const turns = Array.from({ length: 12 }, () => [{ role: 'user', content: big }, { role: 'assistant', content: big }]).flat();
    const ok = [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a' }];
    const [first, hostile] = await renderConversations(template, [ok, turns, ok], {}, SOURCE);
    expect(first).toMatchObject({ text: 'qa' });
    expect(hostile).toMatchObject({ message: expect.stringMatching(/more than 67108864 characters over the renders of the conversation's prefixes/) });
  });
});

describe('long texts are encoded in pieces', () => {
  const files = (normalizer: unknown = null) => {
    const tokenizer = { ...(tokenizerJson(320) as Record<string, unknown>), normalizer };
    const config = tokenizerConfigJson(2048) as Record<string, unknown>;
    return { tok: new Tokenizer({ tokenizer, config }), whole: new HfTokenizer(tokenizer, config) };
  };
  const words = ['the', 'cat', 'sat,', 'on', 'a', 'naïve', 'mat.\n', '12', 'dogs!', '日本', '🙂', '  ', "it's"];
  const text = (n: number, seed: number) => {
    let s = '';
    for (let i = 0; s.length < n; i++) s += words[(i * 7 + seed * 13 + ((i * i) % 5)) % words.length] + ' ';
    return s;
  };

  it('give the ids of encoding the text whole (byte-level BPE), special tokens once', () => {
    const { tok, whole } = files();
    for (const [n, seed] of [[PIECE_CHARS * 3 + 17, 1], [PIECE_CHARS + 1, 2]]) {
      const t = text(n, seed);
      expect(tok.encode(t)).toEqual(whole.encode(t, { add_special_tokens: true }).ids);
      expect(tok.encode(t, { addSpecialTokens: false })).toEqual(whole.encode(t, { add_special_tokens: false }).ids);
    }
  });

  it('are not used when the tokenizer\'s pieces would differ (a normalizer prepending "▁" to every input)', () => {
    const { tok, whole } = files({ type: 'Prepend', prepend: '▁' });
    const t = text(PIECE_CHARS * 2, 3);
    expect(tok.encode(t)).toEqual(whole.encode(t, { add_special_tokens: true }).ids);
  });

  it('cut before a space after a non-space, at most maxChars long, never inside a surrogate pair, rejoining to the text', () => {
    fc.assert(fc.property(fc.string({ unit: fc.constantFrom('a', ' ', '\n', '🙂', 'é'), maxLength: 300 }), fc.integer({ min: 2, max: 40 }), (s, max) => {
      const parts = [...pieces(s, max)];
      expect(parts.join('')).toBe(s);
      let at = 0;
      for (const p of parts) {
        expect(p.length).toBeGreaterThan(0);
        expect(p.length).toBeLessThanOrEqual(max);
        at += p.length;
        if (at < s.length) expect(/[\ud800-\udbff]/.test(s[at - 1]) && /[\udc00-\udfff]/.test(s[at])).toBe(false);
      }
    }), { numRuns: 300, seed: 11 });
    expect([...pieces('aaaa bbbb cc', 8)]).toEqual(['aaaa', ' bbbb cc']);
    expect(cutAtEverySpace('ab  c d')).toEqual(['ab', '  c', ' d']);
  });
});
