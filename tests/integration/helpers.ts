/** Plain f64 arithmetic the integration tests compare results with (not the code under test). */
import type { LowRankDelta } from '@peft/core-tensor';

/** s · B · A of `d` as f64 [out, in]. */
export function denseDelta(d: LowRankDelta): Float64Array {
  const out = new Float64Array(d.outFeatures * d.inFeatures);
  for (let i = 0; i < d.outFeatures; i++) {
    for (let j = 0; j < d.inFeatures; j++) {
      let s = 0;
      for (let k = 0; k < d.r; k++) s += d.B[i * d.r + k] * d.A[k * d.inFeatures + j];
      out[i * d.inFeatures + j] = d.scale * s;
    }
  }
  return out;
}

/** ||x − y||_F / ||y||_F */
export function relFrobenius(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let e = 0, n = 0;
  for (let i = 0; i < y.length; i++) {
    e += (x[i] - y[i]) ** 2;
    n += y[i] ** 2;
  }
  return Math.sqrt(e / n);
}
