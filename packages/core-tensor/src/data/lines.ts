/**
 * The lines of a JSONL file, streamed: read in 1 MiB chunks (never whole), each line decoded as
 * strict UTF-8 (invalid bytes are an E_INPUT naming file:line, not U+FFFD), a UTF-8 byte-order mark
 * at the start of the file skipped, blank lines skipped, and a line longer than maxRowBytes refused
 * as soon as it passes the limit (so a 50 MB row costs at most the limit, never its whole size).
 * The same pass fingerprints the file (size + SHA-256) for `peft train --resume`.
 * Used by `peft train` (jsonl.ts) and `peft eval` (tasks/eval-data.ts). Not here: parsing rows.
 */
import { createHash } from 'node:crypto';
import { inputError } from '../errors.js';
import { fsError, openRegularFile } from '../io/regular-file.js';

/** The default of --max-row-bytes: the longest JSONL line (bytes, newline excluded) train and eval read. */
export const MAX_ROW_BYTES = 8 * 2 ** 20;

const CHUNK = 2 ** 20;
const BOM = [0xef, 0xbb, 0xbf];
const NEWLINE = 0x0a;

/** What a file held when it was read: resume refuses a checkpoint trained on other bytes. */
export interface FileFingerprint {
  bytes: number;
  sha256: string;
}

export function checkMaxRowBytes(v: number): void {
  if (!Number.isSafeInteger(v) || v < 1) throw inputError('E_INPUT', `max-row-bytes must be an integer >= 1, got ${v}`);
}

/** Calls onLine(text, line) for every non-blank line of `file` (line is 1-based); see the module doc. */
export async function readLines(file: string, maxRowBytes: number, onLine: (text: string, line: number) => void): Promise<FileFingerprint> {
  checkMaxRowBytes(maxRowBytes);
  const { fh } = await openRegularFile(file); // a FIFO or folder is refused by name, never read
  const hash = createHash('sha256');
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const buf = Buffer.allocUnsafe(CHUNK);
  let bytes = 0;
  let line = 1;
  let parts: Buffer[] = []; // the current line's bytes from earlier chunks
  let partBytes = 0;
  const tooLong = () => inputError('E_INPUT', `a row longer than ${maxRowBytes} bytes (--max-row-bytes)`, `${file}:${line}`);
  const emit = (raw: Uint8Array) => {
    const body = line === 1 && BOM.every((b, i) => raw[i] === b) ? raw.subarray(BOM.length) : raw;
    let text: string;
    try {
      text = decoder.decode(body);
    } catch {
      throw inputError('E_INPUT', 'not valid UTF-8', `${file}:${line}`);
    }
    if (text.trim() !== '') onLine(text, line);
    line++;
  };
  try {
    for (;;) {
      let n: number;
      try {
        ({ bytesRead: n } = await fh.read(buf, 0, CHUNK, null));
      } catch (e) {
        throw fsError(e, file, 'reading');
      }
      if (n === 0) break;
      const chunk = buf.subarray(0, n);
      hash.update(chunk);
      bytes += n;
      let start = 0;
      for (let nl = chunk.indexOf(NEWLINE, start); nl >= 0; nl = chunk.indexOf(NEWLINE, start)) {
        if (partBytes + nl - start > maxRowBytes) throw tooLong();
        const tail = chunk.subarray(start, nl);
        emit(parts.length ? Buffer.concat([...parts, tail]) : tail);
        parts = [];
        partBytes = 0;
        start = nl + 1;
      }
      if (partBytes + n - start > maxRowBytes) throw tooLong();
      if (start < n) {
        parts.push(Buffer.from(chunk.subarray(start))); // a copy: buf is reused
        partBytes += n - start;
      }
    }
    if (parts.length) emit(Buffer.concat(parts));
  } finally {
    await fh.close();
  }
  return { bytes, sha256: hash.digest('hex') };
}
