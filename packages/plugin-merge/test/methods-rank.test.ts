/**
 * The quickselect-based keep rules against a plain stable sort (what mergekit's argsort does, with
 * ties by index), on data full of ties: top-k, rank windows and row ranks.
 */
import { describe, expect, it } from 'vitest';
import { keepRankWindow, keepTopK, magnitudeAtRank, rowRanks } from '../src/methods/rank.js';

/** Small integers with signs: many equal magnitudes. */
function tiesData(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  return Float32Array.from({ length: n }, () => Math.round(next() * 6 - 3) * (next() < 0.5 ? 0.5 : 1) + 0); // + 0: no -0
}

/** Stable ascending order of |d|. */
function order(d: Float32Array): number[] {
  return Array.from(d.keys()).sort((a, b) => Math.abs(d[a]) - Math.abs(d[b]) || a - b);
}

function kept(d: Float32Array, keep: Set<number>): number[] {
  return Array.from(d, (v, i) => (keep.has(i) ? v : 0));
}

describe('rank helpers', () => {
  it('magnitudeAtRank gives the k-th smallest |d| and the counts below / equal', () => {
    const asBits = (x: number) => new Uint32Array(Float32Array.of(Math.abs(x)).buffer)[0];
    for (const seed of [1, 2, 3]) {
      const d = tiesData(101, seed);
      const mags = Array.from(d, Math.abs).sort((a, b) => a - b);
      for (const k of [0, 1, 50, 99, 100]) {
        const r = magnitudeAtRank(d, k, new Float32Array(101));
        expect(r.bits).toBe(asBits(mags[k]));
        expect(r.below).toBe(mags.filter((m) => m < mags[k]).length);
        expect(r.equal).toBe(mags.filter((m) => m === mags[k]).length);
      }
    }
    const spread = Float32Array.from({ length: 1000 }, (_, i) => (i % 2 ? -1 : 1) * 2 ** ((i % 61) - 30) * (1 + i / 1000)); // many buckets
    const sorted = Array.from(spread, Math.abs).sort((a, b) => a - b);
    for (const k of [0, 333, 999]) expect(magnitudeAtRank(spread, k, new Float32Array(1000)).bits).toBe(asBits(sorted[k]));
  });

  it('keepTopK keeps the k largest magnitudes, lower index first among equals', () => {
    for (const seed of [4, 5, 6]) {
      for (const k of [1, 7, 33, 64, 100]) {
        const d = tiesData(100, seed);
        const want = kept(d, new Set(Array.from(d.keys()).sort((a, b) => Math.abs(d[b]) - Math.abs(d[a]) || a - b).slice(0, k)));
        keepTopK(d, k, new Float32Array(100));
        expect(Array.from(d)).toEqual(want);
      }
    }
  });

  it('keepRankWindow keeps ascending ranks [lo, hi)', () => {
    for (const seed of [7, 8]) {
      for (const [lo, hi] of [[0, 50], [10, 90], [37, 38], [0, 100], [99, 100], [60, 40]]) {
        const d = tiesData(100, seed);
        const want = kept(d, new Set(order(d).slice(lo, hi)));
        keepRankWindow(d, lo, hi, new Float32Array(100));
        expect(Array.from(d)).toEqual(want);
      }
    }
  });

  it('rowRanks gives 1-based stable ranks', () => {
    const row = tiesData(40, 9);
    const ranks = new Float64Array(40);
    rowRanks(row, ranks);
    const want = new Array<number>(40);
    order(row).forEach((idx, pos) => (want[idx] = pos + 1));
    expect(Array.from(ranks)).toEqual(want);
  });
});
