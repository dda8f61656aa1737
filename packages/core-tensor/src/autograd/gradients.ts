/**
 * The gradient table: one entry per recorded op kind (Record over OpKind, so an op without a
 * gradient does not type-check). Each gradient sits next to its forward in ops/<family>.ts.
 */
import { attentionBackward } from '../ops/attention.js';
import { crossEntropyBackward } from '../ops/cross-entropy.js';
import {
  addBackward, addScalarBackward, divBackward, expBackward, logBackward, mulBackward, mulScalarBackward, negBackward,
  rsqrtBackward, sigmoidBackward, sqrtBackward, subBackward,
} from '../ops/elementwise.js';
import { dropoutBackward, embeddingBackward } from '../ops/embedding.js';
import type { OpKind } from '../ops/kinds.js';
import { linearBackward } from '../ops/linear.js';
import { concatBackward, reshapeBackward, sliceBackward, transposeBackward } from '../ops/movement.js';
import type { GradFn } from '../ops/node.js';
import { layernormBackward, rmsnormBackward } from '../ops/norm.js';
import { maxBackward, sumBackward } from '../ops/reduce.js';
import { ropeBackward } from '../ops/rope.js';
import { swigluBackward } from '../ops/swiglu.js';

export const gradients: Record<OpKind, GradFn> = {
  // elementwise
  add: addBackward,
  sub: subBackward,
  mul: mulBackward,
  div: divBackward,
  neg: negBackward,
  exp: expBackward,
  log: logBackward,
  sqrt: sqrtBackward,
  rsqrt: rsqrtBackward,
  sigmoid: sigmoidBackward,
  mulScalar: mulScalarBackward,
  addScalar: addScalarBackward,
  // reduce
  sum: sumBackward,
  max: maxBackward,
  // movement
  reshape: reshapeBackward,
  transpose: transposeBackward,
  slice: sliceBackward,
  concat: concatBackward,
  // index
  embedding: embeddingBackward,
  dropout: dropoutBackward,
  // fused (TrainKernels)
  linear: linearBackward,
  rmsnorm: rmsnormBackward,
  rope: ropeBackward,
  attention: attentionBackward,
  swiglu: swigluBackward,
  crossEntropy: crossEntropyBackward,
  // fused in TS
  layernorm: layernormBackward,
};
