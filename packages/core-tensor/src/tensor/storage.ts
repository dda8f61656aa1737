/**
 * Reference-counted tensor storage. A Tensor handle holds one reference; views (reshape) and the
 * autograd tape (activations saved for backward) take more, so a tensor disposed by a scope keeps
 * its bytes exactly as long as backward still needs them. The last release frees the buffer
 * through the allocator that made it. `memoryStats()` is what leak tests compare.
 */
import { PeftError } from '../errors.js';
import { getAllocator, type Allocator } from './allocator.js';
import type { F, FloatDtype, FrozenData } from './types.js';

const stats = { tensors: 0, storages: 0, bytes: 0 };

export interface MemoryStats {
  /** Tensor handles not yet disposed (user-visible tensors plus handles the tape holds). */
  tensors: number;
  /** Storages not yet freed. */
  storages: number;
  /** Bytes of live storages that came from an allocator (frozen weights wrap caller arrays). */
  bytes: number;
}

export function memoryStats(): MemoryStats {
  return { ...stats };
}

/** @internal counts Tensor handles (constructor / dispose). */
export function countTensor(delta: 1 | -1): void {
  stats.tensors += delta;
}

export class Storage {
  #refs = 1;
  #data: F | FrozenData | undefined;

  private constructor(
    data: F | FrozenData,
    /** Allocator-owned bytes (0 for wrapped arrays). */
    readonly bytes: number,
    private readonly allocator?: Allocator,
    private readonly buffer?: ArrayBuffer,
  ) {
    this.#data = data;
    stats.storages++;
    stats.bytes += bytes;
  }

  /** Zeroed float storage of n elements from the current allocator. */
  static float(dtype: FloatDtype, n: number): Storage {
    const size = dtype === 'f32' ? 4 : 8;
    if (n === 0) return new Storage(dtype === 'f32' ? new Float32Array(0) : new Float64Array(0), 0);
    const allocator = getAllocator();
    const buffer = allocator.alloc(n * size);
    const data = dtype === 'f32' ? new Float32Array(buffer, 0, n) : new Float64Array(buffer, 0, n);
    return new Storage(data, n * size, allocator, buffer);
  }

  /** Wraps frozen weight arrays (owned by the caller, e.g. read from safetensors). */
  static frozen(data: FrozenData): Storage {
    return new Storage(data, 0);
  }

  get freed(): boolean {
    return this.#data === undefined;
  }

  get refs(): number {
    return this.#refs;
  }

  get data(): F | FrozenData {
    if (this.#data === undefined) throw new PeftError('E_RUNTIME', 'tensor storage used after it was freed');
    return this.#data;
  }

  retain(): void {
    if (this.#data === undefined) throw new PeftError('E_RUNTIME', 'cannot retain freed tensor storage');
    this.#refs++;
  }

  release(): void {
    if (this.#data === undefined || --this.#refs > 0) return;
    this.#data = undefined;
    stats.storages--;
    stats.bytes -= this.bytes;
    if (this.allocator && this.buffer) this.allocator.free(this.buffer);
  }
}
