/**
 * NTK-attention (Liang, Shi, Song, Yang, "Toward Infinite-Long Prefix in Transformer", arXiv 2406.14036;
 * ChristianYang37/chiwun src/NTK-Attention/ntk-attn-chatglm/ntk_glm.py `ntk_attn`): per layer and query head,
 * k in R^hd and Z in R^{hd x hd} stand for an unbounded prefix. With phi(x) = ELU(x / hd^(1/4)) + 1 on the
 * rotated query q_i, scores s_ij = q_i . k_j / sqrt(hd) over the visible (causal) keys,
 *     out_i = (sum_j exp(s_ij) v_j + phi(q_i) Z) / (sum_j exp(s_ij) + phi(q_i) . |k|)
 * (ntk_attn subtracts the row max from both sums; it cancels). Computed on the fused attention kernel: with a
 * zero key in front (score 0 for every query, so its softmax weight is w0 = 1 / (1 + E), E = sum_j exp(s_ij)),
 *     O1 = attention(q, [0; K], [0; V])   = sum_j exp(s_ij) v_j / (1 + E)
 *     O2 = attention(q, [0; K], [e0; e1]) : channel 0 = w0, channel 1 = E / (1 + E)
 *     out = (O1 + phi(q) Z w0) / (E / (1 + E) + phi(q) . |k| w0)
 * which is the formula exactly (numerator and denominator divided by 1 + E) and never forms the T x S scores;
 * when E is huge, w0 underflows to 0 and the prefix term fades, as exp(-max) makes it in ntk_attn.
 * NtkAttention replaces a layer's self_attn module (as LoRA wraps a Linear): the core's prefix hook cannot
 * carry this, since phi(q) Z is not a softmax over any finite set of keys. Its k / Z are parameters of the
 * module (`ntk_phi_k` [nh, hd], `ntk_phi_kv` [nh, hd, hd]); GQA: one pair per query head, after KV repetition.
 * Not here: attaching / saving (methods/ntk-prefix.ts).
 */
import { Attention, ops, tidy, zeros, type KvCache, type RopeInput, type Tensor, type TensorFloatDtype } from '@peft/core-tensor';
import { abs, eluPlusOne } from './nn/layers.js';

type KernelOptions = ops.KernelOptions;

/** k0 [B, S + 1, nkv, hd] = [0; k], and the value pairs of O1 and O2 (module doc). */
function withSentinel(k: Tensor, v: Tensor): { k0: Tensor; v1: Tensor; v2: Tensor } {
  const [B, S, nkv, hd] = k.shape;
  const dtype = k.dtype as TensorFloatDtype;
  const zero = zeros([B, 1, nkv, hd], { dtype });
  const v2 = zeros([B, S + 1, nkv, hd], { dtype });
  const d = v2.data;
  for (let b = 0; b < B; b++) {
    for (let s = 0; s <= S; s++) for (let h = 0; h < nkv; h++) d[((b * (S + 1) + s) * nkv + h) * hd + (s === 0 ? 0 : 1)] = 1;
  }
  return { k0: ops.concat([zero, k], 1), v1: ops.concat([zero, v], 1), v2 };
}

/** phi(q) Z per head: q [B, T, nh, hd], Z [nh, hd, hd] -> [B, T, nh, hd] (row vector times Z, as torch.matmul(phi_q, Z)). */
function timesZ(phiQ: Tensor, Z: Tensor): Tensor {
  const [B, T, nh, hd] = phiQ.shape;
  const heads = ops.transpose(phiQ, 0, 2); // [nh, T, B, hd]
  const out = [];
  for (let h = 0; h < nh; h++) {
    const zt = ops.transpose(Z.slice(0, h, h + 1).reshape([hd, hd]), 0, 1); // linear(x, W) = x W^T: W = Z^T
    out.push(ops.linear(heads.slice(0, h, h + 1).reshape([T * B, hd]), zt).reshape([1, T, B, hd]));
  }
  return ops.transpose(ops.concat(out, 0), 0, 2);
}

/** NTK attention: q [B, T, nh, hd] (rotated), k / v [B, S, nkv, hd], phiK [nh, hd], phiKV [nh, hd, hd] -> [B, T, nh, hd]. */
export function ntkAttention(q: Tensor, k: Tensor, v: Tensor, phiK: Tensor, phiKV: Tensor, opts?: KernelOptions): Tensor {
  const hd = q.shape[3];
  const { k0, v1, v2 } = withSentinel(k, v);
  const o1 = ops.attention(q, k0, v1, opts);
  const o2 = ops.attention(q, k0, v2, opts);
  const w0 = o2.slice(3, 0, 1); // 1 / (1 + E)       [B, T, nh, 1]
  const wReal = o2.slice(3, 1, 2); // E / (1 + E)
  const phiQ = eluPlusOne(ops.mulScalar(q, hd ** -0.25));
  const num = ops.add(o1, ops.mul(timesZ(phiQ, phiKV), w0));
  const kAbs = abs(phiK).reshape([1, 1, phiK.shape[0], hd]);
  const den = ops.add(wReal, ops.mul(ops.sum(ops.mul(phiQ, kAbs), 3, true), w0));
  return ops.div(num, den);
}

/** A layer's attention with NTK's prefix term: the base module's projections and RoPE, ntkAttention in place of attention. */
export class NtkAttention extends Attention {
  readonly phiK: Tensor;
  readonly phiKV: Tensor;

  constructor(base: Attention, phiK: Tensor, phiKV: Tensor) {
    super(base.config, base.q_proj, base.k_proj, base.v_proj, base.o_proj);
    this.phiK = this.addParameter('ntk_phi_k', phiK);
    this.phiKV = this.addParameter('ntk_phi_kv', phiKV);
  }

  /** As Attention.forward (core models/llama.ts), with ntkAttention. */
  override forward(x: Tensor, rot: RopeInput, cache?: { kv: KvCache; layer: number }, opts?: KernelOptions, prefix?: { k: Tensor; v: Tensor }): Tensor {
    const [B, T] = x.shape;
    const { numHeads: nh, numKvHeads: nkv, headDim: hd } = this.config;
    return tidy(() => {
      const q = ops.rope(this.q_proj.forward(x, opts).reshape([B, T, nh, hd]), rot.cos, rot.sin, rot.pos, opts);
      let k = ops.rope(this.k_proj.forward(x, opts).reshape([B, T, nkv, hd]), rot.cos, rot.sin, rot.pos, opts);
      let v = this.v_proj.forward(x, opts).reshape([B, T, nkv, hd]);
      if (cache) [k, v] = cache.kv.append(cache.layer, k, v);
      else if (prefix) [k, v] = [ops.concat([prefix.k, k], 1), ops.concat([prefix.v, v], 1)];
      const out = ntkAttention(q, k, v, this.phiK, this.phiKV, opts);
      return this.o_proj.forward(out.reshape([B, T, nh * hd]), opts);
    });
  }
}
