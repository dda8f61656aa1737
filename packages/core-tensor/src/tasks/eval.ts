/**
 * `peft eval` as a library call: teacher-forced loss, perplexity and token accuracy on the
 * completion tokens of prompt/completion rows, and exact match of the greedy completion.
 *   loss          mean over every completion token of the dataset of -log p(token | everything before)
 *   perplexity    exp(loss)
 *   accuracy      share of completion tokens that are the argmax of their predicting logits
 *   exact match   share of rows whose greedy continuation of the prompt (KV cache, as many tokens as the
 *                 completion has) is exactly the completion's tokens
 * Batches are right-padded (causal attention: padding after a row never changes its positions), and
 * logits exist only for the scored positions, a chunk of rows at a time.
 * Not here: reading / tokenizing rows (eval-data.ts), printing (the CLI).
 */
import { noGrad } from '../ops/tape.js';
import type { TrainKernels } from '../backend/train-kernels.js';
import { inputError, PeftError } from '../errors.js';
import type { Llama } from '../models/llama.js';
import type { QuantizerLookup } from '../quant/format.js';
import { zeros } from '../tensor/create.js';
import { tidy } from '../tensor/scope.js';
import { readEvalRows, tokenizeRow, type TokenizedRow } from './eval-data.js';
import { argmax, generateTokens } from './generate.js';
import { loadForInference, type ApplyAdapter } from './generate-run.js';
import { maxPositionsOf, resolveSeqLen } from './positions.js';

export interface EvalOptions {
  modelDir: string;
  /** JSONL rows {"prompt", "completion"} */
  dataFile: string;
  /** Rows per forward (default 8). */
  batchSize?: number;
  /** Longest sequence scored (default min(1024, max_position_embeddings); above it is E_INPUT, positions.ts). */
  seqLen?: number;
  /** Longest JSONL line in bytes (default MAX_ROW_BYTES, 8 MiB). */
  maxRowBytes?: number;
  /** Also greedy-generate each completion (default true). */
  exactMatch?: boolean;
  applyAdapter?: ApplyAdapter;
  kernels?: TrainKernels;
  /** Finds a quantized model's quantizer (the CLI passes its registry; default: the built-in bitsandbytes ones). */
  quantizers?: QuantizerLookup;
  onProgress?: (rowsDone: number, rows: number, phase: 'score' | 'generate') => void;
}

export interface EvalSummary {
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

interface Score { lossSum: number; correct: number; count: number }

/** -log softmax(row)[target] (f64) and whether target is the row's argmax. */
function scoreRow(row: Float32Array, target: number): [number, boolean] {
  const best = argmax(row);
  let sum = 0;
  for (let v = 0; v < row.length; v++) sum += Math.exp(row[v] - row[best]);
  return [row[best] + Math.log(sum) - row[target], best === target];
}

/** Teacher-forced scores of one right-padded batch. */
export function scoreBatch(model: Llama, batch: readonly TokenizedRow[], padId: number, kernels?: TrainKernels): Score {
  const B = batch.length;
  const T = batch.reduce((m, r) => Math.max(m, r.ids.length), 0);
  const data = new Int32Array(B * T).fill(padId);
  const predictors: number[] = []; // flat [B*T] index of the position predicting each scored token
  const targets: number[] = [];
  batch.forEach((r, b) => {
    data.set(r.ids, b * T);
    for (let j = r.start; j < r.ids.length; j++) {
      predictors.push(b * T + j - 1);
      targets.push(r.ids[j]);
    }
  });
  const V = model.config.vocabSize;
  const score: Score = { lossSum: 0, correct: 0, count: targets.length };
  noGrad(() => tidy(() => {
    const hidden = model.forward({ data, shape: [B, T] }, { kernels }).hidden; // [B, T, C]
    const C = hidden.shape[2];
    const chunk = Math.max(1, Math.floor(2 ** 22 / V)); // logits of at most ~4M values at a time
    for (let r0 = 0; r0 < targets.length; r0 += chunk) {
      const n = Math.min(chunk, targets.length - r0);
      tidy(() => {
        const sel = zeros([n, C]); // the scored rows of hidden
        for (let i = 0; i < n; i++) sel.data.set(hidden.data.subarray(predictors[r0 + i] * C, (predictors[r0 + i] + 1) * C), i * C);
        const logits = model.logits(sel, { kernels }).data as Float32Array; // [n, V]
        for (let i = 0; i < n; i++) {
          const [loss, hit] = scoreRow(logits.subarray(i * V, (i + 1) * V), targets[r0 + i]);
          score.lossSum += loss;
          if (hit) score.correct++;
        }
      });
    }
  }));
  return score;
}

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
}

export async function runEval(o: EvalOptions): Promise<EvalSummary> {
  checkOptions(o);
  let seqLen = resolveSeqLen(o.seqLen, 1024, await maxPositionsOf(o.modelDir), o.modelDir);
  const rows = await readEvalRows(o.dataFile, o.maxRowBytes); // bad data fails before the model is loaded
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
    }
    const tokenized = rows.map((r) => tokenizeRow(tokenizer, r, seqLen, o.dataFile));
    const padId = tokenizer.padTokenId ?? tokenizer.eosTokenIds[0] ?? 0;
    const batchSize = o.batchSize ?? 8;
    const total: Score = { lossSum: 0, correct: 0, count: 0 };
    for (let i = 0; i < tokenized.length; i += batchSize) {
      const s = scoreBatch(model, tokenized.slice(i, i + batchSize), padId, o.kernels);
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
      rows: rows.length, completionTokens: total.count, loss, perplexity: Math.exp(loss), tokenAccuracy: total.correct / total.count,
      exactMatch: matches === null ? null : matches / rows.length, exactMatches: matches,
      truncatedRows: tokenized.filter((r) => r.truncated).length, seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    model.dispose();
  }
}
