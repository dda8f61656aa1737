/**
 * LoftQ (Li et al. 2023, https://arxiv.org/abs/2310.08659) as peft/utils/loftq_utils.py loftq_init
 * on its bitsandbytes path (4 bits: Params4bit(res, compress_statistics=False, quant_type="nf4"),
 * blocksize 64):
 *
 *   res = W
 *   repeat loftq_iter times:  Q = nf4(res);  res = W - deq(Q);  L, R = rank-r SVD split of res
 *                             (U sqrt S, sqrt S Vh);  res = W - L R
 *   lora_A = R [r, in], lora_B = L [out, r], base = Q
 *
 * Nothing is divided by scaling (PEFT's choice: with lora_alpha != r the product is rescaled in the
 * forward). The base becomes the NF4 weight itself, kept packed (QLoRA from there on); save.ts writes
 * it next to the adapter (loftq_base.safetensors, bitsandbytes layout) because the adapter is only
 * correct on that base, and load.ts puts it back. A full-precision (f32 / bf16) base is required.
 * Not here: the NF4 kernels (core backend), the SVD (core linalg).
 */
import { getBackend, lowRankApprox, type Quant4Data } from '@peft/core-tensor';
import { checkRank } from './residual.js';
import type { InitInput, InitResult } from './types.js';

/** bitsandbytes' Params4bit default blocksize, what loftq_init quantizes with. */
export const LOFTQ_BLOCKSIZE = 64;

export interface LoftqStep {
  quantized: Quant4Data;
  /** deq(Q) [out, in] */
  dequantized: Float32Array;
  L: Float32Array;
  R: Float32Array;
  /** ||W - deq(Q) - L R||_F after this iteration */
  error: number;
}

/** Runs the alternation, reporting each iteration (the tests check the error falls). */
export function loftq(W: Float32Array, out: number, inF: number, r: number, iters: number, onStep?: (i: number, s: LoftqStep) => void): LoftqStep {
  const backend = getBackend();
  let res: Float32Array = W;
  let last: LoftqStep | undefined;
  for (let it = 0; it < iters; it++) {
    const q = backend.quantize4bit(res, LOFTQ_BLOCKSIZE, 'nf4');
    const deq = backend.dequantize4bit(q.packed, q.absmax, W.length, LOFTQ_BLOCKSIZE, 'nf4');
    const diff = new Float32Array(W.length);
    for (let i = 0; i < W.length; i++) diff[i] = W[i] - deq[i];
    const f = lowRankApprox(diff, out, inF, r);
    const L = Float32Array.from(f.L);
    const R = Float32Array.from(f.R);
    res = new Float32Array(W.length);
    let err = 0;
    for (let i = 0; i < out; i++) {
      for (let j = 0; j < inF; j++) {
        let lr = 0;
        for (let k = 0; k < r; k++) lr += f.L[i * r + k] * f.R[k * inF + j];
        res[i * inF + j] = W[i * inF + j] - lr;
        err += (diff[i * inF + j] - lr) ** 2;
      }
    }
    last = { quantized: { kind: 'nf4', packed: q.packed, absmax: q.absmax, blocksize: LOFTQ_BLOCKSIZE }, dequantized: deq, L, R, error: Math.sqrt(err) };
    onStep?.(it, last);
  }
  return last!;
}

export function loftqInit(x: InitInput, iters: number): InitResult {
  checkRank('loftq', x.module, x.r, x.outFeatures, x.inFeatures);
  const s = loftq(x.weight(), x.outFeatures, x.inFeatures, x.r, iters);
  return { A: s.R, B: s.L, quantized: s.quantized };
}
