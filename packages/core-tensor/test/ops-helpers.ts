/** Shared helpers for the tensor / autograd / ops / nn tests. */
import { expect } from 'vitest';
import { gradcheck, type GradcheckOptions } from '../src/autograd/index.js';
import { memoryStats, randn, tensor, type Allocator, type Tensor } from '../src/tensor/index.js';

/** An f64 leaf requiring grad, N(0,1) with the given seed. */
export function rand64(shape: number[], seed: number, requiresGrad = true): Tensor {
  return randn(shape, { dtype: 'f64', seed, requiresGrad });
}

export function f64(values: number[], shape: number[], requiresGrad = true): Tensor {
  return tensor(values, shape, { dtype: 'f64', requiresGrad });
}

/** gradcheck must pass (failures listed on mismatch); disposes the inputs afterwards. */
export function expectGradcheck(fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[], opts?: GradcheckOptions): void {
  const r = gradcheck(fn, inputs, opts);
  for (const x of inputs) x.dispose();
  expect(r.failures).toEqual([]);
  expect(r.ok).toBe(true);
}

/** Runs fn and checks every tensor and byte it made was released. */
export function expectNoLeak(fn: () => void): void {
  const before = memoryStats();
  fn();
  expect(memoryStats()).toEqual(before);
}

/** A heap allocator that records every allocation, so tests can see sizes and balance. */
export function countingAllocator(): Allocator & { live: number; sizes: number[] } {
  const a = {
    name: 'counting',
    live: 0,
    sizes: [] as number[],
    alloc(bytes: number): ArrayBuffer {
      a.live++;
      a.sizes.push(bytes);
      return new ArrayBuffer(bytes);
    },
    free(): void {
      a.live--;
    },
  };
  return a;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
