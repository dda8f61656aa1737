/**
 * Lazy reader for one .safetensors file: `open` reads and validates only the header
 * (see safetensors-header.ts for the rules); tensor bytes are fetched on demand with
 * positional reads on one FileHandle, so a 10 GB file costs a few KB until used.
 * Not here: memory mapping (Node has none), dtype conversion, sharded folders (model-folder.ts).
 */
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { inputError, isNoSpace, noSpaceError, PeftError } from '../errors.js';
import { headerLength, MAX_HEADER_BYTES, parseHeader, type TensorInfo } from './safetensors-header.js';

export type { TensorInfo } from './safetensors-header.js';

export interface OpenOptions {
  /** Refuse headers larger than this (default 100 MB, the crate's limit). */
  maxHeaderBytes?: number;
}

/** A single read() call moves at most 2 GiB - 1 on Linux; larger tensors are read in pieces. */
const MAX_READ = 0x7fff_f000;

/** Maps a Node fs error to our error codes (missing file -> E_NOT_FOUND, the rest -> E_IO). */
export function fsError(e: unknown, path: string, doing: string): PeftError {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return inputError('E_NOT_FOUND', 'no such file', path);
  if (code === 'EACCES' || code === 'EPERM') return inputError('E_IO', `permission denied while ${doing}`, path);
  if (code === 'EROFS') return inputError('E_IO', `read-only file system while ${doing}`, path);
  if (isNoSpace(e)) return noSpaceError(path, undefined, e);
  return inputError('E_IO', `${doing} failed: ${(e as Error)?.message ?? String(e)}`, path);
}

/** Reads exactly `length` bytes at `position` into `dest`; a short file means it changed under us. */
async function readFully(fh: FileHandle, dest: Uint8Array, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < dest.byteLength) {
    const len = Math.min(MAX_READ, dest.byteLength - done);
    let bytesRead: number;
    try {
      ({ bytesRead } = await fh.read(dest, done, len, position + done));
    } catch (e) {
      throw fsError(e, path, 'reading');
    }
    if (bytesRead === 0) throw inputError('E_FORMAT', `file ended at byte ${position + done}, expected ${dest.byteLength - done} more (was it truncated?)`, path);
    done += bytesRead;
  }
}

export class SafetensorsFile {
  readonly path: string;
  readonly metadata: Readonly<Record<string, string>>;
  /** In file order (ascending data offsets). */
  readonly tensors: TensorInfo[];
  /** Total file size and where the data section starts. */
  readonly fileSize: number;
  readonly dataStart: number;
  #fh: FileHandle | undefined;
  readonly #byName: Map<string, TensorInfo>;

  private constructor(path: string, fh: FileHandle, fileSize: number, dataStart: number, metadata: Record<string, string>, tensors: TensorInfo[]) {
    this.path = path;
    this.#fh = fh;
    this.fileSize = fileSize;
    this.dataStart = dataStart;
    this.metadata = Object.freeze(metadata);
    this.tensors = tensors;
    this.#byName = new Map(tensors.map((t) => [t.name, t]));
  }

  static async open(path: string, opts: OpenOptions = {}): Promise<SafetensorsFile> {
    let fh: FileHandle;
    try {
      fh = await fsp.open(path, 'r');
    } catch (e) {
      throw fsError(e, path, 'opening');
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw inputError('E_FORMAT', 'not a regular file', path);
      const prefix = new Uint8Array(8);
      if (st.size >= 8) await readFully(fh, prefix, 0, path);
      const n = headerLength(prefix, st.size, path, opts.maxHeaderBytes ?? MAX_HEADER_BYTES);
      const json = new Uint8Array(n);
      await readFully(fh, json, 8, path);
      const h = parseHeader(json, st.size, path);
      return new SafetensorsFile(path, fh, st.size, h.dataStart, h.metadata, h.tensors);
    } catch (e) {
      await fh.close().catch(() => {});
      throw e instanceof PeftError ? e : fsError(e, path, 'reading the header');
    }
  }

  has(name: string): boolean {
    return this.#byName.has(name);
  }

  /** The tensor's header entry, or undefined. */
  get(name: string): TensorInfo | undefined {
    return this.#byName.get(name);
  }

  #info(name: string): TensorInfo {
    const t = this.#byName.get(name);
    if (!t) throw inputError('E_NOT_FOUND', `no tensor named ${JSON.stringify(name)}`, this.path);
    return t;
  }

  #handle(): FileHandle {
    if (!this.#fh) throw inputError('E_IO', 'file is closed', this.path);
    return this.#fh;
  }

  /** The tensor's raw little-endian bytes, in a fresh buffer starting at offset 0 (so aligned for typed views). */
  async read(name: string): Promise<Uint8Array> {
    const t = this.#info(name);
    const fh = this.#handle();
    // allocUnsafeSlow: own ArrayBuffer at offset 0, not zero-filled (we overwrite every byte).
    const buf = Buffer.allocUnsafeSlow(t.byteLength);
    const out = new Uint8Array(buf.buffer, 0, t.byteLength);
    await readFully(fh, out, this.dataStart + t.offsets[0], this.path);
    return out;
  }

  /** Reads the tensor into `dest` (exactly byteLength bytes), e.g. straight into native memory. */
  async readInto(name: string, dest: Uint8Array): Promise<void> {
    const t = this.#info(name);
    if (dest.byteLength !== t.byteLength)
      throw inputError('E_INPUT', `readInto(${JSON.stringify(name)}): destination has ${dest.byteLength} bytes, tensor has ${t.byteLength}`, this.path);
    await readFully(this.#handle(), dest, this.dataStart + t.offsets[0], this.path);
  }

  /** Fills `dest` from the data section starting at `offset` (to copy spans without per-tensor buffers). */
  async readRange(offset: number, dest: Uint8Array): Promise<void> {
    if (offset < 0 || offset + dest.byteLength > this.fileSize - this.dataStart)
      throw inputError('E_INPUT', `readRange(${offset}, ${dest.byteLength}) is outside the data section`, this.path);
    await readFully(this.#handle(), dest, this.dataStart + offset, this.path);
  }

  async close(): Promise<void> {
    const fh = this.#fh;
    this.#fh = undefined;
    if (fh) await fh.close();
  }
}
