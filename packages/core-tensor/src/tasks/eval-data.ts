/**
 * The data of `peft eval`: a JSONL file of `{"prompt": ..., "completion": ...}` rows, streamed with
 * train's line rules (data/lines.ts: --max-row-bytes, strict UTF-8, a leading BOM skipped) and
 * checked before any model is loaded (a bad row names its line: exit 2), then tokenized the way
 * prompt/completion fine-tuning data is: prompt with the tokenizer's special tokens (BOS), the
 * completion appended without them, scored on the completion's tokens only.
 * Too long (> seqLen): the prompt loses tokens from its start, so the completion is still scored whole;
 * a completion that alone does not fit keeps its first seqLen - 1 tokens after the last prompt token.
 */
import { inputError } from '../errors.js';
import { MAX_ROW_BYTES, readLines } from '../data/lines.js';
import { encodePromptCompletion, fitPromptCompletion } from '../data/tokenize.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';

export interface EvalRow {
  prompt: string;
  completion: string;
  /** 1-based line in the file. */
  line: number;
}

export interface TokenizedRow {
  /** prompt + completion ids, at most seqLen */
  ids: number[];
  /** completion tokens are ids[start..] */
  start: number;
  truncated: boolean;
}

/** One checked row (`where` = file:line). */
function parseEvalRow(raw: string, line: number, where: string): EvalRow {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (e) {
    throw inputError('E_INPUT', `not valid JSON (${(e as Error).message.split('\n')[0]})`, where);
  }
  const o = v as Record<string, unknown> | null;
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw inputError('E_INPUT', 'a row must be a JSON object {"prompt", "completion"}', where);
  if (typeof o.prompt !== 'string') throw inputError('E_INPUT', '"prompt" must be a string', where);
  if (typeof o.completion !== 'string' || o.completion === '') throw inputError('E_INPUT', '"completion" must be a non-empty string', where);
  return { prompt: o.prompt, completion: o.completion, line };
}

/** Every row of a prompt/completion JSONL file (blank lines skipped); throws E_INPUT naming file:line. */
export async function readEvalRows(file: string, maxRowBytes = MAX_ROW_BYTES): Promise<EvalRow[]> {
  const rows: EvalRow[] = [];
  await readLines(file, maxRowBytes, (raw, line) => rows.push(parseEvalRow(raw, line, `${file}:${line}`)));
  if (rows.length === 0) throw inputError('E_INPUT', 'no rows (expected JSON lines {"prompt": ..., "completion": ...})', file);
  return rows;
}

/** prompt (+ special tokens) then completion, cut to seqLen as the module doc says (the training data's rules). */
export function tokenizeRow(tok: Tokenizer, row: EvalRow, seqLen: number, file: string): TokenizedRow {
  const enc = encodePromptCompletion(tok, row.prompt, row.completion, `${file}:${row.line}`);
  const { p, c, truncated } = fitPromptCompletion(enc.p, enc.c, seqLen);
  return { ids: [...p, ...c], start: p.length, truncated };
}
