/**
 * Shape ops. reshape (= view) shares storage, since storage is always contiguous row-major;
 * transpose, slice and concat copy into a new contiguous tensor. A tensor is viewed as
 * [outer, len, inner] around the axis it works on.
 */
import type { Grads, Node } from './node.js';
import { needsGrad, record } from './tape.js';
import { PeftError } from '../errors.js';
import { zeros } from '../tensor/create.js';
import { shareStorage, type Tensor } from '../tensor/tensor.js';
import type { F } from '../tensor/types.js';
import { axisOf, floatDtype, sameDtype } from './loops.js';

const text = (s: readonly number[]): string => `[${s.join(', ')}]`;

function prod(s: readonly number[], from: number, to: number): number {
  let n = 1;
  for (let d = from; d < to; d++) n *= s[d];
  return n;
}

/** Copies `outer` runs of `width` elements: src run a starts at a*srcWidth+srcAt, dst run at a*dstWidth+dstAt. */
function copySlabs(dst: F, src: F, outer: number, srcWidth: number, srcAt: number, dstWidth: number, dstAt: number,
  width: number): void {
  for (let a = 0; a < outer; a++) {
    const from = a * srcWidth + srcAt;
    dst.set(src.subarray(from, from + width), a * dstWidth + dstAt);
  }
}

// ---- reshape ------------------------------------------------------------------------------------

/** Same storage, new shape (one entry may be -1: inferred). */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  floatDtype('reshape', x);
  const known = shape.reduce((n, s) => (s === -1 ? n : n * s), 1);
  const free = shape.filter((s) => s === -1).length;
  const resolved = shape.map((s) => (s === -1 ? x.size / known : s));
  const ok = free <= 1 && resolved.every((s) => Number.isSafeInteger(s) && s >= 0) &&
    prod(resolved, 0, resolved.length) === x.size;
  if (!ok) throw new PeftError('E_SHAPE', `reshape: cannot view ${text(x.shape)} as ${text(shape)}`);
  const out = shareStorage(x, resolved);
  if (needsGrad(x)) record('reshape', out, [x], [], undefined);
  return out;
}

export function reshapeBackward(g: Tensor, node: Node<undefined>): Grads {
  return [reshape(g, node.inputs[0].shape)];
}

// ---- transpose ----------------------------------------------------------------------------------

/** Swaps two axes, copying: [pre, A, mid, B, post] -> [pre, B, mid, A, post]. */
export function transpose(x: Tensor, axis0: number, axis1: number): Tensor {
  const dtype = floatDtype('transpose', x);
  const [p, q] = [axisOf('transpose', axis0, x.rank), axisOf('transpose', axis1, x.rank)].sort((u, v) => u - v);
  if (p === q) return reshape(x, x.shape); // nothing moves: a view
  const s = x.shape;
  const shape = s.map((v, d) => (d === p ? s[q] : d === q ? s[p] : v));
  const out = zeros(shape, { dtype });
  const [pre, A, mid, B, post] = [prod(s, 0, p), s[p], prod(s, p + 1, q), s[q], prod(s, q + 1, s.length)];
  const src = x.data;
  const dst = out.data;
  let o = 0;
  for (let pr = 0; pr < pre; pr++) {
    for (let b = 0; b < B; b++) {
      for (let m = 0; m < mid; m++) {
        for (let a = 0; a < A; a++, o += post) {
          const from = (((pr * A + a) * mid + m) * B + b) * post;
          if (post === 1) dst[o] = src[from];
          else dst.set(src.subarray(from, from + post), o);
        }
      }
    }
  }
  if (needsGrad(x)) record('transpose', out, [x], [], [p, q]);
  return out;
}

export function transposeBackward(g: Tensor, node: Node<[number, number]>): Grads {
  return [transpose(g, node.ctx[0], node.ctx[1])];
}

// ---- slice --------------------------------------------------------------------------------------

interface SliceCtx { axis: number; start: number }

/** Elements start..end-1 along axis (a copy). */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  const dtype = floatDtype('slice', x);
  const ax = axisOf('slice', axis, x.rank);
  const len = x.shape[ax];
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > len || start > end) {
    throw new PeftError('E_SHAPE', `slice: range ${start}..${end} out of bounds for axis ${ax} of ${text(x.shape)}`);
  }
  const inner = prod(x.shape, ax + 1, x.rank);
  const out = zeros(x.shape.map((v, d) => (d === ax ? end - start : v)), { dtype });
  const n = (end - start) * inner;
  copySlabs(out.data, x.data, prod(x.shape, 0, ax), len * inner, start * inner, n, 0, n);
  if (needsGrad(x)) record('slice', out, [x], [], { axis: ax, start });
  return out;
}

/** g placed back into zeros shaped like x. */
export function sliceBackward(g: Tensor, node: Node<SliceCtx>): Grads {
  const x = node.inputs[0];
  const { axis, start } = node.ctx;
  const inner = prod(x.shape, axis + 1, x.rank);
  const out = zeros(x.shape, { dtype: floatDtype('slice', g) });
  const n = g.shape[axis] * inner;
  copySlabs(out.data, g.data, prod(x.shape, 0, axis), n, 0, x.shape[axis] * inner, start * inner, n);
  return [out];
}

// ---- concat -------------------------------------------------------------------------------------

/** Joins tensors along axis; all other dims must agree. */
export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new PeftError('E_SHAPE', 'concat: no tensors');
  const dtype = sameDtype('concat', ...xs);
  const first = xs[0].shape;
  const ax = axisOf('concat', axis, first.length);
  for (const x of xs) {
    if (x.rank !== first.length || x.shape.some((v, d) => d !== ax && v !== first[d])) {
      throw new PeftError('E_SHAPE', `concat: ${text(x.shape)} does not match ${text(first)} off axis ${ax}`);
    }
  }
  const total = xs.reduce((n, x) => n + x.shape[ax], 0);
  const out = zeros(first.map((v, d) => (d === ax ? total : v)), { dtype });
  const inner = prod(first, ax + 1, first.length);
  const outer = prod(first, 0, ax);
  let at = 0;
  for (const x of xs) {
    const n = x.shape[ax] * inner;
    copySlabs(out.data, x.data, outer, n, 0, total * inner, at * inner, n);
    at += x.shape[ax];
  }
  if (needsGrad(...xs)) record('concat', out, xs, [], ax);
  return out;
}

export function concatBackward(g: Tensor, node: Node<number>): Grads {
  let at = 0;
  return node.inputs.map((x) => {
    const start = at;
    at += x.shape[node.ctx];
    return x.requiresGrad ? slice(g, node.ctx, start, at) : undefined;
  });
}
