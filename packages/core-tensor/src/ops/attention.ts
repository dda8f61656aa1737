/**
 * attention (fused): causal grouped-query scaled-dot-product attention, tiled with an online
 * softmax (the T x S score matrix is never kept). q [B,T,nh,hd], k / v [B,S,nkv,hd] (S >= T: the
 * queries are the last T positions), out [B,T,nh,hd]. Saves q, k, v, out and the row logsumexp
 * lse [B,nh,T]; backward recomputes the scores (FlashAttention-2).
 */
import type { Grads, Node } from './node.js';
import { needsGrad, record } from './tape.js';
import type { TrainKernels } from '../backend/train-kernels.js';
import { PeftError } from '../errors.js';
import { zeros } from '../tensor/create.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { kernelsFor, type KernelOptions } from './kernels.js';
import { floatDtype, sameDtype, sameShape } from './loops.js';

export interface AttentionOptions extends KernelOptions {
  /** Score scale; default 1/sqrt(hd). */
  scale?: number;
}

interface AttnCtx { dims: Dims; scale: number; kernels?: TrainKernels }
type Dims = [B: number, T: number, S: number, nh: number, nkv: number, hd: number];

function dims(q: Tensor, k: Tensor, v: Tensor): Dims {
  const text = (t: Tensor): string => `[${t.shape.join(', ')}]`;
  const ok = q.rank === 4 && k.rank === 4 && sameShape(k.shape, v.shape) && q.shape[0] === k.shape[0] &&
    q.shape[3] === k.shape[3];
  if (!ok) {
    throw new PeftError('E_SHAPE', `attention: q ${text(q)}, k ${text(k)}, v ${text(v)} are not [B,T,nh,hd], [B,S,nkv,hd]`);
  }
  const [B, T, nh, hd] = q.shape;
  return [B, T, k.shape[1], nh, k.shape[2], hd];
}

export function attention(q: Tensor, k: Tensor, v: Tensor, opts?: AttentionOptions): Tensor {
  const dtype = sameDtype('attention', q, k, v);
  const d = dims(q, k, v);
  const [B, T, , nh, , hd] = d;
  const scale = opts?.scale ?? 1 / Math.sqrt(hd);
  return tidy(() => { // a kernel that throws leaves nothing allocated
    const out = zeros(q.shape, { dtype });
    const lse = zeros([B, nh, T], { dtype });
    kernelsFor(dtype, opts?.kernels).attentionForward(out.data, lse.data, q.data, k.data, v.data, ...d, scale);
    if (needsGrad(q, k, v)) {
      record('attention', out, [q, k, v], [q, k, v, out, lse], { dims: d, scale, kernels: opts?.kernels });
    }
    return out;
  });
}

export function attentionBackward(g: Tensor, node: Node<AttnCtx>): Grads {
  const [q, k, v, out, lse] = node.saved;
  const { dims: d, scale, kernels } = node.ctx;
  const dtype = floatDtype('attention', g);
  const [dq, dk, dv] = [zeros(q.shape, { dtype }), zeros(k.shape, { dtype }), zeros(v.shape, { dtype })];
  kernelsFor(dtype, kernels).attentionBackward(dq.data, dk.data, dv.data, g.data, q.data, k.data, v.data, out.data,
    lse.data, ...d, scale);
  return [dq, dk, dv].map((t, i) => (node.inputs[i].requiresGrad ? t : undefined));
}
