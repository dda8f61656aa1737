/**
 * The feature cache's file under OUT: what does not fit in RAM, kept across sessions (a resumed run
 * reuses it). Layout, little-endian:
 *   "PEFTQSTF" | u32 n | n bytes of JSON { format, version, fingerprint, features }   the header
 *   then records: "QSTR" | u32 T | 20-byte sha1 key | u32 0 | T * features bf16 values
 * A header whose fingerprint (the base's bytes and the feature layout) differs from this run's means
 * another base or layout: the file is started over. Records are scanned on open; a torn last record
 * (a killed run) is cut off. All I/O is synchronous: it is called from the model's forward.
 * Not here: which rows are cached and where (feature-cache.ts).
 */
import { closeSync, fstatSync, ftruncateSync, mkdirSync, openSync, readSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { PeftError } from '@peft/core-tensor';

const MAGIC = Buffer.from('PEFTQSTF');
const RECORD = Buffer.from('QSTR');
const RECORD_HEAD = 32;
const FORMAT = 'peft-qst-features';

export class FeatureFile {
  /** key -> (row length, byte offset of its values), as found on open. */
  readonly index = new Map<string, { T: number; offset: number }>();
  #fd: number | undefined;
  #end: number;

  private constructor(readonly path: string, fd: number, end: number, readonly perToken: number) {
    this.#fd = fd;
    this.#end = end;
  }

  /** Opens (or starts over) the file at `path` for records of `perToken` bf16 values per token. */
  static open(path: string, fingerprint: string, perToken: number): FeatureFile {
    mkdirSync(dirname(path), { recursive: true });
    const want = JSON.stringify({ format: FORMAT, version: 1, fingerprint, features: perToken });
    let fd: number;
    try {
      fd = openSync(path, 'a+');
      closeSync(fd);
      fd = openSync(path, 'r+');
    } catch (e) {
      throw new PeftError('E_IO', `${path}: cannot open the feature cache (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
    const size = fstatSync(fd).size;
    const head = headerOf(fd, size);
    if (head?.json === want) {
      const f = new FeatureFile(path, fd, head.end, perToken);
      f.#scan(size);
      return f;
    }
    ftruncateSync(fd, 0);
    const json = Buffer.from(want);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(json.length);
    const header = Buffer.concat([MAGIC, len, json]);
    writeSync(fd, header, 0, header.length, 0);
    return new FeatureFile(path, fd, header.length, perToken);
  }

  get bytes(): number {
    return this.#end;
  }

  /** Appends one row's values [T * perToken] (bf16 bits); returns their offset. */
  append(key: string, T: number, values: Uint16Array): number {
    const head = Buffer.alloc(RECORD_HEAD);
    RECORD.copy(head, 0);
    head.writeUInt32LE(T, 4);
    Buffer.from(key, 'hex').copy(head, 8);
    const body = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
    this.#write(head, this.#end);
    this.#write(body, this.#end + RECORD_HEAD);
    const offset = this.#end + RECORD_HEAD;
    this.#end = offset + body.length;
    return offset;
  }

  /** `count` bf16 values at `offset`. */
  read(offset: number, count: number): Uint16Array {
    const out = new Uint16Array(count);
    const buf = Buffer.from(out.buffer);
    let done = 0;
    while (done < buf.length) {
      const n = readSync(this.#fd!, buf, done, buf.length - done, offset + done);
      if (n === 0) throw new PeftError('E_IO', `${this.path}: the feature cache ended early (at byte ${offset + done})`);
      done += n;
    }
    return out;
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }

  #write(buf: Buffer, at: number): void {
    try {
      let done = 0;
      while (done < buf.length) done += writeSync(this.#fd!, buf, done, buf.length - done, at + done);
    } catch (e) {
      throw new PeftError('E_IO', `${this.path}: cannot write the feature cache (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
  }

  /** Reads the record heads from the header's end; cuts off a torn last record. */
  #scan(size: number): void {
    const head = Buffer.alloc(RECORD_HEAD);
    let at = this.#end;
    while (at + RECORD_HEAD <= size) {
      readSync(this.#fd!, head, 0, RECORD_HEAD, at);
      const T = head.readUInt32LE(4);
      const next = at + RECORD_HEAD + T * this.perToken * 2;
      if (!head.subarray(0, 4).equals(RECORD) || next > size) break;
      this.index.set(head.subarray(8, 28).toString('hex'), { T, offset: at + RECORD_HEAD });
      at = next;
    }
    if (at < size) ftruncateSync(this.#fd!, at);
    this.#end = at;
  }
}

function headerOf(fd: number, size: number): { json: string; end: number } | undefined {
  if (size < MAGIC.length + 4) return undefined;
  const head = Buffer.alloc(MAGIC.length + 4);
  readSync(fd, head, 0, head.length, 0);
  if (!head.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  const n = head.readUInt32LE(MAGIC.length);
  if (n > 1 << 16 || head.length + n > size) return undefined;
  const json = Buffer.alloc(n);
  readSync(fd, json, 0, n, head.length);
  return { json: json.toString('utf8'), end: head.length + n };
}
