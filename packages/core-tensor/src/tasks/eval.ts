/**
 * `peft eval` as a library call. The file's format picks what is scored:
 *  - {"prompt", "completion"} rows: teacher-forced loss, perplexity and token accuracy on the
 *    completion tokens, and exact match of the greedy completion.
 *      loss          mean over every completion token of the dataset of -log p(token | everything before)
 *      perplexity    exp(loss)
 *      accuracy      share of completion tokens that are the argmax of their predicting logits
 *      exact match   share of rows whose greedy continuation of the prompt (KV cache, as many tokens as the
 *                    completion has) is exactly the completion's tokens
 *  - {"text"} rows: every token of every text, in windows of seqLen (lm-eval-harness rolling windows, or
 *    --stride), with per-token, per-byte and per-word metrics (eval-text.ts).
 * Not here: reading rows (eval-data.ts), scoring a batch (eval-score.ts), printing (the CLI).
 */
import type { TrainKernels } from '../backend/train-kernels.js';
import { inputError, PeftError } from '../errors.js';
import type { Llama } from '../models/llama.js';
import type { QuantizerLookup } from '../quant/format.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { readEvalData, tokenizeRow, type EvalRow, type TokenizedRow } from './eval-data.js';
import { scoreBatch, type Score } from './eval-score.js';
import { scoreTexts, type TextEvalSummary } from './eval-text.js';
import { generateTokens } from './generate.js';
import { loadForInference, type ApplyAdapter } from './generate-run.js';
import { maxPositionsOf, resolveSeqLen } from './positions.js';

export interface EvalOptions {
  modelDir: string;
  /** JSONL rows {"prompt", "completion"} or {"text"} (one format a file) */
  dataFile: string;
  /** Rows (text: windows) per forward (default 8). */
  batchSize?: number;
  /** Longest sequence scored, the window of text rows (default min(1024, max_position_embeddings); above it is E_INPUT, positions.ts). */
  seqLen?: number;
  /** Text rows only: the guide's strided windows, 1 <= stride < seqLen (default: lm-eval-harness rolling windows). */
  stride?: number;
  /** Longest JSONL line in bytes (default MAX_ROW_BYTES, 8 MiB). */
  maxRowBytes?: number;
  /** Also greedy-generate each completion (default true; text rows have no completion). */
  exactMatch?: boolean;
  applyAdapter?: ApplyAdapter;
  kernels?: TrainKernels;
  /** Finds a quantized model's quantizer (the CLI passes its registry; default: the built-in bitsandbytes ones). */
  quantizers?: QuantizerLookup;
  /** 'score' / 'generate' count rows, 'windows' counts the windows of text rows */
  onProgress?: (done: number, total: number, phase: 'score' | 'generate' | 'windows') => void;
}

export interface PromptCompletionSummary {
  format: 'prompt_completion';
  rows: number;
  completionTokens: number;
  loss: number;
  perplexity: number;
  tokenAccuracy: number;
  /** Share of rows matched exactly; null when not computed. */
  exactMatch: number | null;
  exactMatches: number | null;
  /** Rows cut to seqLen. */
  truncatedRows: number;
  seconds: number;
}

export type EvalSummary = PromptCompletionSummary | TextEvalSummary;

/** Whether greedy decoding from the row's prompt reproduces its completion token for token. */
export function exactMatch(model: Llama, row: TokenizedRow, kernels?: TrainKernels): boolean {
  const want = row.ids.slice(row.start);
  const gen = generateTokens(model, row.ids.slice(0, row.start), { maxNewTokens: want.length, stopTokenIds: [], kernels });
  let i = 0;
  for (const id of gen) {
    if (id !== want[i++]) return false; // leaving for-of returns the generator, which frees its cache
  }
  return i === want.length;
}

function checkOptions(o: EvalOptions): void {
  if (o.batchSize !== undefined && (!Number.isSafeInteger(o.batchSize) || o.batchSize < 1)) {
    throw new PeftError('E_INPUT', `batch size must be a positive integer, got ${o.batchSize}`);
  }
  if (o.seqLen !== undefined && (!Number.isSafeInteger(o.seqLen) || o.seqLen < 2)) {
    throw new PeftError('E_INPUT', `sequence length must be an integer >= 2, got ${o.seqLen}`);
  }
  if (o.stride !== undefined && (!Number.isSafeInteger(o.stride) || o.stride < 1)) {
    throw new PeftError('E_INPUT', `stride must be a positive integer, got ${o.stride}`);
  }
}

/** The stride must leave every window's first scored token some context (< seqLen); data/windows.ts. */
function checkStride(stride: number | undefined, seqLen: number): void {
  if (stride !== undefined && stride >= seqLen) {
    throw new PeftError('E_INPUT', `stride ${stride} must be below seq-len ${seqLen} (a window advances by stride and keeps ` +
      'seq-len - stride tokens of context; leave --stride out for lm-eval-harness rolling windows)');
  }
}

/** Loss, accuracy and exact match of prompt/completion rows (module doc). */
function evalPromptCompletion(model: Llama, tokenizer: Tokenizer, rows: readonly EvalRow[], seqLen: number, padId: number,
  o: EvalOptions): Omit<PromptCompletionSummary, 'seconds'> {
  const tokenized = rows.map((r) => tokenizeRow(tokenizer, r, seqLen, o.dataFile));
  const batchSize = o.batchSize ?? 8;
  const total: Score = { lossSum: 0, correct: 0, count: 0 };
  for (let i = 0; i < tokenized.length; i += batchSize) {
    // The last token is only a target: the forward runs over ids[0, T - 1).
    const batch = tokenized.slice(i, i + batchSize).map((r) => ({ input: r.ids.slice(0, -1), targets: r.ids.slice(r.start) }));
    const s = scoreBatch(model, batch, padId, o.kernels);
    total.lossSum += s.lossSum;
    total.correct += s.correct;
    total.count += s.count;
    o.onProgress?.(Math.min(i + batchSize, rows.length), rows.length, 'score');
  }
  let matches: number | null = null;
  if (o.exactMatch ?? true) {
    matches = 0;
    for (const [i, r] of tokenized.entries()) {
      if (exactMatch(model, r, o.kernels)) matches++;
      o.onProgress?.(i + 1, rows.length, 'generate');
    }
  }
  const loss = total.lossSum / total.count;
  return {
    format: 'prompt_completion', rows: rows.length, completionTokens: total.count, loss, perplexity: Math.exp(loss),
    tokenAccuracy: total.correct / total.count, exactMatch: matches === null ? null : matches / rows.length, exactMatches: matches,
    truncatedRows: tokenized.filter((r) => r.truncated).length,
  };
}

export async function runEval(o: EvalOptions): Promise<EvalSummary> {
  checkOptions(o);
  let seqLen = resolveSeqLen(o.seqLen, 1024, await maxPositionsOf(o.modelDir), o.modelDir);
  const data = await readEvalData(o.dataFile, o.maxRowBytes); // bad data fails before the model is loaded
  if (data.format !== 'text' && o.stride !== undefined) {
    throw inputError('E_INPUT', '--stride applies to {"text"} rows; this file holds {"prompt", "completion"} rows', o.dataFile);
  }
  checkStride(o.stride, seqLen);
  const t0 = performance.now();
  const { model, tokenizer } = await loadForInference(o.modelDir, o.applyAdapter, o.quantizers);
  try {
    // An adapter's virtual tokens (prompt methods) take positions too: the default shrinks, a given --seq-len must fit.
    const room = model.config.maxPositionEmbeddings - model.virtualTokens();
    if (seqLen > room) {
      if (o.seqLen !== undefined) {
        throw inputError('E_INPUT', `seq-len ${seqLen} + ${model.virtualTokens()} virtual tokens exceed max_position_embeddings ` +
          `${model.config.maxPositionEmbeddings}`, o.modelDir);
      }
      seqLen = room;
      checkStride(o.stride, seqLen);
    }
    const padId = tokenizer.padTokenId ?? tokenizer.eosTokenIds[0] ?? 0;
    const s = data.format === 'text'
      ? scoreTexts(model, tokenizer, data.rows, {
        seqLen, stride: o.stride, batchSize: o.batchSize ?? 8, padId, file: o.dataFile, kernels: o.kernels,
        onProgress: o.onProgress && ((done, n) => o.onProgress!(done, n, 'windows')),
      })
      : evalPromptCompletion(model, tokenizer, data.rows, seqLen, padId, o);
    return { ...s, seconds: (performance.now() - t0) / 1000 };
  } finally {
    model.dispose();
  }
}
