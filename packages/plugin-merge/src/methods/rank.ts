/**
 * Order statistics on magnitudes, in O(n) memory-lean form: quickselect instead of mergekit's full
 * argsort (sparsify.py), which matters for 100M-element embeddings. Ties are broken by index (a
 * stable sort's order); torch's argsort leaves their order unspecified, and ties among zeros (the
 * common case: tensors a fine-tune left unchanged) cannot change a result.
 * Not here: what to keep (sparsify.ts), rescaling.
 */

/** Rearranges `a` so that a[k] is its k-th smallest value (0-based) and returns it (Hoare/Wirth quickselect). */
export function selectKth(a: Float32Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (hi > lo) {
    const mid = (lo + hi) >>> 1;
    // median of three as pivot: sorted data and runs of equal values stay O(n)
    if (a[mid] < a[lo]) swap(a, mid, lo);
    if (a[hi] < a[lo]) swap(a, hi, lo);
    if (a[hi] < a[mid]) swap(a, hi, mid);
    const pivot = a[mid];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) swap(a, i++, j--);
    }
    // a[lo..j] <= pivot <= a[i..hi]; what lies strictly between j and i equals the pivot
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k];
  }
  return a[k];
}

function swap(a: Float32Array, i: number, j: number): void {
  const t = a[i];
  a[i] = a[j];
  a[j] = t;
}

function absInto(d: Float32Array, scratch: Float32Array): Float32Array {
  const s = scratch.subarray(0, d.length);
  for (let j = 0; j < d.length; j++) s[j] = Math.abs(d[j]);
  return s;
}

function countBelow(d: Float32Array, v: number): number {
  let c = 0;
  for (let j = 0; j < d.length; j++) if (Math.abs(d[j]) < v) c++;
  return c;
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
  const v = selectKth(absInto(d, scratch), n - k); // the smallest kept magnitude
  let budget = k - countAbove(d, v); // how many elements equal to v are kept, first ones first
  for (let j = 0; j < n; j++) {
    const m = Math.abs(d[j]);
    if (m > v) continue;
    if (m === v && budget > 0) {
      budget--;
      continue;
    }
    d[j] = 0;
  }
}

function countAbove(d: Float32Array, v: number): number {
  let c = 0;
  for (let j = 0; j < d.length; j++) if (Math.abs(d[j]) > v) c++;
  return c;
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
  const s = absInto(d, scratch);
  const vLo = selectKth(s, lo);
  const vHi = selectKth(s, hi - 1);
  const belowLo = countBelow(d, vLo);
  const belowHi = countBelow(d, vHi);
  let eqLo = 0;
  let eqHi = 0;
  for (let j = 0; j < n; j++) {
    const m = Math.abs(d[j]);
    let keep = m >= vLo && m <= vHi;
    // an element equal to a bound has rank (number below it) + (equal ones before it)
    if (m === vLo) {
      if (belowLo + eqLo < lo) keep = false;
      eqLo++;
    }
    if (m === vHi) {
      if (belowHi + eqHi >= hi) keep = false;
      eqHi++;
    }
    if (!keep) d[j] = 0;
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
