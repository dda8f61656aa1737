/**
 * Order statistics on magnitudes without sorting: mergekit (sparsify.py) argsorts |δ| of every
 * tensor, which is O(n log n) on 100M-element embeddings. Here the k-th magnitude comes from a
 * histogram of the top 16 bits of |δ|'s f32 bit pattern (non-negative floats order like their bits),
 * then an exact look inside the one bucket that holds rank k: two passes over the data.
 * Ties are broken by index (a stable sort's order); torch's argsort leaves their order unspecified,
 * and ties among zeros (the common case: entries a fine-tune left unchanged) cannot change a result.
 * Not here: what to keep (sparsify.ts), rescaling.
 */

/** The magnitude at an ascending rank, as |f32| bits, and how many magnitudes lie below / equal it. */
export interface MagnitudeRank {
  bits: number;
  below: number;
  equal: number;
}

const MAG = 0x7fffffff;

function bitsOf(d: Float32Array): Uint32Array {
  return new Uint32Array(d.buffer, d.byteOffset, d.length);
}

/** |d| at ascending rank k (0-based). `scratch` holds at least d.length values; d is not changed. */
export function magnitudeAtRank(d: Float32Array, k: number, scratch: Float32Array): MagnitudeRank {
  const bits = bitsOf(d);
  const hist = new Uint32Array(1 << 16);
  for (let j = 0; j < bits.length; j++) hist[(bits[j] & MAG) >>> 15]++;
  let bucket = 0;
  let before = 0; // magnitudes in lower buckets
  while (before + hist[bucket] <= k) before += hist[bucket++];
  const inBucket = new Uint32Array(scratch.buffer, scratch.byteOffset, hist[bucket]);
  let m = 0;
  for (let j = 0; j < bits.length; j++) {
    const v = bits[j] & MAG;
    if (v >>> 15 === bucket) inBucket[m++] = v;
  }
  inBucket.sort();
  const v = inBucket[k - before];
  let below = before;
  let equal = 0;
  for (let q = 0; q < m; q++) {
    if (inBucket[q] < v) below++;
    else if (inBucket[q] === v) equal++;
  }
  return { bits: v, below, equal };
}

/** Zeroes every element whose magnitude is outside [lo, hi] (bit patterns), without data-dependent branches. */
function keepBetween(bits: Uint32Array, lo: number, hi: number): void {
  for (let j = 0; j < bits.length; j++) {
    const m = bits[j] & MAG;
    // (x >>> 31) is 1 exactly when x < 0: both differences stay within int32 for 31-bit magnitudes
    const inside = (((m - lo) >>> 31) | ((hi - m) >>> 31)) ^ 1;
    bits[j] &= -inside;
  }
}

/**
 * Among the elements whose magnitude bits equal `v`, in index order, the `skip` first and all after
 * `skip + take` are zeroed (v = 0: nothing to do, they are zeros already).
 */
function trimEqual(bits: Uint32Array, v: number, skip: number, take: number): void {
  if (v === 0) return;
  let seen = 0;
  for (let j = 0; j < bits.length; j++) {
    if ((bits[j] & MAG) !== v) continue;
    if (seen < skip || seen >= skip + take) bits[j] = 0;
    seen++;
  }
}

/**
 * Zeroes every element of `d` except the `k` largest by |d| (equal magnitudes: lower index first),
 * i.e. mergekit's `argsort(|d|, descending)[:k]`. `scratch` holds at least d.length values.
 */
export function keepTopK(d: Float32Array, k: number, scratch: Float32Array): void {
  const n = d.length;
  if (k >= n) return;
  if (k <= 0) {
    d.fill(0);
    return;
  }
  const r = magnitudeAtRank(d, n - k, scratch); // the smallest kept magnitude
  const bits = bitsOf(d);
  keepBetween(bits, r.bits, MAG);
  const above = n - r.below - r.equal;
  if (above + r.equal > k) trimEqual(bits, r.bits, 0, k - above); // the first equal ones fill the budget
}

/**
 * Zeroes every element of `d` whose ascending rank by |d| (ties: lower index first) is outside
 * [lo, hi): mergekit's `argsort(|d|)[lo:hi]` as the kept set.
 */
export function keepRankWindow(d: Float32Array, lo: number, hi: number, scratch: Float32Array): void {
  const n = d.length;
  lo = Math.max(0, lo);
  hi = Math.min(n, hi);
  if (lo >= hi) {
    d.fill(0);
    return;
  }
  if (lo === 0 && hi === n) return;
  const first = magnitudeAtRank(d, lo, scratch);
  const last = magnitudeAtRank(d, hi - 1, scratch);
  const bits = bitsOf(d);
  keepBetween(bits, first.bits, last.bits);
  // equal magnitudes at a bound hold ranks below..below+equal-1, in index order
  if (first.bits === last.bits) trimEqual(bits, first.bits, lo - first.below, hi - lo);
  else {
    trimEqual(bits, first.bits, lo - first.below, first.equal);
    trimEqual(bits, last.bits, 0, hi - last.below);
  }
}

/**
 * 1-based ascending ranks of |row| (ties: lower index first), as mergekit's
 * `argsort(argsort(|x|)) + 1` along a row. `ranks` receives row.length values.
 */
export function rowRanks(row: Float32Array, ranks: Float64Array): void {
  const c = row.length;
  const abs = new Float32Array(c);
  for (let j = 0; j < c; j++) abs[j] = Math.abs(row[j]);
  // Non-negative f32 bit patterns sort like their values; bits * c + index is an exact f64 key while c <= 2^22.
  if (c <= 1 << 22) {
    const bits = new Uint32Array(abs.buffer);
    const keys = new Float64Array(c);
    for (let j = 0; j < c; j++) keys[j] = bits[j] * c + j;
    keys.sort();
    for (let p = 0; p < c; p++) ranks[keys[p] % c] = p + 1;
    return;
  }
  const order = Array.from({ length: c }, (_, j) => j).sort((a, b) => abs[a] - abs[b] || a - b);
  for (let p = 0; p < c; p++) ranks[order[p]] = p + 1;
}
