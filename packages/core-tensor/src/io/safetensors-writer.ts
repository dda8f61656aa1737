/**
 * Streaming safetensors writer. The header must precede the data and lists every tensor, so
 * `add` appends each tensor's bytes to a spill file next to the output (memory stays bounded by
 * the one tensor the caller holds); `finish` writes the header and copies the spill, in header
 * order, into the final file in 8 MiB chunks, then deletes the spill.
 * Tensor order and header bytes match the reference crate (see `safetensorsOrder`/`buildHeader`),
 * so a file we write equals the one `safetensors.torch.save_file` writes for the same tensors.
 * Not here: sharding (sharded-writer.ts), atomic folder replacement (atomic.ts).
 */
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { inputError, PeftError } from '../errors.js';
import { bytesOf, DTYPE_SIZES, isDtype, type Dtype, type NamedRawTensor } from '../dtype.js';
import { buildHeader, METADATA_KEY, safetensorsOrder, type TensorInfo } from './safetensors-header.js';
import { fsError } from './safetensors-reader.js';

export interface TensorInput {
  name: string;
  dtype: Dtype;
  shape: readonly number[];
  /** Little-endian element bytes, or a typed array whose bytes are taken as they are. */
  data: Uint8Array | ArrayBufferView;
}

export interface WriterOptions {
  metadata?: Record<string, string>;
}

export interface WrittenFile {
  path: string;
  /** In file order, with offsets as written. */
  tensors: TensorInfo[];
  /** Sum of tensor byte lengths (the data section). */
  dataBytes: number;
}

const CHUNK = 8 << 20;

/** Checks a tensor record before it touches the disk; returns its bytes. */
export function checkTensorInput(t: TensorInput | NamedRawTensor, where: string): Uint8Array {
  const name = JSON.stringify(t.name);
  if (typeof t.name !== 'string' || t.name === METADATA_KEY) throw inputError('E_INPUT', `invalid tensor name ${name}`, where);
  if (!isDtype(t.dtype)) throw inputError('E_INPUT', `tensor ${name} has unknown dtype ${JSON.stringify(t.dtype)}`, where);
  if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
    throw inputError('E_INPUT', `tensor ${name} has invalid shape ${JSON.stringify(t.shape)}`, where);
  const data = t.data instanceof Uint8Array ? t.data : bytesOf(t.data);
  const want = t.shape.reduce((a, d) => a * d, DTYPE_SIZES[t.dtype]);
  if (data.byteLength !== want)
    throw inputError('E_INPUT', `tensor ${name} (${t.dtype} [${t.shape.join(', ')}]) needs ${want} bytes, got ${data.byteLength}`, where);
  return data;
}

/** `__metadata__` is a string->string map in the format; anything else would write an unreadable file. */
export function checkMetadata(metadata: Record<string, string> | undefined, where: string): void {
  if (metadata === undefined) return;
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) throw inputError('E_INPUT', 'metadata is not an object', where);
  for (const [k, v] of Object.entries(metadata))
    if (typeof v !== 'string') throw inputError('E_INPUT', `metadata value for ${JSON.stringify(k)} is not a string`, where);
}

export async function writeAll(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.byteLength) {
    const { bytesWritten } = await fh.write(data, done, Math.min(CHUNK, data.byteLength - done), position + done);
    done += bytesWritten;
  }
}

interface SpilledEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
  byteLength: number;
  /** Where its bytes sit in the spill file. */
  spillAt: number;
}

export class SafetensorsWriter {
  readonly path: string;
  readonly #spillPath: string;
  readonly #metadata: Record<string, string> | undefined;
  #spill: FileHandle | undefined;
  #spillSize = 0;
  #entries: SpilledEntry[] = [];
  #names = new Set<string>();
  #state: 'open' | 'finished' | 'aborted' = 'open';
  /** Serializes add/finish/abort so callers that forget an await cannot interleave writes. */
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(path: string, spillPath: string, spill: FileHandle, metadata?: Record<string, string>) {
    this.path = path;
    this.#spillPath = spillPath;
    this.#spill = spill;
    this.#metadata = metadata;
  }

  static async create(path: string, opts: WriterOptions = {}): Promise<SafetensorsWriter> {
    checkMetadata(opts.metadata, path);
    // Same directory as the output: no cross-device copy, and an abandoned spill is visibly ours.
    const spillPath = join(dirname(path), `.${basename(path)}.peft-spill-${process.pid}-${randomBytes(4).toString('hex')}`);
    let spill: FileHandle;
    try {
      spill = await fsp.open(spillPath, 'wx+');
    } catch (e) {
      throw fsError(e, spillPath, 'creating a spill file');
    }
    return new SafetensorsWriter(path, spillPath, spill, opts.metadata ? { ...opts.metadata } : undefined);
  }

  get tensorCount(): number {
    return this.#entries.length;
  }

  /** Bytes of tensor data added so far. */
  get dataBytes(): number {
    return this.#spillSize;
  }

  #queue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn, fn);
    this.#tail = run.catch(() => {});
    return run;
  }

  #checkOpen(): void {
    if (this.#state !== 'open') throw inputError('E_INPUT', `writer is already ${this.#state}`, this.path);
  }

  add(t: TensorInput | NamedRawTensor): Promise<void> {
    return this.#queue(async () => {
      this.#checkOpen();
      const data = checkTensorInput(t, this.path);
      if (this.#names.has(t.name)) throw inputError('E_INPUT', `duplicate tensor name ${JSON.stringify(t.name)}`, this.path);
      this.#names.add(t.name);
      const spillAt = this.#spillSize;
      try {
        await writeAll(this.#spill!, data, spillAt);
      } catch (e) {
        throw fsError(e, this.#spillPath, 'writing');
      }
      this.#spillSize += data.byteLength;
      this.#entries.push({ name: t.name, dtype: t.dtype, shape: [...t.shape], byteLength: data.byteLength, spillAt });
    });
  }

  /** Writes the file; on failure removes both the partial output and the spill. */
  finish(): Promise<WrittenFile> {
    return this.#queue(async () => {
      this.#checkOpen();
      try {
        return await this.#writeFinal();
      } catch (e) {
        await this.#cleanup(true);
        throw e instanceof PeftError ? e : fsError(e, this.path, 'writing');
      }
    });
  }

  async #writeFinal(): Promise<WrittenFile> {
    const ordered = safetensorsOrder(this.#entries);
    const { bytes: header, offsets } = buildHeader(ordered, this.#metadata);
    const out = await fsp.open(this.path, 'w');
    try {
      await writeAll(out, header, 0);
      const buf = new Uint8Array(Math.min(CHUNK, Math.max(1, this.#spillSize)));
      let pos = header.byteLength;
      for (const e of ordered) {
        for (let done = 0; done < e.byteLength; ) {
          const n = Math.min(buf.byteLength, e.byteLength - done);
          const { bytesRead } = await this.#spill!.read(buf, 0, n, e.spillAt + done);
          if (bytesRead === 0) throw inputError('E_IO', 'spill file ended early', this.#spillPath);
          await writeAll(out, buf.subarray(0, bytesRead), pos);
          pos += bytesRead;
          done += bytesRead;
        }
      }
    } finally {
      await out.close();
    }
    await this.#cleanup(false);
    this.#state = 'finished';
    const tensors = ordered.map((e, i) => ({ name: e.name, dtype: e.dtype, shape: e.shape, offsets: offsets[i], byteLength: e.byteLength }));
    return { path: this.path, tensors, dataBytes: this.#spillSize };
  }

  async #cleanup(removeOutput: boolean): Promise<void> {
    const spill = this.#spill;
    this.#spill = undefined;
    if (spill) await spill.close().catch(() => {});
    await fsp.rm(this.#spillPath, { force: true });
    if (removeOutput) {
      this.#state = 'aborted';
      await fsp.rm(this.path, { force: true });
    }
  }

  /** Drops everything written so far (spill and any partial output). Safe to call twice. */
  abort(): Promise<void> {
    return this.#queue(async () => {
      if (this.#state === 'finished') return;
      await this.#cleanup(true);
    });
  }
}

/** In-memory serialization for small tensor sets (tests, adapters): same bytes as the streaming writer. */
export function serializeSafetensors(tensors: readonly (TensorInput | NamedRawTensor)[], metadata?: Record<string, string>, where = '<memory>'): Uint8Array {
  checkMetadata(metadata, where);
  const seen = new Set<string>();
  const items = tensors.map((t) => {
    const data = checkTensorInput(t, where);
    if (seen.has(t.name)) throw inputError('E_INPUT', `duplicate tensor name ${JSON.stringify(t.name)}`, where);
    seen.add(t.name);
    return { name: t.name, dtype: t.dtype, shape: t.shape, byteLength: data.byteLength, data };
  });
  const ordered = safetensorsOrder(items);
  const { bytes: header } = buildHeader(ordered, metadata);
  const out = new Uint8Array(header.byteLength + ordered.reduce((a, t) => a + t.byteLength, 0));
  out.set(header, 0);
  let pos = header.byteLength;
  for (const t of ordered) {
    out.set(t.data, pos);
    pos += t.byteLength;
  }
  return out;
}

/** Writes a small safetensors file in one go (everything is held in memory). */
export async function writeSafetensors(path: string, tensors: readonly (TensorInput | NamedRawTensor)[], metadata?: Record<string, string>): Promise<void> {
  const bytes = serializeSafetensors(tensors, metadata, path);
  try {
    await fsp.writeFile(path, bytes);
  } catch (e) {
    throw fsError(e, path, 'writing');
  }
}
