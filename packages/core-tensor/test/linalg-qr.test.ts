/**
 * qr (Householder, LAPACK's reflector convention): reconstruction, orthonormal Q, upper-trapezoidal
 * R on every aspect; a hand-worked 2 x 2 (R's diagonal takes -sign of the leading entry, as LAPACK's
 * dlarfg); and torch.linalg.qr 'reduced' from scripts/ref/lora_reference.py, compared after making
 * diag(R) >= 0 on both sides (QR is unique only up to those signs).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { canonicalQr, qr, type Qr } from '../src/linalg/qr.js';
import { matmul } from '../src/linalg/matrix.js';
import { frobenius, maxAbsDiff, orthoDefect, randomMatrix, readLinalgFixture, type FixtureMatrix } from './linalg-helpers.js';

function checkQr(a: Float64Array, m: number, n: number): Qr {
  const f = qr(a, m, n);
  const k = Math.min(m, n);
  expect([f.k, f.Q.length, f.R.length]).toEqual([k, m * k, k * n]);
  expect(maxAbsDiff(matmul(f.Q, f.R, m, k, n), a)).toBeLessThan(1e-13 * Math.max(1, frobenius(a)));
  expect(orthoDefect(f.Q, m, k)).toBeLessThan(1e-13);
  for (let i = 0; i < k; i++) for (let j = 0; j < Math.min(i, n); j++) expect(f.R[i * n + j]).toBe(0);
  return f;
}

describe('qr', () => {
  it.each([[6, 4], [4, 6], [5, 5], [1, 3], [3, 1], [20, 7]])('factors a random %i x %i', (m, n) => {
    checkQr(randomMatrix(m, n, m * 31 + n), m, n);
  });

  it('hand-worked 2 x 2: beta = -sign(a00)·||col||, as LAPACK', () => {
    // [[3, 1], [4, 2]]: the first reflector maps (3, 4) to (-5, 0), so Q[:, 0] = (-0.6, -0.8) and R[0] = (-5, -2.2);
    // the last column has nothing below the diagonal, so it is not reflected and R_11 = q_1·a_1 = +0.4 (numpy agrees).
    const f = qr(Float64Array.from([3, 1, 4, 2]), 2, 2);
    expect([...f.Q].map((v) => +v.toFixed(12))).toEqual([-0.6, -0.8, -0.8, 0.6]);
    expect([...f.R].map((v) => +v.toFixed(12))).toEqual([-5, -2.2, 0, 0.4]);
  });

  it('a column already zero below the diagonal gets no reflection (R_jj keeps its sign)', () => {
    const f = checkQr(Float64Array.from([-2, 1, 0, 3]), 2, 2);
    expect(f.R[0]).toBe(-2);
    expect([...f.Q]).toEqual([1, 0, 0, 1]);
  });

  it('canonicalQr makes diag(R) >= 0 without changing Q·R', () => {
    const a = randomMatrix(7, 5, 3);
    const c = canonicalQr(qr(a, 7, 5));
    for (let i = 0; i < 5; i++) expect(c.R[i * 5 + i]).toBeGreaterThanOrEqual(0);
    expect(maxAbsDiff(matmul(c.Q, c.R, 7, 5, 5), a)).toBeLessThan(1e-13);
  });
});

describe('qr against torch.linalg.qr (LAPACK geqrf + orgqr)', () => {
  let fx: Map<string, FixtureMatrix>;
  beforeAll(async () => {
    fx = await readLinalgFixture();
  });

  // illcond (singular values 1 .. 1e-12): R agrees to round-off, but Q's trailing columns are fixed by
  // round-off (forward error ~ eps·cond), so Q is compared on the well-conditioned matrices only.
  it.each([['tall', true], ['wide', true], ['square', true], ['illcond', false]])('%s: the same R (and Q) up to the signs of diag(R)', (name, compareQ) => {
    const a = fx.get(`${name}.a`)!;
    const [m, n] = a.shape;
    const k = Math.min(m, n);
    const ours = canonicalQr(checkQr(a.data, m, n));
    const theirs = canonicalQr({ Q: fx.get(`${name}.q`)!.data, R: fx.get(`${name}.r`)!.data, m, n, k });
    expect(maxAbsDiff(ours.R, theirs.R)).toBeLessThan(1e-12 * frobenius(a.data));
    if (compareQ) expect(maxAbsDiff(ours.Q, theirs.Q)).toBeLessThan(1e-12);
  });
});
