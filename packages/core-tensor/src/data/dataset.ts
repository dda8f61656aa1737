/**
 * `loadDataset`: a JSONL training file (and optionally a validation file) read, checked, split and
 * tokenized into Examples, with the counts `peft train` reports. The validation rows are either a
 * separate file (same format) or a seeded fraction of the training file's rows, chosen before
 * tokenization and packing and independent of the epoch shuffles (shuffle.ts).
 * Not here: batching and packing into fixed rows (batch.ts), the training loop (train/).
 */
import { inputError } from '../errors.js';
import type { ConversationRender } from '../tokenizer/chat-template.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { renderChats } from './chat.js';
import { scoredLabels, type Dataset, type Example } from './example.js';
import { readDataRows, type DataRow } from './jsonl.js';
import { checkMaxRowBytes, MAX_ROW_BYTES, type FileFingerprint } from './lines.js';
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
  /** the longest JSONL line in bytes (default MAX_ROW_BYTES, 8 MiB); longer is E_INPUT naming file:line */
  maxRowBytes?: number;
}

/** Chat rows sent to the render worker per round trip: at most this many, or this many characters of content. */
const CHAT_GROUP_ROWS = 64;
const CHAT_GROUP_CHARS = 2 ** 22;

function checkOptions(o: LoadDatasetOptions): void {
  if (!Number.isSafeInteger(o.seqLen) || o.seqLen < 2) throw inputError('E_INPUT', `seq-len must be an integer >= 2, got ${o.seqLen}`);
  if (!Number.isSafeInteger(o.seed)) throw inputError('E_INPUT', `seed must be an integer, got ${o.seed}`);
  const v = o.valSplit ?? 0;
  if (!(v >= 0 && v < 0.5)) throw inputError('E_INPUT', `val-split must be in [0, 0.5), got ${o.valSplit}`);
  if (v > 0 && o.valFile !== undefined) throw inputError('E_INPUT', 'give val-split or val-file, not both');
  if (o.maxRowBytes !== undefined) checkMaxRowBytes(o.maxRowBytes);
}

/** The renders of rows[from..to) (messages rows only), and where the group ends. */
async function renderGroup(tok: Tokenizer, rows: readonly DataRow[], from: number, file: string): Promise<{ renders: ConversationRender[]; to: number }> {
  let to = from;
  let chars = 0;
  const group: { messages: Extract<DataRow, { format: 'messages' }>['messages']; where: string }[] = [];
  while (to < rows.length && group.length < CHAT_GROUP_ROWS && chars < CHAT_GROUP_CHARS) {
    const row = rows[to++];
    if (row.format !== 'messages') continue;
    for (const m of row.messages) chars += m.content.length;
    group.push({ messages: row.messages, where: `${file}:${row.line}` });
  }
  return { renders: await renderChats(tok, group), to };
}

async function tokenizeRows(tok: Tokenizer, rows: readonly DataRow[], o: TokenizeOptions): Promise<{ examples: Example[]; truncated: number }> {
  const examples: Example[] = [];
  let truncated = 0;
  for (let i = 0; i < rows.length;) {
    const group = rows[i].format === 'messages' ? await renderGroup(tok, rows, i, o.file) : { renders: [], to: i + 1 };
    for (let j = i; j < group.to; j++) {
      const r = rowExamples(tok, rows[j], o, group.renders[j - i]);
      for (const ex of r.examples) examples.push(ex); // a loop: a long text has too many chunks to spread as arguments
      if (r.truncated) truncated++;
    }
    i = group.to;
  }
  return { examples, truncated };
}

/** Reads, splits and tokenizes; every bad row is an E_INPUT naming file:line. */
export async function loadDataset(file: string, tokenizer: Tokenizer, opts: LoadDatasetOptions): Promise<Dataset> {
  checkOptions(opts);
  const maxRowBytes = opts.maxRowBytes ?? MAX_ROW_BYTES;
  const { format, rows, fingerprint } = await readDataRows(file, maxRowBytes);
  let trainRows: DataRow[] = rows;
  let valRows: DataRow[] = [];
  let valName = file;
  let valFingerprint: FileFingerprint | undefined;
  if (opts.valFile !== undefined) {
    const val = await readDataRows(opts.valFile, maxRowBytes);
    valFingerprint = val.fingerprint;
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
  const train = await tokenizeRows(tokenizer, trainRows, { seqLen: opts.seqLen, packing, file });
  const val = await tokenizeRows(tokenizer, valRows, { seqLen: opts.seqLen, packing, file: valName });
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
    fingerprint, valFingerprint,
  };
}
