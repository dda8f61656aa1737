/**
 * `peft eval` on {"text"} rows: the log-likelihood of every token of every text, the way
 * EleutherAI/lm-evaluation-harness scores wikitext (lm_eval/tasks/wikitext/: output_type
 * loglikelihood_rolling; process_results and lm_eval/api/metrics.py for the metrics):
 *   ll            Σ over texts of Σ over their tokens of log p(token | the window's earlier tokens)
 *   loss          -ll / tokens                 (per token; perplexity = exp(loss))
 *   byte_perplexity  exp(-ll / bytes)           (weighted_perplexity over the UTF-8 bytes of each text)
 *   bits_per_byte -ll / bytes / ln 2
 *   word_perplexity  exp(-ll / words)           (words = len(re.split(r"\s+", text)), Python's \s)
 * Sums are over the whole file (lm-eval's weighted_mean: Σ ll / Σ weight), not means of per-text values.
 *
 * Tokens: the text encoded with the tokenizer's special tokens (its post-processor adds BOS where it
 * does, as transformers' tokenizer(text)); the first token is conditioned on lm-eval's prefix token,
 * HFLM.prefix_token_id = BOS, else EOS. An encoding that already starts with it uses that token as the
 * context instead of a second copy (lm-eval's rule for an empty context in api/model.py loglikelihood,
 * PR #3347), so a Llama text is [BOS] t1..tn with t1..tn scored: what lm-eval's rolling path gave under its
 * causal default add_special_tokens=False. (At lm-eval 4e7e0d4, loglikelihood_rolling encodes with the
 * tokenizer's default and, for a BOS-adding tokenizer, also scores that BOS after the prefix BOS: the
 * duplicate PR #3347 removed from loglikelihood; not copied here.) Windows: data/windows.ts.
 * Not here: reading rows (eval-data.ts), the forward and the loss of a batch (eval-score.ts).
 */
import type { TrainKernels } from '../backend/train-kernels.js';
import { rollingWindows, stridedWindows, type Window } from '../data/windows.js';
import { inputError } from '../errors.js';
import type { Llama } from '../models/llama.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { TextRow } from './eval-data.js';
import { scoreBatch } from './eval-score.js';

export interface TextEvalSummary {
  format: 'text';
  rows: number;
  /** tokens scored (every token of every text, once) */
  tokens: number;
  /** forward passes (windows) run */
  windows: number;
  /** the window: at most seqLen positions a forward */
  seqLen: number;
  /** null: lm-eval-harness rolling windows; else the guide's stride */
  stride: number | null;
  /** UTF-8 bytes and words (lm-eval's whitespace split) of the texts */
  bytes: number;
  words: number;
  /** Σ log p (nats) over every scored token */
  loglikelihood: number;
  /** -loglikelihood / tokens */
  loss: number;
  /** exp(loss) */
  perplexity: number;
  bytePerplexity: number;
  bitsPerByte: number;
  wordPerplexity: number;
  /** Do not apply to text rows: always null. */
  tokenAccuracy: null;
  exactMatch: null;
  exactMatches: null;
  seconds: number;
}

export interface TextEvalOptions {
  seqLen: number;
  stride?: number;
  /** windows per forward */
  batchSize: number;
  /** the id right padding uses (never scored) */
  padId: number;
  /** the data file (errors name file:line) */
  file: string;
  kernels?: TrainKernels;
  onProgress?: (windowsDone: number, windows: number) => void;
}

/** Python's `\s` on str (str.isspace()): JavaScript's \s less U+FEFF plus U+001C..U+001F and U+0085. */
const PY_WHITESPACE = /[\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

/** lm-eval's word count: len(re.split(r"\s+", text)) (leading / trailing whitespace counts an empty word, as there). */
export function wordCount(text: string): number {
  return text.split(PY_WHITESPACE).length;
}

/** lm-eval-harness HFLM.prefix_token_id: the token a text's first token is conditioned on (BOS, else EOS). */
export function prefixTokenId(tok: Tokenizer): number {
  const id = tok.bosTokenId ?? tok.eosTokenIds[0];
  if (id === undefined) throw inputError('E_INPUT', 'the tokenizer has neither a BOS nor an EOS token to condition a text\'s first token on', tok.where);
  return id;
}

/** seq = [prefix, t1..tn] of one text (see the module doc); `where` = file:line. */
export function textSequence(tok: Tokenizer, text: string, prefix: number, where: string): number[] {
  const ids = tok.encode(text);
  if (ids[0] !== prefix) ids.unshift(prefix);
  if (ids.length < 2) throw inputError('E_INPUT', 'the text encodes to no tokens', where);
  return ids;
}

/** The windows of one sequence under the chosen rule. */
function windowsOf(seq: readonly number[], seqLen: number, stride?: number): Window[] {
  return stride === undefined ? rollingWindows(seq.length - 1, seqLen) : stridedWindows(seq.length - 1, seqLen, stride);
}

/** Scores every text's windows, `batchSize` windows a forward (windows of several texts share a batch). */
export function scoreTexts(model: Llama, tok: Tokenizer, rows: readonly TextRow[], o: TextEvalOptions): Omit<TextEvalSummary, 'seconds'> {
  const prefix = prefixTokenId(tok);
  const seqs = rows.map((r) => textSequence(tok, r.text, prefix, `${o.file}:${r.line}`));
  const jobs: { seq: number[]; w: Window }[] = [];
  for (const seq of seqs) for (const w of windowsOf(seq, o.seqLen, o.stride)) jobs.push({ seq, w });
  let nll = 0;
  let tokens = 0;
  for (let i = 0; i < jobs.length; i += o.batchSize) {
    const batch = jobs.slice(i, i + o.batchSize).map(({ seq, w }) => ({
      input: seq.slice(w.start, w.end), targets: seq.slice(w.end - w.scored + 1, w.end + 1),
    }));
    const s = scoreBatch(model, batch, o.padId, o.kernels);
    nll += s.lossSum;
    tokens += s.count;
    o.onProgress?.(Math.min(i + o.batchSize, jobs.length), jobs.length);
  }
  let bytes = 0;
  let words = 0;
  for (const r of rows) {
    bytes += Buffer.byteLength(r.text, 'utf8');
    words += wordCount(r.text);
  }
  const ll = -nll;
  return {
    format: 'text', rows: rows.length, tokens, windows: jobs.length, seqLen: o.seqLen, stride: o.stride ?? null, bytes, words,
    loglikelihood: ll, loss: nll / tokens, perplexity: Math.exp(nll / tokens), bytePerplexity: Math.exp(nll / bytes),
    bitsPerByte: nll / bytes / Math.LN2, wordPerplexity: Math.exp(nll / words), tokenAccuracy: null, exactMatch: null, exactMatches: null,
  };
}
