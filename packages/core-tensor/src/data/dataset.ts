/**
 * `loadDataset`: a JSONL training file (and optionally a validation file) read, checked, split and
 * tokenized into Examples, with the counts `peft train` reports. The validation rows are either a
 * separate file (same format) or a seeded fraction of the training file's rows, chosen before
 * tokenization and packing and independent of the epoch shuffles (shuffle.ts).
 * Not here: batching and packing into fixed rows (batch.ts), the training loop (train/).
 */
import { inputError } from '../errors.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { scoredLabels, type Dataset, type Example } from './example.js';
import { readDataRows, type DataRow } from './jsonl.js';
import { splitRows } from './shuffle.js';
import { rowExamples, type TokenizeOptions } from './tokenize.js';

export interface LoadDatasetOptions {
  /** the longest example (tokens); longer rows are split (text) or truncated (see tokenize.ts) */
  seqLen: number;
  /** fraction of the rows held out for validation, in [0, 0.5) */
  valSplit?: number;
  /** a separate validation JSONL file (instead of valSplit) */
  valFile?: string;
  seed: number;
  /** examples will be packed into rows of seqLen: nothing is truncated, EOS separates examples */
  packing?: boolean;
}

function checkOptions(o: LoadDatasetOptions): void {
  if (!Number.isSafeInteger(o.seqLen) || o.seqLen < 2) throw inputError('E_INPUT', `seq-len must be an integer >= 2, got ${o.seqLen}`);
  if (!Number.isSafeInteger(o.seed)) throw inputError('E_INPUT', `seed must be an integer, got ${o.seed}`);
  const v = o.valSplit ?? 0;
  if (!(v >= 0 && v < 0.5)) throw inputError('E_INPUT', `val-split must be in [0, 0.5), got ${o.valSplit}`);
  if (v > 0 && o.valFile !== undefined) throw inputError('E_INPUT', 'give val-split or val-file, not both');
}

function tokenizeRows(tok: Tokenizer, rows: readonly DataRow[], o: TokenizeOptions): { examples: Example[]; truncated: number } {
  const examples: Example[] = [];
  let truncated = 0;
  for (const row of rows) {
    const r = rowExamples(tok, row, o);
    examples.push(...r.examples);
    if (r.truncated) truncated++;
  }
  return { examples, truncated };
}

/** Reads, splits and tokenizes; every bad row is an E_INPUT naming file:line. */
export async function loadDataset(file: string, tokenizer: Tokenizer, opts: LoadDatasetOptions): Promise<Dataset> {
  checkOptions(opts);
  const { format, rows } = await readDataRows(file);
  let trainRows: DataRow[] = rows;
  let valRows: DataRow[] = [];
  let valName = file;
  if (opts.valFile !== undefined) {
    const val = await readDataRows(opts.valFile);
    if (val.format !== format) throw inputError('E_INPUT', `${val.format} rows, but the training file ${file} is ${format}`, opts.valFile);
    valRows = val.rows;
    valName = opts.valFile;
  } else if ((opts.valSplit ?? 0) > 0) {
    const split = splitRows(rows.length, opts.valSplit ?? 0, opts.seed);
    if (split.train.length === 0) throw inputError('E_INPUT', `${rows.length} row(s) leave none for training after val-split ${opts.valSplit}`, file);
    trainRows = split.train.map((i) => rows[i]);
    valRows = split.val.map((i) => rows[i]);
  }
  const packing = opts.packing ?? false;
  const train = tokenizeRows(tokenizer, trainRows, { seqLen: opts.seqLen, packing, file });
  const val = tokenizeRows(tokenizer, valRows, { seqLen: opts.seqLen, packing, file: valName });
  let tokens = 0;
  let trainedTokens = 0;
  for (const ex of train.examples) {
    tokens += ex.ids.length;
    trainedTokens += scoredLabels(ex.labels);
  }
  return {
    format,
    train: train.examples,
    val: val.examples,
    stats: {
      rows: trainRows.length + valRows.length, trainRows: trainRows.length, valRows: valRows.length,
      tokens, trainedTokens, truncated: train.truncated + val.truncated,
    },
  };
}
