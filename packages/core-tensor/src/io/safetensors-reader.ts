/**
 * Lazy reader for one .safetensors file: `open` reads and validates only the header
 * (see safetensors-header.ts for the rules); tensor bytes are fetched on demand with
 * positional reads on one FileHandle, so a 10 GB file costs a few KB until used.
 * Not here: memory mapping (Node has none), dtype conversion, sharded folders (model-folder.ts).
 */
import type { FileHandle } from 'node:fs/promises';
import { inputError, PeftError } from '../errors.js';
import { fsError, isLfsPointer, lfsPointerError, LFS_POINTER_PREFIX, openRegularFile } from './regular-file.js';
import { headerLength, MAX_HEADER_BYTES, parseHeader, type TensorInfo } from './safetensors-header.js';

export type { TensorInfo } from './safetensors-header.js';
export { fsError } from './regular-file.js';

export interface OpenOptions {
  /** Refuse headers larger than this (default 100 MB, the crate's limit). */
  maxHeaderBytes?: number;
}

/** A single read() call moves at most 2 GiB - 1 on Linux; larger tensors are read in pieces. */
const MAX_READ = 0x7fff_f000;

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
    // A FIFO or device is refused before any read: reading one could block or never end.
    const { fh, size } = await openRegularFile(path);
    try {
      const head = new Uint8Array(Math.min(size, LFS_POINTER_PREFIX.length));
      await readFully(fh, head, 0, path);
      if (isLfsPointer(head)) throw lfsPointerError(path);
      const n = headerLength(head.subarray(0, 8), size, path, opts.maxHeaderBytes ?? MAX_HEADER_BYTES);
      const json = new Uint8Array(n);
      await readFully(fh, json, 8, path);
      const h = parseHeader(json, size, path);
      return new SafetensorsFile(path, fh, size, h.dataStart, h.metadata, h.tensors);
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
