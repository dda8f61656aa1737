/**
 * Products with a weight in a format the kernels do not know (tensor/types.ts PackedData, a plugin
 * quantizer's): the format's own fused `gemm` when it has one; else W is read `readRows` block by
 * block into a scratch block of at most BLOCK_ELEMS values, one gemm per block; else W is
 * `dequantize`d whole into a scratch buffer and multiplied once. Scratch comes from the allocator
 * (native memory when built) and is freed before the product returns: a packed weight is never
 * kept dense, and the peak is one block (readRows) or one weight (dequantize only), never the model.
 * Not here: the bf16 / bitsandbytes kinds (fused in the native kernels, ops/weights.ts).
 */
import type { TrainKernels } from '../backend/train-kernels.js';
import { getAllocator } from '../tensor/allocator.js';
import type { PackedData } from '../tensor/types.js';

/** Values of W per scratch block (4 MiB in f32): large enough that one gemm per block stays efficient. */
export const BLOCK_ELEMS = 1 << 20;

/** Runs fn with `n` zeroed f32 scratch values from the allocator, freed afterwards. */
export function withScratch<T>(n: number, fn: (s: Float32Array) => T): T {
  const allocator = getAllocator();
  const buffer = allocator.alloc(Math.max(n, 1) * 4);
  try {
    return fn(new Float32Array(buffer, 0, n));
  } finally {
    allocator.free(buffer);
  }
}

/** Rows of W [out, in] per block: a multiple of rowStep, at least one step, about BLOCK_ELEMS values. */
export function rowsPerBlock(d: PackedData, out: number, inF: number): number {
  const step = d.rowStep ?? 1;
  if (!d.readRows || out * inF <= BLOCK_ELEMS) return out;
  return Math.min(out, Math.max(step, Math.floor(BLOCK_ELEMS / inF / step) * step));
}

/**
 * c[m, n] = a · Wᵀ + beta · c (transB: W [n, k]) or a · W + beta · c (W [k, n]), W = d of shape
 * [out, in]. With one block the result is bit-identical to gemm on the dequantized W.
 */
export function packedGemm(k: TrainKernels, d: PackedData, shape: readonly number[], transB: boolean,
  m: number, n: number, kk: number, a: Float32Array, beta: number, c: Float32Array): void {
  if (d.gemm) return d.gemm(transB, m, n, kk, a, beta, c, k);
  const [out, inF] = shape;
  const rows = rowsPerBlock(d, out, inF);
  if (rows >= out) {
    return withScratch(out * inF, (w) => {
      if (d.readRows) d.readRows(0, out, w);
      else d.dequantize(w);
      k.gemm(false, transB, m, n, kk, 1, a, w, beta, c);
    });
  }
  withScratch(rows * inF, (w) => withScratch(m * rows, (t) => {
    for (let r0 = 0; r0 < out; r0 += rows) {
      const r = Math.min(rows, out - r0);
      const blk = w.subarray(0, r * inF);
      d.readRows!(r0, r, blk);
      if (transB) forwardBlock(k, m, out, inF, r0, r, a, blk, beta, c, t);
      else backwardBlock(k, m, out, inF, r0, r, a, blk, r0 === 0 ? beta : 1, c, t);
    }
  }));
}

/** y[:, r0:r0+r] = x[m, in] · Wblkᵀ + beta · y[:, r0:r0+r] (y is [m, out]; t holds the [m, r] product). */
function forwardBlock(k: TrainKernels, m: number, out: number, inF: number, r0: number, r: number,
  x: Float32Array, blk: Float32Array, beta: number, y: Float32Array, t: Float32Array): void {
  const tmp = t.subarray(0, m * r);
  k.gemm(false, true, m, r, inF, 1, x, blk, 0, tmp);
  for (let i = 0; i < m; i++) {
    const yo = i * out + r0;
    const to = i * r;
    if (beta === 0) for (let j = 0; j < r; j++) y[yo + j] = tmp[to + j];
    else for (let j = 0; j < r; j++) y[yo + j] = tmp[to + j] + beta * y[yo + j];
  }
}

/** dx[m, in] = dy[:, r0:r0+r] · Wblk + beta · dx (dy is [m, out]; t gathers its [m, r] columns). */
function backwardBlock(k: TrainKernels, m: number, out: number, inF: number, r0: number, r: number,
  dy: Float32Array, blk: Float32Array, beta: number, dx: Float32Array, t: Float32Array): void {
  const cols = t.subarray(0, m * r);
  for (let i = 0; i < m; i++) cols.set(dy.subarray(i * out + r0, i * out + r0 + r), i * r);
  k.gemm(false, false, m, inF, r, 1, cols, blk, beta, dx);
}
