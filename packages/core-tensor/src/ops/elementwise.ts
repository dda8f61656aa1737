/**
 * Elementwise ops, each forward next to its gradient. Binary ops broadcast (numpy rules; what
 * transformers need: a bias [C] over [.., C], a per-row scale [N, 1] over [N, C]); their gradients
 * sum back over the broadcast dims. Composites (silu) are built from primitives and never recorded.
 */
import type { Grads, Node } from './node.js';
import { needsGrad, record } from './tape.js';
import type { Tensor } from '../tensor/tensor.js';
import { map1, map2, sumTo } from './loops.js';

type None = undefined;
const gradOf = (node: Node<unknown>, i: number): boolean => node.inputs[i].requiresGrad;

// ---- binary -------------------------------------------------------------------------------------

export function add(a: Tensor, b: Tensor): Tensor {
  const out = map2('add', a, b, (x, y) => x + y);
  if (needsGrad(a, b)) record('add', out, [a, b], [], undefined);
  return out;
}

export function addBackward(g: Tensor, node: Node<None>): Grads {
  const [a, b] = node.inputs;
  return [gradOf(node, 0) ? sumTo(g, a.shape) : undefined, gradOf(node, 1) ? sumTo(g, b.shape) : undefined];
}

export function sub(a: Tensor, b: Tensor): Tensor {
  const out = map2('sub', a, b, (x, y) => x - y);
  if (needsGrad(a, b)) record('sub', out, [a, b], [], undefined);
  return out;
}

export function subBackward(g: Tensor, node: Node<None>): Grads {
  const [a, b] = node.inputs;
  return [gradOf(node, 0) ? sumTo(g, a.shape) : undefined, gradOf(node, 1) ? sumTo(neg(g), b.shape) : undefined];
}

export function mul(a: Tensor, b: Tensor): Tensor {
  const out = map2('mul', a, b, (x, y) => x * y);
  if (needsGrad(a, b)) {
    // da needs b and db needs a: save only the factors some gradient will read.
    const need: [boolean, boolean] = [a.requiresGrad, b.requiresGrad];
    record('mul', out, [a, b], need[0] && need[1] ? [b, a] : need[0] ? [b] : [a], need);
  }
  return out;
}

/** saved: b (when a needs grad), then a (when b needs grad). */
export function mulBackward(g: Tensor, node: Node<[boolean, boolean]>): Grads {
  const [a, b] = node.inputs;
  const [needA, needB] = node.ctx;
  const sb = needA ? node.saved[0] : undefined;
  const sa = needB ? node.saved[needA ? 1 : 0] : undefined;
  return [
    sb ? sumTo(map2('mul', g, sb, (x, y) => x * y), a.shape) : undefined,
    sa ? sumTo(map2('mul', g, sa, (x, y) => x * y), b.shape) : undefined,
  ];
}

export function div(a: Tensor, b: Tensor): Tensor {
  const out = map2('div', a, b, (x, y) => x / y);
  if (needsGrad(a, b)) record('div', out, [a, b], [b, out], undefined);
  return out;
}

/** d(a/b)/da = 1/b; d(a/b)/db = -(a/b)/b. saved: b, out. */
export function divBackward(g: Tensor, node: Node<None>): Grads {
  const [a, b] = node.inputs;
  const [sb, out] = node.saved;
  const ga = gradOf(node, 0) ? sumTo(map2('div', g, sb, (x, y) => x / y), a.shape) : undefined;
  let gb: Tensor | undefined;
  if (gradOf(node, 1)) {
    const q = map2('div', out, sb, (x, y) => x / y);
    gb = sumTo(map2('mul', g, q, (x, y) => -x * y), b.shape);
  }
  return [ga, gb];
}

// ---- unary --------------------------------------------------------------------------------------

function unary(op: 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'sigmoid', x: Tensor, f: (v: number) => number,
  save: 'x' | 'out' | 'none'): Tensor {
  const out = map1(x, f);
  if (needsGrad(x)) record(op, out, [x], save === 'x' ? [x] : save === 'out' ? [out] : [], undefined);
  return out;
}

export function neg(x: Tensor): Tensor {
  return unary('neg', x, (v) => -v, 'none');
}
export function negBackward(g: Tensor): Grads {
  return [map1(g, (v) => -v)];
}

export function exp(x: Tensor): Tensor {
  return unary('exp', x, Math.exp, 'out');
}
export function expBackward(g: Tensor, node: Node<None>): Grads {
  return [map2('exp', g, node.saved[0], (d, y) => d * y)];
}

export function log(x: Tensor): Tensor {
  return unary('log', x, Math.log, 'x');
}
export function logBackward(g: Tensor, node: Node<None>): Grads {
  return [map2('log', g, node.saved[0], (d, x) => d / x)];
}

export function sqrt(x: Tensor): Tensor {
  return unary('sqrt', x, Math.sqrt, 'out');
}
/** d sqrt(x) = 1 / (2 sqrt(x)) */
export function sqrtBackward(g: Tensor, node: Node<None>): Grads {
  return [map2('sqrt', g, node.saved[0], (d, y) => (0.5 * d) / y)];
}

export function rsqrt(x: Tensor): Tensor {
  return unary('rsqrt', x, (v) => 1 / Math.sqrt(v), 'out');
}
/** d x^(-1/2) = -x^(-3/2) / 2 = -y^3 / 2 */
export function rsqrtBackward(g: Tensor, node: Node<None>): Grads {
  return [map2('rsqrt', g, node.saved[0], (d, y) => -0.5 * d * y * y * y)];
}

/** 1 / (1 + e^-x), evaluated without overflow on either side. */
export function sigmoid(x: Tensor): Tensor {
  return unary('sigmoid', x, (v) => (v >= 0 ? 1 / (1 + Math.exp(-v)) : Math.exp(v) / (1 + Math.exp(v))), 'out');
}
export function sigmoidBackward(g: Tensor, node: Node<None>): Grads {
  return [map2('sigmoid', g, node.saved[0], (d, s) => d * s * (1 - s))];
}

// ---- with a scalar ------------------------------------------------------------------------------

export function mulScalar(x: Tensor, c: number): Tensor {
  const out = map1(x, (v) => v * c);
  if (needsGrad(x)) record('mulScalar', out, [x], [], c);
  return out;
}
export function mulScalarBackward(g: Tensor, node: Node<number>): Grads {
  const c = node.ctx;
  return [map1(g, (v) => v * c)];
}

export function addScalar(x: Tensor, c: number): Tensor {
  const out = map1(x, (v) => v + c);
  if (needsGrad(x)) record('addScalar', out, [x], [], c);
  return out;
}
export function addScalarBackward(g: Tensor): Grads {
  return [g];
}

// ---- composites ---------------------------------------------------------------------------------

/** x * sigmoid(x) (SiLU / swish); the fused MLP form is `swiglu`. */
export function silu(x: Tensor): Tensor {
  return mul(x, sigmoid(x));
}
