/**
 * Reductions along one axis (sum also over everything), viewing x as [outer, len, inner] around
 * the axis. `keepdim` keeps the axis with size 1 so the result broadcasts back against x.
 * Composites (mean, softmax, logSoftmax) are built from primitives; softmax subtracts the
 * (constant, unrecorded) row max first so exp never overflows.
 */
import type { Grads, Node } from './node.js';
import { needsGrad, noGrad, record } from './tape.js';
import { zeros } from '../tensor/create.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { add, div, exp, log, mulScalar, neg, sub } from './elementwise.js';
import { axisOf, floatDtype } from './loops.js';

/** x as [outer, len, inner] around `axis`, and the reduced shape. */
function around(x: Tensor, axis: number, keepdim: boolean): { outer: number; len: number; inner: number; shape: number[] } {
  const s = x.shape;
  let outer = 1;
  let inner = 1;
  for (let d = 0; d < axis; d++) outer *= s[d];
  for (let d = axis + 1; d < s.length; d++) inner *= s[d];
  const shape = keepdim ? s.map((v, d) => (d === axis ? 1 : v)) : s.filter((_, d) => d !== axis);
  return { outer, len: s[axis], inner, shape };
}

/** g ([outer, inner] values) copied along the reduced axis to x's shape ([outer, len, inner]). */
function spread(g: Tensor, x: Tensor, axis: number | undefined): Tensor {
  const out = zeros(x.shape, { dtype: floatDtype('sum', g) });
  const o = out.data;
  const d = g.data;
  if (axis === undefined) {
    o.fill(d[0]);
    return out;
  }
  const { outer, len, inner } = around(x, axis, true);
  for (let a = 0; a < outer; a++) {
    for (let l = 0; l < len; l++) o.set(d.subarray(a * inner, (a + 1) * inner), (a * len + l) * inner);
  }
  return out;
}

/** Sum along `axis` (every element when omitted: a scalar, or all-ones shape with keepdim). */
export function sum(x: Tensor, axis?: number, keepdim = false): Tensor {
  const dtype = floatDtype('sum', x);
  const d = x.data;
  let out: Tensor;
  let ax: number | undefined;
  if (axis === undefined) {
    out = zeros(keepdim ? x.shape.map(() => 1) : [], { dtype });
    let acc = 0;
    for (let i = 0; i < d.length; i++) acc += d[i];
    out.data[0] = acc;
  } else {
    ax = axisOf('sum', axis, x.rank);
    const { outer, len, inner, shape } = around(x, ax, keepdim);
    out = zeros(shape, { dtype });
    const o = out.data;
    for (let a = 0; a < outer; a++) {
      for (let l = 0; l < len; l++) {
        const base = (a * len + l) * inner;
        for (let i = 0; i < inner; i++) o[a * inner + i] += d[base + i];
      }
    }
  }
  if (needsGrad(x)) record('sum', out, [x], [], ax);
  return out;
}

export function sumBackward(g: Tensor, node: Node<number | undefined>): Grads {
  return [spread(g, node.inputs[0], node.ctx)];
}

interface MaxCtx { axis: number; arg: Int32Array }

/** Max along `axis`; the gradient goes to the first maximal element. */
export function max(x: Tensor, axis: number, keepdim = false): Tensor {
  const dtype = floatDtype('max', x);
  const ax = axisOf('max', axis, x.rank);
  const { outer, len, inner, shape } = around(x, ax, keepdim);
  const out = zeros(shape, { dtype });
  const o = out.data;
  const d = x.data;
  const arg = new Int32Array(outer * inner);
  for (let a = 0; a < outer; a++) {
    for (let i = 0; i < inner; i++) {
      let best = -Infinity;
      let at = 0;
      for (let l = 0; l < len; l++) {
        const v = d[(a * len + l) * inner + i];
        if (Number.isNaN(v)) { // NaN wins, as in torch
          [best, at] = [v, l];
          break;
        }
        if (v > best) [best, at] = [v, l];
      }
      o[a * inner + i] = best;
      arg[a * inner + i] = at;
    }
  }
  if (needsGrad(x)) record('max', out, [x], [], { axis: ax, arg });
  return out;
}

export function maxBackward(g: Tensor, node: Node<MaxCtx>): Grads {
  const x = node.inputs[0];
  const { axis, arg } = node.ctx;
  const { outer, len, inner } = around(x, axis, true);
  const out = zeros(x.shape, { dtype: floatDtype('max', g) });
  const o = out.data;
  const d = g.data;
  for (let a = 0; a < outer; a++) {
    for (let i = 0; i < inner; i++) o[(a * len + arg[a * inner + i]) * inner + i] = d[a * inner + i];
  }
  return [out];
}

// ---- composites ---------------------------------------------------------------------------------

export function mean(x: Tensor, axis?: number, keepdim = false): Tensor {
  const count = axis === undefined ? x.size : x.shape[axisOf('mean', axis, x.rank)];
  return tidy(() => mulScalar(sum(x, axis, keepdim), 1 / count));
}

/** exp(x - max) / sum(exp(x - max)) along axis. */
export function softmax(x: Tensor, axis = -1): Tensor {
  return tidy(() => {
    const m = noGrad(() => max(x, axis, true));
    const e = exp(sub(x, m));
    return div(e, sum(e, axis, true));
  });
}

/** x - max - log(sum(exp(x - max))) along axis. */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return tidy(() => {
    const m = noGrad(() => max(x, axis, true));
    const shifted = sub(x, m);
    return add(shifted, neg(log(sum(exp(shifted), axis, true))));
  });
}
