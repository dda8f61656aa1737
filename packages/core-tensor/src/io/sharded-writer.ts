/**
 * Writes a model's tensors into one or more safetensors shards, laid out the way transformers'
 * `save_pretrained` does: `model.safetensors` when everything fits in one shard, otherwise
 * `model-00001-of-0000N.safetensors` ... plus `model.safetensors.index.json`
 * ({"metadata":{"total_size":N},"weight_map":{name:file}}, json.dumps(indent=2, sort_keys=True)).
 *
 * Splitting follows huggingface_hub's `split_state_dict_into_shards_factory`, in add order: a tensor
 * that would push the current shard past `maxShardBytes` starts a new shard; a tensor larger than
 * `maxShardBytes` gets a shard of its own, numbered when it is written (ahead of the shard still
 * filling). N is known only at the end, so shards are written under temporary names and renamed
 * by `finish`. Each shard streams through a SafetensorsWriter, so memory stays bounded by one tensor.
 * Not here: the atomic replacement of the whole output folder (atomic.ts).
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { inputError, PeftError } from '../errors.js';
import type { NamedRawTensor } from '../dtype.js';
import { pyJsonDumps } from './py-json.js';
import { fsError } from './safetensors-reader.js';
import { checkMetadata, checkTensorInput, SafetensorsWriter, type TensorInput } from './safetensors-writer.js';

/** transformers' default max_shard_size="5GB", which huggingface_hub parses as 5 * 10^9. */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

export interface ShardedWriterOptions {
  maxShardBytes?: number;
  /** File name stem: "model" gives model.safetensors / model.safetensors.index.json. */
  baseName?: string;
  /**
   * `__metadata__` of every shard. Default {"format":"pt"}, as save_pretrained writes: transformers refuses
   * shards whose metadata lacks a known format. Pass {} for none.
   */
  metadata?: Record<string, string>;
}

export interface ShardedResult {
  /** Shard file names (relative to dir), in shard order. */
  files: string[];
  /** Index file name, when there is more than one shard. */
  indexFile?: string;
  totalSize: number;
  /** tensor name -> shard file name. */
  weightMap: Record<string, string>;
}

interface DoneShard {
  tmpPath: string;
  names: string[];
}

export function shardFileName(baseName: string, i: number, n: number): string {
  return `${baseName}-${String(i).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
}

export class ShardedWriter {
  readonly dir: string;
  readonly maxShardBytes: number;
  readonly baseName: string;
  readonly #metadata: Record<string, string> | undefined;
  readonly #tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  #current: SafetensorsWriter | undefined;
  #currentNames: string[] = [];
  #done: DoneShard[] = [];
  #names = new Set<string>();
  #totalSize = 0;
  #shardSeq = 0;
  #state: 'open' | 'finished' | 'aborted' = 'open';
  #tail: Promise<unknown> = Promise.resolve();

  /** Cheap: nothing touches the disk until the first tensor (the folder is created then if missing). */
  constructor(dir: string, opts: ShardedWriterOptions = {}) {
    const max = opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
    if (!Number.isSafeInteger(max) || max <= 0) throw inputError('E_INPUT', `maxShardBytes must be a positive integer, got ${max}`);
    if (opts.baseName !== undefined && !/^[\w.-]+$/.test(opts.baseName)) throw inputError('E_INPUT', `invalid shard base name ${JSON.stringify(opts.baseName)}`);
    checkMetadata(opts.metadata, dir);
    this.dir = dir;
    this.maxShardBytes = max;
    this.baseName = opts.baseName ?? 'model';
    this.#metadata = opts.metadata ?? { format: 'pt' };
  }

  /** Same as the constructor, but creates the folder now so a bad path fails early. */
  static async create(dir: string, opts: ShardedWriterOptions = {}): Promise<ShardedWriter> {
    const w = new ShardedWriter(dir, opts);
    await w.#mkdir();
    return w;
  }

  #madeDir = false;
  async #mkdir(): Promise<void> {
    if (this.#madeDir) return;
    try {
      await fsp.mkdir(this.dir, { recursive: true });
    } catch (e) {
      throw fsError(e, this.dir, 'creating the output folder');
    }
    this.#madeDir = true;
  }

  #queue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn, fn);
    this.#tail = run.catch(() => {});
    return run;
  }

  async #newShard(): Promise<SafetensorsWriter> {
    await this.#mkdir();
    const tmp = join(this.dir, `.${this.baseName}.peft-shard-${this.#tag}-${++this.#shardSeq}.safetensors`);
    return SafetensorsWriter.create(tmp, { metadata: this.#metadata });
  }

  async #closeCurrent(): Promise<void> {
    const w = this.#current;
    if (!w) return;
    this.#current = undefined;
    await w.finish();
    this.#done.push({ tmpPath: w.path, names: this.#currentNames });
    this.#currentNames = [];
  }

  add(t: TensorInput | NamedRawTensor): Promise<void> {
    return this.#queue(async () => {
      if (this.#state !== 'open') throw inputError('E_INPUT', `sharded writer is already ${this.#state}`, this.dir);
      const size = checkTensorInput(t, this.dir).byteLength;
      if (this.#names.has(t.name)) throw inputError('E_INPUT', `duplicate tensor name ${JSON.stringify(t.name)}`, this.dir);
      this.#names.add(t.name);
      this.#totalSize += size;
      if (size > this.maxShardBytes) {
        const own = await this.#newShard();
        await own.add(t);
        await own.finish();
        this.#done.push({ tmpPath: own.path, names: [t.name] });
        return;
      }
      if (this.#current && this.#current.dataBytes + size > this.maxShardBytes) await this.#closeCurrent();
      this.#current ??= await this.#newShard();
      await this.#current.add(t);
      this.#currentNames.push(t.name);
    });
  }

  /** Closes the last shard, renames shards to their final names, writes the index when sharded. */
  finish(): Promise<ShardedResult> {
    return this.#queue(async () => {
      if (this.#state !== 'open') throw inputError('E_INPUT', `sharded writer is already ${this.#state}`, this.dir);
      try {
        if (!this.#current && this.#done.length === 0) this.#current = await this.#newShard(); // empty model: one empty file
        await this.#closeCurrent();
        const result = await this.#renameAll();
        this.#state = 'finished';
        return result;
      } catch (e) {
        await this.#removeAll();
        await fsp.rm(join(this.dir, `${this.baseName}.safetensors.index.json`), { force: true }).catch(() => {});
        throw e instanceof PeftError ? e : fsError(e, this.dir, 'writing shards');
      }
    });
  }

  async #renameAll(): Promise<ShardedResult> {
    const n = this.#done.length;
    const files = this.#done.map((_, i) => (n === 1 ? `${this.baseName}.safetensors` : shardFileName(this.baseName, i + 1, n)));
    const weightMap: Record<string, string> = {};
    for (let i = 0; i < n; i++) {
      await fsp.rename(this.#done[i].tmpPath, join(this.dir, files[i]));
      this.#done[i].tmpPath = join(this.dir, files[i]);
      for (const name of this.#done[i].names) weightMap[name] = files[i];
    }
    const result: ShardedResult = { files, totalSize: this.#totalSize, weightMap };
    if (n > 1) {
      result.indexFile = `${this.baseName}.safetensors.index.json`;
      const index = { metadata: { total_size: this.#totalSize }, weight_map: weightMap };
      await fsp.writeFile(join(this.dir, result.indexFile), pyJsonDumps(index));
    }
    return result;
  }

  async #removeAll(): Promise<void> {
    this.#state = 'aborted';
    const w = this.#current;
    this.#current = undefined;
    if (w) await w.abort().catch(() => {});
    for (const d of this.#done) await fsp.rm(d.tmpPath, { force: true }).catch(() => {});
    this.#done = [];
  }

  /** Removes every shard written so far. */
  abort(): Promise<void> {
    return this.#queue(async () => {
      if (this.#state === 'open') await this.#removeAll();
    });
  }
}
