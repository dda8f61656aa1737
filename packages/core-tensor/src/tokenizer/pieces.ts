/**
 * Cutting a long text into pieces a tokenizer can encode one at a time (Tokenizer.encode), so a
 * many-megabyte row never needs the tokenizer's working memory for all of it at once. A cut goes
 * before an ASCII space that follows a non-space: byte-level BPE pre-tokenizers (GPT-2, Llama 3,
 * Qwen2 regexes) and Metaspace split there, so the pieces' ids concatenate to the whole text's ids.
 * The tokenizer checks that on PROBE_TEXT before it cuts anything. A stretch of maxChars without such
 * a space (no real text has one) is cut at maxChars, never inside a UTF-16 surrogate pair.
 * Not here: encoding, special tokens (tokenizer.ts).
 */

/** Texts longer than this many UTF-16 units are encoded in pieces of at most this many. */
export const PIECE_CHARS = 65536;

/** Words, punctuation, digits, doubled spaces, a newline and non-ASCII letters: cut at each space, it must encode the same. */
export const PROBE_TEXT = "Hello world. The quick, brown fox's 12 jumps!\nover  the lazy dog? naïve café 日本 語 end .";

const isSpace = (c: string) => /\s/.test(c);

/** Whether a cut may go before text[i]. */
function cutsBefore(text: string, i: number): boolean {
  return text[i] === ' ' && i > 0 && !isSpace(text[i - 1]);
}

/** The pieces of text (see the module doc), each at most maxChars long. */
export function* pieces(text: string, maxChars: number): Generator<string> {
  let start = 0;
  while (start < text.length) {
    let end = Math.min(start + maxChars, text.length);
    if (end < text.length) {
      let cut = end;
      while (cut > start && !cutsBefore(text, cut)) cut--;
      if (cut > start) end = cut;
      else if (end - 1 > start && /[\ud800-\udbff]/.test(text[end - 1])) end--;
    }
    yield text.slice(start, end);
    start = end;
  }
}

/** text cut before every space a cut may go before (the probe's pieces). */
export function cutAtEverySpace(text: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 1; i < text.length; i++) {
    if (cutsBefore(text, i)) {
      out.push(text.slice(start, i));
      start = i;
    }
  }
  out.push(text.slice(start));
  return out;
}
