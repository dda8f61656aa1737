/**
 * OLoRA (Büyükakyüz 2024, https://arxiv.org/abs/2406.01775) as LoraLayer.olora_init
 * (huggingface/peft src/peft/tuners/lora/layer.py): Q, R = torch.linalg.qr(W) (reduced),
 * A = R[:r] [r, in], B = Q[:, :r] [out, r], base W - scaling·B·A. Unlike PiSSA nothing is divided
 * by scaling. QR's signs follow LAPACK (core linalg/qr.ts); only B·A and the residual are unique.
 * PEFT dequantizes a bitsandbytes base, applies this and re-quantizes; so do we (attach.ts).
 * Not here: the QR (core linalg/qr.ts), storing the residual (weights.ts).
 */
import { qr } from '@peft/core-tensor';
import { checkRank, residual } from './residual.js';
import type { InitInput, InitResult } from './types.js';

export function oloraInit(x: InitInput): InitResult {
  const { outFeatures: out, inFeatures: inF, r, scale } = x;
  checkRank('olora', x.module, r, out, inF);
  const W = x.weight();
  const f = qr(W, out, inF); // Q [out, k], R [k, in]
  const A = Float32Array.from(f.R.subarray(0, r * inF));
  const B = new Float32Array(out * r);
  for (let o = 0; o < out; o++) for (let i = 0; i < r; i++) B[o * r + i] = f.Q[o * f.k + i];
  return { A, B, residual: residual(W, B, A, out, r, inF, scale) };
}
