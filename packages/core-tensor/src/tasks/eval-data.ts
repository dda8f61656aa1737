/**
 * The data of `peft eval`: a JSONL file of `{"prompt": ..., "completion": ...}` rows or of `{"text": ...}`
 * rows (one format a file; chat rows are refused), read by train's reader (data/jsonl.ts: the same
 * formats, streamed lines, --max-row-bytes, strict UTF-8, a leading BOM skipped) before any model is
 * loaded: a bad row, a row of another format or a chat row names its line (exit 2).
 * Prompt/completion rows are tokenized the way prompt/completion fine-tuning data is: prompt with the
 * tokenizer's special tokens (BOS), the completion appended without them, scored on the completion's
 * tokens only. Too long (> seqLen): the prompt loses tokens from its start, so the completion is still
 * scored whole; a completion that alone does not fit keeps its first seqLen - 1 tokens after the last
 * prompt token. Text rows are tokenized and windowed by eval-text.ts.
 */
import { readDataRows, type DataRow } from '../data/jsonl.js';
import { MAX_ROW_BYTES } from '../data/lines.js';
import { encodePromptCompletion, fitPromptCompletion } from '../data/tokenize.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';

export type EvalRow = Extract<DataRow, { format: 'prompt_completion' }>;
export type TextRow = Extract<DataRow, { format: 'text' }>;

/** The rows of an eval file: all prompt/completion or all text. */
export type EvalData = { format: 'prompt_completion'; rows: EvalRow[] } | { format: 'text'; rows: TextRow[] };

export interface TokenizedRow {
  /** prompt + completion ids, at most seqLen */
  ids: number[];
  /** completion tokens are ids[start..] */
  start: number;
  truncated: boolean;
}

/** Every row of an eval file (blank lines skipped); throws E_INPUT naming file:line. */
export async function readEvalData(file: string, maxRowBytes = MAX_ROW_BYTES): Promise<EvalData> {
  const { format, rows } = await readDataRows(file, maxRowBytes, ['text', 'prompt_completion']);
  return format === 'text' ? { format, rows: rows as TextRow[] } : { format: 'prompt_completion', rows: rows as EvalRow[] };
}

/** prompt (+ special tokens) then completion, cut to seqLen as the module doc says (the training data's rules). */
export function tokenizeRow(tok: Tokenizer, row: Pick<EvalRow, 'prompt' | 'completion' | 'line'>, seqLen: number, file: string): TokenizedRow {
  const enc = encodePromptCompletion(tok, row.prompt, row.completion, `${file}:${row.line}`);
  const { p, c, truncated } = fitPromptCompletion(enc.p, enc.c, seqLen);
  return { ids: [...p, ...c], start: p.length, truncated };
}
