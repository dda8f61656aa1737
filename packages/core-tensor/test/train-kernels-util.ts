/**
 * Helpers for the training-kernel tests: the torch fixtures of scripts/ref/train_kernels_reference.py,
 * a seeded PRNG, array makers for f32/f64, and a normwise closeness check that names the worst element.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { F } from '../src/backend/train-kernels.js';

export const FIXTURES = join(import.meta.dirname, 'fixtures', 'kernels');

export interface Fixture {
  meta: Record<string, string>;
  /** an F64 tensor, flattened */
  f64(name: string): Float64Array;
  f32(name: string): Float32Array;
  i32(name: string): Int32Array;
  /** a number from the metadata */
  num(key: string): number;
}

/** Just enough safetensors for our own fixtures: u64 header length, JSON header, F64 / F32 / I32 data. */
export function readFixture(file: string): Fixture {
  const buf = readFileSync(join(FIXTURES, `${file}.safetensors`));
  const len = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + len).toString('utf8')) as Record<string, any>;
  const bytes = (name: string, dtype: string): ArrayBuffer => {
    const h = header[name];
    if (!h || h.dtype !== dtype) throw new Error(`${file}: no ${dtype} tensor '${name}'`);
    const [a, b] = h.data_offsets as [number, number];
    return buf.buffer.slice(buf.byteOffset + 8 + len + a, buf.byteOffset + 8 + len + b) as ArrayBuffer; // aligned copy
  };
  const meta = header.__metadata__ as Record<string, string>;
  return {
    meta,
    f64: (name) => new Float64Array(bytes(name, 'F64')),
    f32: (name) => new Float32Array(bytes(name, 'F32')),
    i32: (name) => new Int32Array(bytes(name, 'I32')),
    num: (key) => {
      if (!(key in meta)) throw new Error(`${file}: no metadata '${key}'`);
      return Number(meta[key]);
    },
  };
}

/** mulberry32: small and deterministic, so failures reproduce. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n roughly normal values (Irwin-Hall of 4 uniforms, variance 1) times `scale`. */
export function randn(r: () => number, n: number, scale = 1): Float64Array {
  const x = new Float64Array(n);
  for (let i = 0; i < n; i++) x[i] = (r() + r() + r() + r() - 2) * Math.sqrt(3) * scale;
  return x;
}

/** How the kernels under test want their float arrays: f64 (the reference in f64) or f32. */
export interface Precision {
  name: 'f32' | 'f64';
  of(x: ArrayLike<number>): F;
  zeros(n: number): F;
}
export const F64: Precision = { name: 'f64', of: (x) => Float64Array.from(x), zeros: (n) => new Float64Array(n) };
export const F32: Precision = { name: 'f32', of: (x) => Float32Array.from(x), zeros: (n) => new Float32Array(n) };

/**
 * Normwise closeness: every |actual - expected| <= rtol * (|expected| + max|expected|), so an element
 * near zero is judged on the scale of the whole result (cancellation makes elementwise rtol meaningless
 * there). Names the worst element on failure.
 */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  let worst = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    const ratio = err === 0 ? 0 : err / (rtol * (Math.abs(expected[i]) + scale));
    const r = Number.isNaN(ratio) ? Infinity : ratio; // NaN in actual is never close
    if (r > worst) [worst, at] = [r, i];
  }
  const detail = at < 0 ? '' : `index ${at}: got ${actual[at]}, expected ${expected[at]} (scale ${scale})`;
  expect(worst <= 1, `${what} not within rtol ${rtol}: ${detail}`).toBe(true);
}

/** Bitwise equality of two f32 arrays (Object.is: -0 and NaN count), naming the first difference. */
export function expectSameBits(a: Float32Array, b: Float32Array, what: string): void {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  expect(a.length, `${what}: length`).toBe(b.length);
  const i = ua.findIndex((x, j) => x !== ub[j]);
  expect(i, `${what}: first difference at ${i}: ${a[i]} vs ${b[i]}`).toBe(-1);
}
