/**
 * Reference causal grouped-query attention, one query row at a time: the full score row of a query
 * (O(S) scratch) is computed, softmaxed in doubles and used at once; nothing T x S is kept. The backward
 * pass recomputes the probabilities from q, k and the saved lse, as FlashAttention-2 does
 * (https://arxiv.org/abs/2307.08691), so it checks the same contract the tiled native kernel follows.
 * Not here: tiling or an online softmax (a reference needs neither).
 */
import type { F } from '../train-kernels.js';
import { trainChecks } from './checks.js';

/** Offsets into q/out [B,T,nh,hd], k/v [B,S,nkv,hd] and lse [B,nh,T] for one (batch, query head). */
interface Head {
  T: number; S: number; hd: number; scale: number;
  /** element offset of query t's row: qBase + t * qStride */
  qBase: number; qStride: number;
  /** element offset of key j's row (kv head floor(h / (nh/nkv))): kBase + j * kStride */
  kBase: number; kStride: number;
  lseBase: number;
}

function* heads(B: number, T: number, S: number, nh: number, nkv: number, hd: number, scale: number): Generator<Head> {
  const group = nh / nkv;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nh; h++) {
      const kvh = Math.floor(h / group);
      yield {
        T, S, hd, scale,
        qBase: (b * T * nh + h) * hd, qStride: nh * hd,
        kBase: (b * S * nkv + kvh) * hd, kStride: nkv * hd,
        lseBase: (b * nh + h) * T,
      };
    }
  }
}

/** s[j] = scale * q_t . k_j for the keys query t sees (j <= S-T+t); returns how many that is. */
function scores(s: Float64Array, q: F, k: F, g: Head, t: number): number {
  const qo = g.qBase + t * g.qStride;
  const seen = g.S - g.T + t + 1;
  for (let j = 0; j < seen; j++) {
    const ko = g.kBase + j * g.kStride;
    let dot = 0;
    for (let d = 0; d < g.hd; d++) dot += q[qo + d] * k[ko + d];
    s[j] = g.scale * dot;
  }
  return seen;
}

/** out_t = sum_j softmax(s)_j v_j; lse_t = log sum_j e^{s_j} (max-shifted). */
export function attentionForward(out: F, lse: F, q: F, k: F, v: F,
  B: number, T: number, S: number, nh: number, nkv: number, hd: number, scale: number): void {
  trainChecks.attentionForward(out, lse, q, k, v, B, T, S, nh, nkv, hd, scale);
  const s = new Float64Array(S);
  const acc = new Float64Array(hd);
  for (const g of heads(B, T, S, nh, nkv, hd, scale)) {
    for (let t = 0; t < T; t++) {
      const seen = scores(s, q, k, g, t);
      let max = -Infinity;
      for (let j = 0; j < seen; j++) max = Math.max(max, s[j]);
      let sum = 0;
      for (let j = 0; j < seen; j++) sum += Math.exp(s[j] - max);
      const l = max + Math.log(sum);
      acc.fill(0);
      for (let j = 0; j < seen; j++) {
        const p = Math.exp(s[j] - l);
        const vo = g.kBase + j * g.kStride;
        for (let d = 0; d < hd; d++) acc[d] += p * v[vo + d];
      }
      const oo = g.qBase + t * g.qStride;
      for (let d = 0; d < hd; d++) out[oo + d] = acc[d];
      lse[g.lseBase + t] = l;
    }
  }
}

/**
 * With p_j = e^{s_j - lse}, D = dout . out and ds_j = p_j (dout . v_j - D):
 *   dq = scale sum_j ds_j k_j;  dk_j += scale ds_j q;  dv_j += p_j dout
 * dk/dv sum over the nh/nkv query heads sharing a kv head (in f64 scratch, stored once); all overwritten.
 */
export function attentionBackward(dq: F, dk: F, dv: F, dout: F, q: F, k: F, v: F, out: F, lse: F,
  B: number, T: number, S: number, nh: number, nkv: number, hd: number, scale: number): void {
  trainChecks.attentionBackward(dq, dk, dv, dout, q, k, v, out, lse, B, T, S, nh, nkv, hd, scale);
  const s = new Float64Array(S);
  const dqRow = new Float64Array(hd);
  const dkAcc = new Float64Array(dk.length);
  const dvAcc = new Float64Array(dv.length);
  for (const g of heads(B, T, S, nh, nkv, hd, scale)) {
    for (let t = 0; t < T; t++) {
      const seen = scores(s, q, k, g, t);
      const qo = g.qBase + t * g.qStride;
      let D = 0;
      for (let d = 0; d < hd; d++) D += dout[qo + d] * out[qo + d];
      dqRow.fill(0);
      for (let j = 0; j < seen; j++) {
        const p = Math.exp(s[j] - lse[g.lseBase + t]);
        const ko = g.kBase + j * g.kStride;
        let dp = 0;
        for (let d = 0; d < hd; d++) dp += dout[qo + d] * v[ko + d];
        const ds = scale * p * (dp - D); // the scale of s = scale q.k, folded in once
        for (let d = 0; d < hd; d++) {
          dqRow[d] += ds * k[ko + d];
          dkAcc[ko + d] += ds * q[qo + d];
          dvAcc[ko + d] += p * dout[qo + d];
        }
      }
      for (let d = 0; d < hd; d++) dq[qo + d] = dqRow[d];
    }
  }
  dk.set(dkAcc);
  dv.set(dvAcc);
}
