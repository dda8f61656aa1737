/**
 * The pieces of `peft eval` on text rows that are not the model (tasks/eval-text.ts): lm-eval-harness's
 * word count (len(re.split(r"\s+", text)) with Python's \s, values worked out in Python), and the
 * sequence a text is scored as: its first token conditioned on the prefix token (BOS, else EOS), which a
 * post-processor's BOS already is (no second copy) and which is prepended when the tokenizer adds none.
 */
import { describe, expect, it } from 'vitest';
import { tokenizerConfigJson, tokenizerJson } from '../src/fixtures/tokenizer.js';
import { prefixTokenId, textSequence, wordCount } from '../src/tasks/eval-text.js';
import { Tokenizer } from '../src/tokenizer/index.js';

type Json = Record<string, unknown>;
const BOS = 1;
const EOS = 2;

describe('wordCount (lm_eval/tasks/wikitext/preprocess_wikitext.py process_results)', () => {
  it.each([
    ['a b', 2], ['a  b\tc\nd', 4], ['  a b ', 4], ['', 1], ['word', 1],
    // Python's \s (str.isspace) has U+001C..U+001F and U+0085, and not U+FEFF, unlike JavaScript's \s
    ['a\x1cb\x1fc', 3], ['a\x85b', 2], ['a\ufeffb', 1], ['a\u00a0b\u3000c\u2028d', 4],
  ])('%j has %i words, as re.split(r"\\s+", text) counts them', (text, n) => {
    expect(wordCount(text)).toBe(n);
  });
});

describe('textSequence', () => {
  it('a tokenizer whose post-processor adds BOS: [BOS, t1..tn], BOS the context, never twice', () => {
    const tok = new Tokenizer({ tokenizer: tokenizerJson(320) as Json, config: tokenizerConfigJson(2048) as Json });
    expect(prefixTokenId(tok)).toBe(BOS);
    const plain = tok.encode('Hello world!', { addSpecialTokens: false });
    expect(textSequence(tok, 'Hello world!', BOS, 'f:1')).toEqual([BOS, ...plain]);
  });

  it('a tokenizer with no BOS: EOS is the prefix, prepended (HFLM.prefix_token_id)', () => {
    const json = { ...(tokenizerJson(320) as Json), post_processor: null };
    const tok = new Tokenizer({ tokenizer: json, config: { ...(tokenizerConfigJson(2048) as Json), bos_token: null } });
    expect(tok.bosTokenId).toBeUndefined();
    expect(prefixTokenId(tok)).toBe(EOS);
    const plain = tok.encode('Hello world!');
    expect(plain[0]).not.toBe(EOS);
    expect(textSequence(tok, 'Hello world!', EOS, 'f:1')).toEqual([EOS, ...plain]);
  });

  it('no BOS and no EOS is exit 2 naming the tokenizer', () => {
    const json = { ...(tokenizerJson(320) as Json), post_processor: null };
    const tok = new Tokenizer({ tokenizer: json, config: { bos_token: null, eos_token: null } }, 'my-model');
    expect(() => prefixTokenId(tok)).toThrow(/my-model: the tokenizer has neither a BOS nor an EOS token/);
  });
});
