/**
 * Shared by the linalg tests: seeded random matrices, norms, the orthonormality defect, and the
 * numpy / torch fixture of scripts/ref/lora_reference.py (stored with the LoRA plugin's fixtures).
 */
import { join } from 'node:path';
import { Xoshiro128 } from '../src/random/rng.js';
import { SafetensorsFile } from '../src/io/safetensors-reader.js';
import { matmul, transpose } from '../src/linalg/matrix.js';

export const LINALG_FIXTURE = join(import.meta.dirname, 'fixtures', 'linalg', 'reference.safetensors');

/** Standard normal entries (Box-Muller on xoshiro128**), [m, n] row-major. */
export function randomMatrix(m: number, n: number, seed: number): Float64Array {
  const rng = new Xoshiro128(seed);
  const a = new Float64Array(m * n);
  for (let i = 0; i < a.length; i++) {
    a[i] = Math.sqrt(-2 * Math.log(1 - rng.nextFloat())) * Math.cos(2 * Math.PI * rng.nextFloat());
  }
  return a;
}

export function frobenius(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return Math.sqrt(s);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

/** max |XᵀX - I| for X [m, k] (orthonormal columns give 0). */
export function orthoDefect(x: Float64Array, m: number, k: number): number {
  const g = matmul(transpose(x, m, k), x, k, m, k);
  let d = 0;
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) d = Math.max(d, Math.abs(g[i * k + j] - (i === j ? 1 : 0)));
  return d;
}

/** U diag(S) Vt. */
export function reconstruct(U: Float64Array, S: Float64Array, Vt: Float64Array, m: number, k: number, n: number): Float64Array {
  const us = U.slice();
  for (let i = 0; i < m; i++) for (let j = 0; j < k; j++) us[i * k + j] *= S[j];
  return matmul(us, Vt, m, k, n);
}

export interface FixtureMatrix { data: Float64Array; shape: number[] }

export async function readLinalgFixture(): Promise<Map<string, FixtureMatrix>> {
  const f = await SafetensorsFile.open(LINALG_FIXTURE);
  const out = new Map<string, FixtureMatrix>();
  for (const t of f.tensors) {
    const b = (await f.read(t.name)).slice();
    out.set(t.name, { data: new Float64Array(b.buffer, b.byteOffset, b.byteLength / 8), shape: [...t.shape] });
  }
  await f.close();
  return out;
}
