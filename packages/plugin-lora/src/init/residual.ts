/**
 * W - s·B·A in f64, rounded once to f32: the base weight that PiSSA / OLoRA / LoftQ leave behind,
 * computed from the f32 factors the adapter actually holds, so W_res + s·B·A reproduces W as
 * closely as f32 allows. W [out, in], B [out, r], A [r, in].
 * Not here: storing it back in the base's format (weights.ts replaceWeight).
 */
import { PeftError } from '@peft/core-tensor';

export function residual(W: ArrayLike<number>, B: ArrayLike<number>, A: ArrayLike<number>, out: number, r: number, inF: number, s: number): Float32Array {
  const res = new Float32Array(out * inF);
  const row = new Float64Array(inF);
  for (let i = 0; i < out; i++) {
    for (let j = 0; j < inF; j++) row[j] = W[i * inF + j];
    for (let k = 0; k < r; k++) {
      const b = s * B[i * r + k];
      for (let j = 0; j < inF; j++) row[j] -= b * A[k * inF + j];
    }
    for (let j = 0; j < inF; j++) res[i * inF + j] = row[j];
  }
  return res;
}

/** The SVD / QR inits need r <= min(out, in) (PEFT would silently build smaller factors). */
export function checkRank(init: string, module: string, r: number, out: number, inF: number): void {
  if (r > Math.min(out, inF)) {
    throw new PeftError('E_INPUT', `lora: ${init} needs r <= min(out, in), but ${module} [${out}, ${inF}] has r = ${r}`);
  }
}
