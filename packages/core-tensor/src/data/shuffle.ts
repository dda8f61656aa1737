/**
 * Seeded orders: the per-epoch permutation of training examples and the train/val split of rows.
 * Both draw from the core's xoshiro128** (random/rng.ts), each on its own stream keyed by a name,
 * so the split never depends on epochs, epochs never depend on each other, and the same seed gives
 * the same order on every run and machine.
 * Not here: the trainer's dropout / init randomness.
 */
import { hashString, Xoshiro128 } from '../random/rng.js';

/** Uniform integer in [0, n) without modulo bias (rejection of the top partial range). */
function below(rng: Xoshiro128, n: number): number {
  const limit = 2 ** 32 - (2 ** 32 % n);
  for (;;) {
    const x = rng.nextU32();
    if (x < limit) return x % n;
  }
}

/** A permutation of 0..n-1 (Fisher-Yates) from (seed, stream name). */
export function seededPermutation(n: number, seed: number, stream: string): Uint32Array {
  const rng = new Xoshiro128(seed, hashString(stream));
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = below(rng, i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

/** The order of n examples in an epoch. */
export function epochOrder(n: number, seed: number, epoch: number): Uint32Array {
  return seededPermutation(n, seed, `data/epoch/${epoch}`);
}

/**
 * Row indices for validation: ceil(fraction * n) of them (as datasets' train_test_split rounds the
 * test size up), chosen by a seeded permutation; both sides keep file order.
 */
export function splitRows(n: number, fraction: number, seed: number): { train: number[]; val: number[] } {
  const nVal = fraction > 0 ? Math.ceil(fraction * n) : 0;
  const isVal = new Uint8Array(n);
  seededPermutation(n, seed, 'data/val-split').subarray(0, nVal).forEach((i) => (isVal[i] = 1));
  const train: number[] = [];
  const val: number[] = [];
  for (let i = 0; i < n; i++) (isVal[i] ? val : train).push(i);
  return { train, val };
}
