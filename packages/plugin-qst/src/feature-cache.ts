/**
 * The feature cache (`cache_features`; neither repo has one). The backbone is frozen and the side network
 * never feeds back into it, so what the ladder reads from it is a fixed function of the token ids: the
 * first pass stores it in bf16 and later passes skip the backbone. Per row it keeps the L rungs (pooled
 * [T, C/r] for a gradient-free downsample, else full width [T, C]) and, for QST with a pool, the final
 * normed state [T, C] (with a trainable downsample the final state is recomputed from the last rung).
 * Keys: causal attention makes position p's features a function of ids[0..p] only, and a padded row is
 * its content followed by a run of one token. So a row is keyed by sha1(the length of the ids before
 * its trailing run, the run's token, those ids), and an entry computed for length T' serves every row of that key up to T' (a
 * longer one recomputes and replaces it). Changed data thus misses by construction; a changed base is
 * caught by the file's fingerprint (fingerprint.ts).
 * Storage: RAM up to the budget, then records appended to a file (feature-file.ts), all synchronous
 * (the head hook is). Values are rounded to bf16 before first use, so every epoch sees the same
 * numbers, whether they come from the backbone, RAM or the file.
 * Not here: deciding when to look up (tap.ts, head.ts), the file format (feature-file.ts).
 */
import { createHash } from 'node:crypto';
import { getBackend } from '@peft/core-tensor';
import type { FeatureFile } from './feature-file.js';

/** Per token: `rungs` x `width` values, then `final` values. */
export interface FeatureLayout {
  rungs: number;
  width: number;
  final: number;
}

export const featuresPerToken = (l: FeatureLayout): number => l.rungs * l.width + l.final;

export interface RowKey {
  key: string;
  /** The row's length (its trailing run included). */
  T: number;
}

interface Entry {
  T: number;
  ram?: Uint16Array;
  offset?: number;
}

/** The key of each row of ids [B, T] (see the module comment). */
export function rowKeys(ids: Int32Array, B: number, T: number): RowKey[] {
  const keys: RowKey[] = [];
  for (let b = 0; b < B; b++) {
    const row = ids.subarray(b * T, (b + 1) * T);
    let j = T - 1;
    while (j > 0 && row[j - 1] === row[T - 1]) j--;
    const h = createHash('sha1').update(new Uint8Array(Int32Array.of(j, row[T - 1]).buffer)).update(new Uint8Array(row.buffer, row.byteOffset, j * 4));
    keys.push({ key: h.digest('hex'), T });
  }
  return keys;
}

/** x rounded to bf16 in place (what the cache stores, so a stored value reads back exactly). */
export function roundBf16(x: Float32Array): void {
  const be = getBackend();
  be.bf16ToF32(be.f32ToBf16(x), x);
}

export interface CacheStats {
  entries: number;
  ramBytes: number;
  fileBytes: number;
  hits: number;
  misses: number;
}

export class FeatureCache {
  readonly #entries = new Map<string, Entry>();
  readonly #F: number;
  #ramBytes = 0;
  #hits = 0;
  #misses = 0;

  #file: FeatureFile | undefined;
  #openFile: (() => FeatureFile) | undefined;

  /**
   * `openFile` gives the file that receives what does not fit in `budgetBytes` (without one, those rows
   * are not cached); it is opened at the first lookup, i.e. once training runs, and its records serve too.
   */
  constructor(readonly layout: FeatureLayout, readonly budgetBytes: number, openFile?: () => FeatureFile) {
    this.#F = featuresPerToken(layout);
    this.#openFile = openFile;
  }

  get file(): FeatureFile | undefined {
    if (this.#openFile) {
      this.#file = this.#openFile();
      this.#openFile = undefined;
      for (const [key, e] of this.#file.index) this.#entries.set(key, { T: e.T, offset: e.offset });
    }
    return this.#file;
  }

  /** True when every row has an entry at least as long as the row (then read() serves them). */
  lookup(keys: readonly RowKey[]): boolean {
    void this.file;
    const hit = keys.every((k) => (this.#entries.get(k.key)?.T ?? -1) >= k.T);
    if (hit) this.#hits++;
    else this.#misses++;
    return hit;
  }

  /** Fills rungs[i] [B, T, width] and final [B, T, final] from the entries of `keys` (all present). */
  read(keys: readonly RowKey[], T: number, rungs: Float32Array[], final?: Float32Array): void {
    const { width: w, final: f, rungs: L } = this.layout;
    const be = getBackend();
    keys.forEach((k, b) => {
      const e = this.#entries.get(k.key)!;
      const data = e.ram ?? this.file!.read(e.offset!, e.T * this.#F);
      for (let i = 0; i < L; i++) {
        const at = i * e.T * w;
        be.bf16ToF32(data.subarray(at, at + T * w), rungs[i].subarray(b * T * w, (b + 1) * T * w));
      }
      if (f > 0 && final) {
        const at = L * e.T * w;
        be.bf16ToF32(data.subarray(at, at + T * f), final.subarray(b * T * f, (b + 1) * T * f));
      }
    });
  }

  /**
   * Stores the rows that have no entry as long as theirs, from bf16-exact values (roundBf16 first):
   * rungs[i] [B, T, width], final [B, T, final]. RAM first, then the file, else the row stays uncached.
   */
  write(keys: readonly RowKey[], T: number, rungs: readonly Float32Array[], final?: Float32Array): void {
    const { width: w, final: f, rungs: L } = this.layout;
    const be = getBackend();
    const bytes = T * this.#F * 2;
    keys.forEach((k, b) => {
      const old = this.#entries.get(k.key);
      if (old && old.T >= k.T) return;
      const row = new Float32Array(T * this.#F);
      for (let i = 0; i < L; i++) row.set(rungs[i].subarray(b * T * w, (b + 1) * T * w), i * T * w);
      if (f > 0 && final) row.set(final.subarray(b * T * f, (b + 1) * T * f), L * T * w);
      const data = be.f32ToBf16(row);
      if (old?.ram) this.#ramBytes -= old.ram.byteLength;
      if (this.#ramBytes + bytes <= this.budgetBytes) {
        this.#entries.set(k.key, { T, ram: data });
        this.#ramBytes += bytes;
      } else if (this.file) {
        this.#entries.set(k.key, { T, offset: this.file.append(k.key, T, data) });
      } else {
        this.#entries.delete(k.key);
      }
    });
  }

  stats(): CacheStats {
    return { entries: this.#entries.size, ramBytes: this.#ramBytes, fileBytes: this.#file?.bytes ?? 0, hits: this.#hits, misses: this.#misses };
  }

  dispose(): void {
    this.#entries.clear();
    this.#ramBytes = 0;
    this.#file?.close();
    this.#openFile = undefined;
  }
}
