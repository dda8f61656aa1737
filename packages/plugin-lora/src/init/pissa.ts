/**
 * PiSSA (Meng et al. 2024, https://arxiv.org/abs/2404.02948) as LoraLayer.pissa_init
 * (huggingface/peft src/peft/tuners/lora/layer.py): W = U S Vh, S_r = S[:r] / scaling,
 * A = diag(sqrt S_r) Vh[:r] [r, in], B = U[:, :r] diag(sqrt S_r) [out, r], and the base becomes the
 * residual W - scaling·B·A, so the model's output is unchanged at step 0. The principal subspace
 * trains, the residual stays frozen.
 * PEFT's `pissa_niter_K` runs a randomized SVD (torch.svd_lowrank); we run the exact SVD for it too
 * (same subspace, up to the randomized method's error). Singular-vector signs are arbitrary (any
 * SVD's are): only B·A and the residual are determined.
 * Quantized bases: PEFT refuses them; we dequantize, factor, and re-quantize the residual (see
 * attach.ts) — the trained adapter then belongs to Quant(W_res), and its conversion back to the
 * original base (save.ts) is exact only up to that re-quantization error.
 * Not here: the SVD (core linalg/svd.ts), storing the residual (weights.ts).
 */
import { svd } from '@peft/core-tensor';
import { checkRank, residual } from './residual.js';
import type { InitInput, InitResult } from './types.js';

export function pissaInit(x: InitInput): InitResult {
  const { outFeatures: out, inFeatures: inF, r, scale } = x;
  checkRank('pissa', x.module, r, out, inF);
  const W = x.weight();
  const f = svd(W, out, inF); // U [out, k], S [k], Vt [k, in]
  const A = new Float32Array(r * inF);
  const B = new Float32Array(out * r);
  for (let i = 0; i < r; i++) {
    const s = Math.sqrt(f.S[i] / scale);
    for (let j = 0; j < inF; j++) A[i * inF + j] = s * f.Vt[i * inF + j];
    for (let o = 0; o < out; o++) B[o * r + i] = f.U[o * f.k + i] * s;
  }
  return { A, B, residual: residual(W, B, A, out, r, inF, scale) };
}
