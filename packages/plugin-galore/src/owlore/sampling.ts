/**
 * OwLore's layer sampling (pixeli99/OwLore src/lmflow/pipeline/finetuner.py,
 * DynamicLayerActivationCallback.switch_active_layers): `active_layers` distinct layers drawn without
 * replacement with probability p, by numpy's algorithm for RandomState.choice(replace=False, p=p)
 * (numpy/random/mtrand.pyx): draw as many uniforms as layers are missing, zero the p of those found,
 * take cdf = cumsum(p) / its last value, searchsorted(side='right'), keep new distinct indices in the
 * order first drawn; repeat until enough. The uniforms come from xoshiro128** (core's Xoshiro128)
 * keyed by the run's seed and the resampling's number, instead of numpy's global Mersenne Twister, so
 * resampling k is a pure function of (seed, k): a resumed run draws the same layers, and
 * scripts/ref/galore_reference.py reproduces the draws (its transcription is checked against numpy).
 * Not here: the probabilities (layers.ts), freezing (optimizer.ts).
 */
import { hashString, PeftError, Xoshiro128 } from '@peft/core-tensor';

/** The uniforms of resampling `event` (0-based): Xoshiro128(seed, hashString(`owlore:${event}`)). */
export function eventStream(seed: number, event: number): () => number {
  const rng = new Xoshiro128(seed >>> 0, hashString(`owlore:${event}`));
  return () => rng.nextFloat();
}

/** `size` distinct indices of p (numpy's choice(len(p), size, replace=False, p=p)), in the order drawn. */
export function choiceWithoutReplacement(p: readonly number[], size: number, rand: () => number): number[] {
  if (p.filter((x) => x > 0).length < size) throw new PeftError('E_INPUT', `owlore: fewer layers with a probability > 0 than active_layers (${size})`);
  const w = Float64Array.from(p);
  const found: number[] = [];
  while (found.length < size) {
    const x = Array.from({ length: size - found.length }, rand);
    for (const i of found) w[i] = 0;
    const cdf = new Float64Array(w.length);
    let acc = 0;
    for (let i = 0; i < w.length; i++) cdf[i] = acc += w[i];
    for (let i = 0; i < cdf.length; i++) cdf[i] /= acc;
    const seen = new Set<number>();
    for (const u of x) {
      let lo = 0;
      let hi = cdf.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cdf[mid] <= u) lo = mid + 1; // side='right': the first index with cdf > u
        else hi = mid;
      }
      if (!seen.has(lo)) {
        seen.add(lo);
        found.push(lo);
      }
    }
  }
  return found;
}
