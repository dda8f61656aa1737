/**
 * Where tensor bytes come from. With the native kernels built and exporting `alloc`, storage is
 * Rust-owned, 64-byte aligned memory (SIMD-friendly, freed deterministically on dispose instead of
 * waiting for V8's GC); otherwise plain ArrayBuffers. Both hand out zeroed memory.
 * Chosen once per process (PEFT_BACKEND=reference forces the heap); `setAllocator` overrides it.
 */
import { tryLoadKernels } from '../backend/native.js';
import type { NativeMemory } from '../backend/train-kernels.js';

export interface Allocator {
  readonly name: string;
  /** A zeroed buffer of exactly `bytes` bytes. */
  alloc(bytes: number): ArrayBuffer;
  /** Returns the buffer; it must not be used afterwards. */
  free(buffer: ArrayBuffer): void;
}

/** V8 heap buffers: free is a no-op, the GC reclaims them once unreferenced. */
export const heapAllocator: Allocator = {
  name: 'heap',
  alloc: (bytes) => new ArrayBuffer(bytes),
  free: () => undefined,
};

export function nativeAllocator(mem: NativeMemory): Allocator {
  return { name: 'native', alloc: (bytes) => mem.alloc(bytes), free: (buffer) => mem.free(buffer) };
}

let probed: NativeMemory | null | undefined;

/** The native memory functions of @peft/kernels-napi, or undefined when not built / not exported. */
export function nativeMemory(): NativeMemory | undefined {
  if (probed === undefined) {
    const k = process.env.PEFT_BACKEND === 'reference' ? undefined : (tryLoadKernels() as Partial<NativeMemory> | undefined);
    const ok = k !== undefined && typeof k.alloc === 'function' && typeof k.free === 'function' &&
      typeof k.allocatedBytes === 'function';
    probed = ok ? (k as NativeMemory) : null;
  }
  return probed ?? undefined;
}

let current: Allocator | undefined;

export function getAllocator(): Allocator {
  if (current === undefined) {
    const mem = nativeMemory();
    current = mem ? nativeAllocator(mem) : heapAllocator;
  }
  return current;
}

/**
 * Sets the allocator for tensors created from now on (live tensors keep the one that made them);
 * undefined goes back to the automatic choice.
 */
export function setAllocator(a: Allocator | undefined): void {
  current = a;
}
