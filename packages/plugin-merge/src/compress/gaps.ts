/**
 * Positions of the kept values as Golomb-Rice coded gaps. With positions p₀ < p₁ < ... in the
 * flattened update, the gaps are g₀ = p₀ and gᵢ = pᵢ − pᵢ₋₁ − 1 (≥ 0). Rice parameter k codes
 * g as q = ⌊g / 2ᵏ⌋ in unary (q ones, a zero) followed by the k low bits of g.
 * For top-K positions the gaps are close to geometric with p = density, for which a power-of-two
 * Golomb code is within a few % of the entropy H(p) per position (Gallager & van Voorhis 1975);
 * k is chosen by exact bit count over 0..30, so the choice never depends on a distribution model.
 * Not here: signs or values (compeft.ts / sparsify.ts), the container (core).
 */
import { BitReader, BitWriter } from './bits.js';

export const MAX_RICE_K = 30;

/** The gaps of sorted positions (Float64Array: positions may exceed 2³²). */
function gapsOf(positions: Float64Array): Float64Array {
  const g = new Float64Array(positions.length);
  let prev = -1;
  for (let i = 0; i < positions.length; i++) {
    g[i] = positions[i] - prev - 1;
    prev = positions[i];
  }
  return g;
}

/** Exact coded bits of `gaps` with Rice parameter k. */
function riceBits(gaps: Float64Array, k: number): number {
  const div = 2 ** k;
  let bits = gaps.length * (k + 1);
  for (let i = 0; i < gaps.length; i++) bits += Math.floor(gaps[i] / div);
  return bits;
}

/** The k in 0..30 with the fewest bits (smallest k on ties), and that count. */
export function bestRiceK(gaps: Float64Array): { k: number; bits: number } {
  let best = { k: 0, bits: riceBits(gaps, 0) };
  for (let k = 1; k <= MAX_RICE_K; k++) {
    const bits = riceBits(gaps, k);
    if (bits < best.bits) best = { k, bits };
  }
  return best;
}

/** Rice-coded gaps of strictly increasing `positions`: the bytes (last one zero-padded) and k. */
export function encodePositions(positions: Float64Array): { bytes: Uint8Array; k: number } {
  const gaps = gapsOf(positions);
  const { k, bits } = bestRiceK(gaps);
  const w = new BitWriter(bits);
  const div = 2 ** k;
  for (let i = 0; i < gaps.length; i++) {
    const q = Math.floor(gaps[i] / div);
    w.unary(q);
    w.bitsOf(gaps[i] - q * div, k);
  }
  return { bytes: w.finish(), k };
}

/**
 * `count` positions back from `bytes`; every position must be < `limit` and the stream must end
 * exactly (zero padding within the last byte). `fail` builds the error for a corrupted stream.
 */
export function decodePositions(bytes: Uint8Array, count: number, k: number, limit: number, fail: (what: string) => Error): Float64Array {
  if (!Number.isInteger(k) || k < 0 || k > MAX_RICE_K) throw fail(`Rice parameter ${k} is out of range`);
  const r = new BitReader(bytes, fail);
  const out = new Float64Array(count);
  const div = 2 ** k;
  let prev = -1;
  for (let i = 0; i < count; i++) {
    const q = r.unary();
    const p = prev + 1 + q * div + r.bitsOf(k);
    if (p >= limit) throw fail(`position ${p} is past the ${limit} values`);
    out[i] = prev = p;
  }
  r.end();
  return out;
}
