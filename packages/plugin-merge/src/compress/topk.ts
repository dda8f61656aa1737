/**
 * ComPEFT's selection of what to keep, transcribed from prateeky2806/ComPEFT
 * src/qlora/ties_utils.py (get_compressed_lora_weights, state_dict_to_vector, topk_values_mask):
 *
 *   tv   = concat(flatten(t) for t in sorted(state_dict)) - reference
 *   std  = tv.std()                                  (unbiased, before pruning)
 *   k    = d - int(d * K)                            (d = numel, K = density)
 *   kth  = kthvalue(|tv|, k)                         (k-th smallest, 1-based)
 *   keep = |tv| >= kth
 *
 * so int(d·K) + 1 values are kept when no magnitudes tie at the threshold, and every tie is kept
 * (deterministic, order-free). d·K = d, i.e. K = 1, makes k = 0, which torch refuses; it means
 * "keep all" here. The k-th smallest magnitude is found by a two-pass radix select on the f32 bit
 * patterns (|x| bits order like the values), O(d) and exact, without sorting a copy.
 * Not here: the coding of what is kept (compeft.ts, sparsify.ts).
 */
import { PeftError, type CompressInput } from '@peft/core-tensor';

/** The update as one vector in the input's (sorted) tensor order; NaN / ±inf are refused. */
export function flatten(input: CompressInput): Float32Array {
  const total = input.updates.reduce((s, u) => s + u.length, 0);
  const tv = new Float32Array(total);
  let off = 0;
  for (const [i, u] of input.updates.entries()) {
    for (let j = 0; j < u.length; j++) {
      if (!Number.isFinite(u[j])) throw new PeftError('E_INPUT', `tensor ${input.tensors[i].name}: value ${u[j]} at index ${j} is not finite; cannot compress`);
    }
    tv.set(u, off);
    off += u.length;
  }
  return tv;
}

/** torch's `tv.std()` (unbiased), accumulated in f64 and rounded to f32 as torch's CPU kernel returns it. */
export function unbiasedStd(tv: Float32Array): number {
  if (tv.length < 2) throw new PeftError('E_INPUT', `cannot compress an update of ${tv.length} value(s): its std needs at least 2`);
  let sum = 0;
  for (let i = 0; i < tv.length; i++) sum += tv[i];
  const mean = sum / tv.length;
  let ss = 0;
  for (let i = 0; i < tv.length; i++) ss += (tv[i] - mean) ** 2;
  return Math.fround(Math.sqrt(ss / (tv.length - 1)));
}

/** The k-th smallest |tv| (1-based) by radix select over the high then low 16 bits of |x|'s f32 pattern. */
export function kthSmallestAbs(tv: Float32Array, k: number): number {
  const bits = new Uint32Array(tv.buffer, tv.byteOffset, tv.length);
  const hist = new Float64Array(65536);
  for (let i = 0; i < bits.length; i++) hist[(bits[i] & 0x7fffffff) >>> 16]++;
  let rest = k;
  let hi = 0;
  while (rest > hist[hi]) rest -= hist[hi++];
  hist.fill(0);
  for (let i = 0; i < bits.length; i++) {
    const a = bits[i] & 0x7fffffff;
    if (a >>> 16 === hi) hist[a & 0xffff]++;
  }
  let lo = 0;
  while (rest > hist[lo]) rest -= hist[lo++];
  return new Float32Array(new Uint32Array([(hi << 16) | lo]).buffer)[0];
}

/** ComPEFT's threshold: keep |tv| >= it. 0 (keep all) for density 1. */
export function keepThreshold(tv: Float32Array, density: number): number {
  if (!(density > 0 && density <= 1)) throw new PeftError('E_INPUT', `density must be in (0, 1], got ${density}`);
  const d = tv.length;
  const k = d - Math.trunc(d * density); // Python int(d * K): d * K in f64, truncated
  return k <= 0 ? 0 : kthSmallestAbs(tv, k);
}

/** Positions (ascending) of the kept nonzero values: a kept 0 decodes to 0 either way, so it is not stored. */
export function keptPositions(tv: Float32Array, threshold: number): Float64Array {
  let n = 0;
  for (let i = 0; i < tv.length; i++) if (tv[i] !== 0 && Math.abs(tv[i]) >= threshold) n++;
  const pos = new Float64Array(n);
  let j = 0;
  for (let i = 0; i < tv.length; i++) if (tv[i] !== 0 && Math.abs(tv[i]) >= threshold) pos[j++] = i;
  return pos;
}

/** Binary entropy H(p) in bits. */
export function entropyBits(p: number): number {
  return p <= 0 || p >= 1 ? 0 : -(p * Math.log2(p) + (1 - p) * Math.log2(1 - p));
}
