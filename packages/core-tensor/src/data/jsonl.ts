/**
 * Reading a training JSONL file: one JSON object per line in one of three formats, told apart by
 * their keys (as TRL's dataset formats are): {"text"}, {"prompt", "completion"} or
 * {"messages": [{"role", "content"}, ...]}. The first row fixes the format; a row of another format
 * (or of a format the reader does not take: `peft eval` reads no chat rows), invalid JSON, wrong types
 * or an empty value is an E_INPUT naming `file:line`, the format checked before the values. Blank lines are
 * skipped; other keys (ids, metadata) are ignored. Lines are streamed with a length limit and strict
 * UTF-8 (lines.ts). Not here: tokenization (tokenize.ts, chat.ts).
 */
import { inputError } from '../errors.js';
import type { ChatMessage } from '../tokenizer/chat-template.js';
import type { DataFormat } from './example.js';
import { MAX_ROW_BYTES, readLines, type FileFingerprint } from './lines.js';

export type DataRow =
  | { format: 'text'; text: string; line: number }
  | { format: 'prompt_completion'; prompt: string; completion: string; line: number }
  | { format: 'messages'; messages: ChatMessage[]; line: number };

type Obj = Record<string, unknown>;

/** The format a row's keys name; more than one or none is an error. */
function formatOf(o: Obj, where: string): DataFormat {
  const found: DataFormat[] = [];
  if ('text' in o) found.push('text');
  if ('prompt' in o || 'completion' in o) found.push('prompt_completion');
  if ('messages' in o) found.push('messages');
  if (found.length === 1) return found[0];
  if (found.length === 0) throw inputError('E_INPUT', 'a row needs "text", "prompt" + "completion", or "messages"', where);
  throw inputError('E_INPUT', `a row has the keys of several formats (${found.join(', ')}); use one`, where);
}

function messagesOf(v: unknown, where: string): ChatMessage[] {
  if (!Array.isArray(v) || v.length === 0) throw inputError('E_INPUT', '"messages" must be a non-empty list', where);
  const msgs = v.map((m: unknown, i) => {
    const o = m as Obj | null;
    if (o === null || typeof o !== 'object' || Array.isArray(o) || typeof o.role !== 'string' || typeof o.content !== 'string') {
      throw inputError('E_INPUT', `messages[${i}] must be an object with string "role" and "content"`, where);
    }
    return o as ChatMessage;
  });
  if (!msgs.some((m) => m.role === 'assistant')) throw inputError('E_INPUT', 'no "assistant" message: nothing to train on', where);
  return msgs;
}

/** The keys that name each format, as messages say them. */
const FORMAT_KEYS: Record<DataFormat, string> = { text: '{"text"}', prompt_completion: '{"prompt", "completion"}', messages: '{"messages"}' };

/** One parsed, checked row (`where` = file:line); `accept` may refuse its format before its values are checked. */
function parseRow(raw: string, line: number, where: string, accept: (format: DataFormat) => void): DataRow {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (e) {
    throw inputError('E_INPUT', `not valid JSON (${(e as Error).message.split('\n')[0]})`, where);
  }
  const o = v as Obj | null;
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw inputError('E_INPUT', 'a row must be a JSON object', where);
  const format = formatOf(o, where);
  accept(format);
  if (format === 'text') {
    if (typeof o.text !== 'string' || o.text === '') throw inputError('E_INPUT', '"text" must be a non-empty string', where);
    return { format, text: o.text, line };
  }
  if (format === 'prompt_completion') {
    // As eval-data.ts: an empty prompt is allowed (BOS precedes the completion), an empty completion is not.
    if (typeof o.prompt !== 'string') throw inputError('E_INPUT', '"prompt" must be a string', where);
    if (typeof o.completion !== 'string' || o.completion === '') throw inputError('E_INPUT', '"completion" must be a non-empty string', where);
    return { format, prompt: o.prompt, completion: o.completion, line };
  }
  return { format, messages: messagesOf(o.messages, where), line };
}

/**
 * Every row of a JSONL file, all of the first row's format, and the file's fingerprint; throws
 * E_INPUT naming file:line. Lines longer than maxRowBytes (default MAX_ROW_BYTES) are refused, and so
 * is a row whose format is not one of `formats` (default: all three).
 */
export async function readDataRows(file: string, maxRowBytes = MAX_ROW_BYTES, formats: readonly DataFormat[] = ['text', 'prompt_completion', 'messages']):
Promise<{ format: DataFormat; rows: DataRow[]; fingerprint: FileFingerprint }> {
  const rows: DataRow[] = [];
  const fingerprint = await readLines(file, maxRowBytes, (raw, line) => {
    const where = `${file}:${line}`;
    rows.push(parseRow(raw, line, where, (format) => {
      if (!formats.includes(format)) {
        throw inputError('E_INPUT', `a ${FORMAT_KEYS[format]} row; this command reads ${formats.map((f) => FORMAT_KEYS[f]).join(' or ')} rows`, where);
      }
      const first = rows[0];
      if (first && format !== first.format) {
        throw inputError('E_INPUT', `a ${format} row, but line ${first.line} is ${first.format}; a file holds one format`, where);
      }
    }));
  });
  if (rows.length === 0) {
    throw inputError('E_INPUT', `no rows (expected JSON lines of ${formats.map((f) => FORMAT_KEYS[f]).join(', ')})`, file);
  }
  return { format: rows[0].format, rows, fingerprint };
}
