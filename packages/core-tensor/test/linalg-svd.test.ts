/**
 * svd (one-sided Jacobi), lowRankApprox and svdOfProduct: reconstruction and orthonormality on
 * random matrices of every aspect, singular values recovered from matrices built with a known
 * spectrum, numpy's (LAPACK) singular values from scripts/ref/lora_reference.py, Eckart-Young for
 * the truncation, and the product SVD against the SVD of the explicit product.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { PeftError } from '../src/errors.js';
import { factorsOf, lowRankApprox, svd, svdOfProduct } from '../src/linalg/index.js';
import { matmul, transpose } from '../src/linalg/matrix.js';
import { qr } from '../src/linalg/qr.js';
import {
  frobenius, maxAbsDiff, orthoDefect, randomMatrix, readLinalgFixture, reconstruct, type FixtureMatrix,
} from './linalg-helpers.js';

function checkSvd(a: Float64Array, m: number, n: number, tol = 1e-12): ReturnType<typeof svd> {
  const f = svd(a, m, n);
  const k = Math.min(m, n);
  expect([f.k, f.U.length, f.S.length, f.Vt.length]).toEqual([k, m * k, k, k * n]);
  expect(maxAbsDiff(reconstruct(f.U, f.S, f.Vt, m, k, n), a)).toBeLessThan(tol * Math.max(1, frobenius(a)));
  expect(orthoDefect(f.U, m, k)).toBeLessThan(tol);
  expect(orthoDefect(transpose(f.Vt, k, n), n, k)).toBeLessThan(tol);
  for (let i = 0; i < k; i++) {
    expect(f.S[i]).toBeGreaterThanOrEqual(0);
    if (i > 0) expect(f.S[i]).toBeLessThanOrEqual(f.S[i - 1]);
  }
  return f;
}

/** A random orthogonal [n, n] (the Q of a Gaussian matrix). */
const orthogonal = (n: number, seed: number) => qr(randomMatrix(n, n, seed), n, n).Q;

describe('svd', () => {
  it.each([[7, 4], [4, 7], [12, 12], [1, 6], [6, 1], [1, 1], [33, 17], [17, 33]])('reconstructs a random %i x %i', (m, n) => {
    checkSvd(randomMatrix(m, n, m * 100 + n), m, n);
  });

  it('recovers a known spectrum, repeated and tiny values included', () => {
    const n = 9;
    const s = [5, 3, 3, 3, 1, 0.5, 1e-3, 1e-7, 1e-10];
    const us = orthogonal(n, 1).slice();
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) us[i * n + j] *= s[j];
    const a = matmul(us, transpose(orthogonal(n, 2), n, n), n, n, n);
    const f = checkSvd(a, n, n);
    // Absolute accuracy eps·||A||: the large values to ~1e-15 relative, the tiny ones to ~1e-15 absolute.
    f.S.forEach((v, i) => expect(Math.abs(v - s[i])).toBeLessThan(1e-14 * s[0]));
  });

  it('rank-deficient and zero matrices still give orthonormal U and V', () => {
    const m = 8, n = 5;
    const low = matmul(randomMatrix(m, 2, 3), randomMatrix(2, n, 4), m, 2, n);
    const f = checkSvd(low, m, n);
    expect(f.S[2] / f.S[0]).toBeLessThan(1e-14);
    const z = checkSvd(new Float64Array(m * n), m, n);
    expect([...z.S]).toEqual([0, 0, 0, 0, 0]);
    const zw = checkSvd(new Float64Array(n * m), n, m);
    expect([...zw.S]).toEqual([0, 0, 0, 0, 0]);
    // a zero column in a tall matrix, a zero row in a wide one
    const col = randomMatrix(6, 3, 5);
    for (let i = 0; i < 6; i++) col[i * 3 + 1] = 0;
    for (const f of [checkSvd(col, 6, 3), checkSvd(transpose(col, 6, 3), 3, 6)]) expect(f.S[2]).toBeLessThan(1e-15 * f.S[0]);
  });

  it('converges on 60 random low-rank products of every aspect (QR pre-reduction included)', () => {
    for (let c = 0; c < 60; c++) {
      const m = 1 + (c * 7) % 13, n = 1 + (c * 5) % 11, rank = 1 + (c % Math.min(m, n));
      const a = matmul(randomMatrix(m, rank, 1000 + c), randomMatrix(rank, n, 2000 + c), m, rank, n);
      const f = checkSvd(a, m, n);
      for (let i = rank; i < f.k; i++) expect(f.S[i]).toBeLessThan(1e-13 * f.S[0]);
    }
  });

  it('accepts Float32Array input (computes in f64)', () => {
    const a32 = Float32Array.from(randomMatrix(5, 3, 9));
    const f = svd(a32, 5, 3);
    expect(maxAbsDiff(reconstruct(f.U, f.S, f.Vt, 5, 3, 3), a32)).toBeLessThan(1e-13);
  });

  it('refuses a shape that does not fit the data', () => {
    expect(() => svd(new Float64Array(5), 2, 3)).toThrow(PeftError);
    expect(() => svd(new Float64Array(0), 0, 3)).toThrow(/bad matrix shape/);
  });
});

describe('svd against numpy (LAPACK gesdd)', () => {
  let fx: Map<string, FixtureMatrix>;
  beforeAll(async () => {
    fx = await readLinalgFixture();
  });

  it.each(['tall', 'wide', 'square', 'rank3', 'illcond'])('%s: the same singular values', (name) => {
    const a = fx.get(`${name}.a`)!;
    const [m, n] = a.shape;
    const f = checkSvd(a.data, m, n);
    const want = fx.get(`${name}.s`)!.data;
    expect(maxAbsDiff(f.S, want)).toBeLessThan(1e-13 * want[0]);
  });
});

describe('lowRankApprox / factorsOf', () => {
  it('is the best rank-r approximation: ||A - L R||_F = sqrt(sum of the dropped S²) (Eckart-Young)', () => {
    const m = 10, n = 7;
    const a = randomMatrix(m, n, 11);
    for (const r of [1, 3, 7]) {
      const { L, R, S } = lowRankApprox(a, m, n, r);
      expect([L.length, R.length]).toEqual([m * r, r * n]);
      const lr = matmul(L, R, m, r, n);
      const err = frobenius(lr.map((v, i) => v - a[i]));
      const tail = Math.sqrt(S.slice(r).reduce((s, v) => s + v * v, 0));
      expect(Math.abs(err - tail)).toBeLessThan(1e-12);
      // the singular values are split evenly: LᵀL = R Rᵀ = diag(S_r)
      const ltl = matmul(transpose(L, m, r), L, r, m, r);
      const rrt = matmul(R, transpose(R, r, n), r, n, r);
      expect(maxAbsDiff(ltl, rrt)).toBeLessThan(1e-12);
      for (let i = 0; i < r; i++) expect(ltl[i * r + i]).toBeCloseTo(S[i], 12);
    }
  });

  it('refuses a rank outside 1..min(m, n)', () => {
    const f = svd(randomMatrix(4, 3, 1), 4, 3);
    for (const r of [0, 4, 1.5]) {
      const e = (() => { try { factorsOf(f, r); } catch (x) { return x; } })() as PeftError;
      expect(e.code).toBe('E_INPUT');
      expect(e.message).toMatch(/1\.\.3/);
    }
  });
});

describe('svdOfProduct', () => {
  it.each([[12, 3, 9], [5, 4, 20], [6, 8, 4]])('B [%i, %i] · A: same spectrum and product as svd(B·A)', (m, k, n) => {
    const b = randomMatrix(m, k, 21);
    const a = randomMatrix(k, n, 22);
    const p = matmul(b, a, m, k, n);
    const f = svdOfProduct(b, a, m, k, n);
    const kk = Math.min(m, n, k);
    expect(f.k).toBe(kk);
    const full = svd(p, m, n);
    expect(maxAbsDiff(f.S, full.S.subarray(0, kk))).toBeLessThan(1e-12 * full.S[0]);
    expect(maxAbsDiff(reconstruct(f.U, f.S, f.Vt, m, kk, n), p)).toBeLessThan(1e-12 * frobenius(p));
    expect(orthoDefect(f.U, m, kk)).toBeLessThan(1e-12);
    expect(orthoDefect(transpose(f.Vt, kk, n), n, kk)).toBeLessThan(1e-12);
  });
});
