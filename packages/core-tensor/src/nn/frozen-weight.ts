/**
 * Frozen-weight access for every adapter method: the base weight W [out, in] of a Linear, whatever
 * its storage (f32, f64, bf16 bits, bitsandbytes NF4/FP4 blocks, LLM.int8 rows, a plugin's packed
 * form): read as f32 a few rows at a time (DoRA's row norms never hold a dequantized copy of a 4-bit
 * weight), read whole (PiSSA / OLoRA / LoftQ need the matrix), and replaced by new values stored
 * the way the old ones were (PiSSA / OLoRA residuals; not for a plugin's packed form).
 * Not here: autograd (the base never trains), the fused dequant-GEMM (ops/weights.ts).
 */
import { getBackend } from '../backend/index.js';
import { PeftError } from '../errors.js';
import { frozenTensor, tensor } from '../tensor/create.js';
import { keep } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { PackedData } from '../tensor/types.js';
import type { Linear } from './linear.js';

/** Elements dequantized per chunk: small enough to stay in cache, big enough to amortize calls. */
const CHUNK_ELEMS = 1 << 16;

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/**
 * A packed weight (a plugin's format) in row blocks: through its readRows when it has them (one
 * reused block buffer), else dequantized whole once (one weight-sized buffer, dropped afterwards).
 */
function packedRowBlocks(d: PackedData, out: number, inF: number, fn: (row0: number, rows: number, values: Float32Array) => void): void {
  if (!d.readRows) {
    const all = new Float32Array(out * inF);
    d.dequantize(all);
    return fn(0, out, all);
  }
  const step = d.rowStep ?? 1;
  const rowsPer = Math.min(out, Math.max(step, Math.floor(CHUNK_ELEMS / inF / step) * step));
  const buf = new Float32Array(rowsPer * inF);
  for (let row0 = 0; row0 < out; row0 += rowsPer) {
    const rows = Math.min(rowsPer, out - row0);
    const v = buf.subarray(0, rows * inF);
    d.readRows(row0, rows, v);
    fn(row0, rows, v);
  }
}

/**
 * Calls fn(row0, rows, values) over W in row blocks; values is f32 [rows, in] (a view for f32
 * weights: do not keep or modify it). 4-bit blocks may straddle rows, so a chunk's row count is a
 * multiple of blocksize / gcd(in, blocksize): every chunk then starts on a block boundary.
 */
export function forEachRowBlock(w: Tensor, fn: (row0: number, rows: number, values: Float32Array | Float64Array) => void): void {
  const [out, inF] = w.shape;
  const backend = getBackend();
  const d = w.dtype === 'f32' || w.dtype === 'f64' ? undefined : w.frozen;
  if (d?.kind === 'packed') return packedRowBlocks(d, out, inF, fn);
  const step = d && d.kind !== 'bf16' && d.kind !== 'int8' ? d.blocksize / gcd(inF, d.blocksize) : 1;
  const rowsPer = Math.max(step, Math.floor(CHUNK_ELEMS / inF / step) * step);
  for (let row0 = 0; row0 < out; row0 += rowsPer) {
    const rows = Math.min(rowsPer, out - row0);
    const e0 = row0 * inF;
    const e1 = e0 + rows * inF;
    if (!d) fn(row0, rows, w.data.subarray(e0, e1));
    else if (d.kind === 'bf16') fn(row0, rows, backend.bf16ToF32(d.bits.subarray(e0, e1)));
    else if (d.kind === 'int8') fn(row0, rows, backend.dequantizeInt8Rows(d.cb.subarray(e0, e1), d.scb.subarray(row0, row0 + rows), rows, inF));
    else {
      const bs = d.blocksize;
      const vals = backend.dequantize4bit(d.packed.subarray(e0 / 2, Math.ceil(e1 / 2)), d.absmax.subarray(e0 / bs, Math.ceil(e1 / bs)), e1 - e0, bs, d.kind);
      fn(row0, rows, vals);
    }
  }
}

/** W as one f32 array [out, in] (dequantized for frozen kinds). */
export function weightF32(w: Tensor): Float32Array {
  const [out, inF] = w.shape;
  const all = new Float32Array(out * inF);
  forEachRowBlock(w, (row0, _rows, v) => all.set(v, row0 * inF));
  return all;
}

/**
 * Replaces the Linear's weight by `values` [out, in], stored as the old weight was: f32/f64 as is,
 * bf16 rounded to nearest even, NF4/FP4 re-quantized with the same blocksize (absmax kept in f32:
 * the in-memory form, double quantization is a file-format matter), int8 re-quantized per row.
 * The old weight is disposed.
 */
export function replaceWeight(linear: Linear, values: Float32Array): void {
  const old = linear.weight;
  const shape = old.shape;
  const backend = getBackend();
  let t: Tensor;
  if (old.dtype === 'f32' || old.dtype === 'f64') t = tensor(values, shape, { dtype: old.dtype });
  else {
    const d = old.frozen;
    if (d.kind === 'packed') {
      throw new PeftError('E_INPUT', `a ${d.format} weight cannot be replaced: the core re-quantizes bf16, nf4, fp4 and int8 weights only`);
    }
    if (d.kind === 'bf16') t = frozenTensor({ kind: 'bf16', bits: backend.f32ToBf16(values) }, shape);
    else if (d.kind === 'int8') t = frozenTensor({ kind: 'int8', ...backend.quantizeInt8Rows(values, shape[0], shape[1]) }, shape);
    else t = frozenTensor({ kind: d.kind, ...backend.quantize4bit(values, d.blocksize, d.kind), blocksize: d.blocksize }, shape);
  }
  if (t.size !== old.size) throw new PeftError('E_SHAPE', `replaceWeight: ${values.length} values for a [${shape.join(', ')}] weight`);
  linear.setParameter('weight', keep(t)).dispose();
}

/**
 * ||W + scale·B·A|| per output row, in f64 (DoraLinearLayer.get_weight_norm: torch.linalg.norm(W +
 * scaling * lora_weight, dim=1)). A [r, in], B [out, r]. -> f64 [out].
 */
export function rowNorms(w: Tensor, A: ArrayLike<number>, B: ArrayLike<number>, r: number, scale: number): Float64Array {
  const [out, inF] = w.shape;
  const norms = new Float64Array(out);
  const ba = new Float64Array(inF);
  forEachRowBlock(w, (row0, rows, v) => {
    for (let i = 0; i < rows; i++) {
      const row = row0 + i;
      ba.fill(0);
      for (let k = 0; k < r; k++) {
        const b = B[row * r + k] * scale;
        if (b === 0) continue;
        for (let j = 0; j < inF; j++) ba[j] += b * A[k * inF + j];
      }
      let s = 0;
      for (let j = 0; j < inF; j++) {
        const x = v[i * inF + j] + ba[j];
        s += x * x;
      }
      norms[row] = Math.sqrt(s);
    }
  });
  return norms;
}
