/**
 * Unrecorded elementwise loops shared by the ops and their gradients: map over one or two tensors,
 * numpy broadcasting (shapes aligned at the trailing dim, size-1 or missing dims repeat), and the
 * two adjoint moves of broadcasting, `expandTo` (copy out) and `sumTo` (sum back).
 */
import { PeftError } from '../errors.js';
import { zeros } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import type { FloatDtype } from '../tensor/types.js';

const text = (s: readonly number[]): string => `[${s.join(', ')}]`;

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((s, i) => s === b[i]);
}

/** Throws when x was disposed (ops check before allocating, so a failed op leaks nothing). */
export function checkLive(op: string, x: Tensor): void {
  if (x.isDisposed) throw new PeftError('E_RUNTIME', `${op}: tensor ${text(x.shape)} used after dispose()`);
}

/** The float dtype of a live x, or an E_INPUT naming the op when x is a frozen weight. */
export function floatDtype(op: string, x: Tensor): FloatDtype {
  checkLive(op, x);
  if (x.dtype !== 'f32' && x.dtype !== 'f64') throw new PeftError('E_INPUT', `${op}: needs f32/f64 input, got ${x.dtype}`);
  return x.dtype;
}

export function sameDtype(op: string, ...ts: Tensor[]): FloatDtype {
  const d = floatDtype(op, ts[0]);
  for (const t of ts) {
    if (floatDtype(op, t) !== d) throw new PeftError('E_INPUT', `${op}: mixed dtypes ${d} and ${t.dtype}`);
  }
  return d;
}

/** Normalizes a possibly negative axis for a tensor of the given rank. */
export function axisOf(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw new PeftError('E_SHAPE', `${op}: axis ${axis} out of range for rank ${rank}`);
  }
  return a;
}

export function broadcastShape(op: string, a: readonly number[], b: readonly number[]): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1;
    const y = b[b.length - r + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw new PeftError('E_SHAPE', `${op}: cannot broadcast ${text(a)} with ${text(b)}`);
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** For each element of outShape, the flat index into a tensor of `shape` broadcast to it. */
export function broadcastIndex(shape: readonly number[], outShape: readonly number[]): Int32Array {
  const r = outShape.length;
  const strides = new Array<number>(r).fill(0);
  for (let d = shape.length - 1, s = 1; d >= 0; d--) {
    strides[d + r - shape.length] = shape[d] === 1 ? 0 : s;
    s *= shape[d];
  }
  let n = 1;
  for (const s of outShape) n *= s;
  const idx = new Int32Array(n);
  const ctr = new Array<number>(r).fill(0);
  for (let i = 0, cur = 0; i < n; i++) {
    idx[i] = cur;
    for (let d = r - 1; d >= 0; d--) {
      cur += strides[d];
      if (++ctr[d] < outShape[d]) break;
      cur -= strides[d] * outShape[d];
      ctr[d] = 0;
    }
  }
  return idx;
}

export function map1(x: Tensor, f: (v: number) => number): Tensor {
  const out = zeros(x.shape, { dtype: floatDtype('map', x) });
  const o = out.data;
  const d = x.data;
  for (let i = 0; i < o.length; i++) o[i] = f(d[i]);
  return out;
}

/** f over a and b broadcast together. */
export function map2(op: string, a: Tensor, b: Tensor, f: (x: number, y: number) => number): Tensor {
  const dtype = sameDtype(op, a, b);
  const shape = sameShape(a.shape, b.shape) ? a.shape : broadcastShape(op, a.shape, b.shape);
  const out = zeros(shape, { dtype });
  const o = out.data;
  const x = a.data;
  const y = b.data;
  if (sameShape(a.shape, shape) && sameShape(b.shape, shape)) {
    for (let i = 0; i < o.length; i++) o[i] = f(x[i], y[i]);
  } else {
    const ia = broadcastIndex(a.shape, shape);
    const ib = broadcastIndex(b.shape, shape);
    for (let i = 0; i < o.length; i++) o[i] = f(x[ia[i]], y[ib[i]]);
  }
  return out;
}

/** g (shaped like the broadcast result) summed down to `shape`; g itself when nothing was broadcast. */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const out = zeros(shape, { dtype: floatDtype('sumTo', g) });
  const o = out.data;
  const d = g.data;
  const idx = broadcastIndex(shape, g.shape);
  for (let i = 0; i < d.length; i++) o[idx[i]] += d[i];
  return out;
}

/** x copied out to the broadcast shape (x itself when already that shape). */
export function expandTo(x: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(x.shape, shape)) return x;
  if (!sameShape(broadcastShape('expand', x.shape, shape), shape)) {
    throw new PeftError('E_SHAPE', `expand: cannot expand ${text(x.shape)} to ${text(shape)}`);
  }
  const out = zeros(shape, { dtype: floatDtype('expand', x) });
  const o = out.data;
  const d = x.data;
  const idx = broadcastIndex(x.shape, shape);
  for (let i = 0; i < o.length; i++) o[i] = d[idx[i]];
  return out;
}
