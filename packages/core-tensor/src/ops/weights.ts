/**
 * The two products every weight kind must support, for linear and the LM head: y = x W^T
 * (forward) and dx = dy W (backward), with W [out, in] stored as f32/f64, bf16 bits, bitsandbytes
 * 4-bit blocks, LLM.int8 rows or a plugin's packed form. f32 activations use the fused dequant-GEMM
 * kernels (W is never expanded), or for a packed W its format's product (packed-gemm.ts); f64
 * activations (gradient checks) dequantize W to f64 and use the generic gemm.
 */
import { referenceBackend } from '../backend/reference.js';
import type { TrainKernels } from '../backend/train-kernels.js';
import { PeftError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { F } from '../tensor/types.js';
import { packedGemm, withScratch } from './packed-gemm.js';

/** W's values as f64 (frozen kinds dequantized exactly as the kernels define them). */
function weightF64(w: Tensor): Float64Array {
  if (w.dtype === 'f64') return w.data as Float64Array;
  if (w.dtype === 'f32') throw new PeftError('E_INPUT', 'an f32 weight cannot multiply f64 activations');
  const d = w.frozen;
  const n = w.size;
  if (d.kind === 'packed') {
    return withScratch(n, (s) => {
      d.dequantize(s);
      return Float64Array.from(s);
    });
  }
  const f32 = d.kind === 'bf16' ? referenceBackend.bf16ToF32(d.bits)
    : d.kind === 'int8' ? referenceBackend.dequantizeInt8Rows(d.cb, d.scb, w.shape[0], w.shape[1])
      : referenceBackend.dequantize4bit(d.packed, d.absmax, n, d.blocksize, d.kind);
  return Float64Array.from(f32);
}

function frozenGemm(k: TrainKernels, transB: boolean, m: number, n: number, kk: number, a: Float32Array,
  w: Tensor, beta: number, c: Float32Array): void {
  const d = w.frozen;
  if (d.kind === 'packed') packedGemm(k, d, w.shape, transB, m, n, kk, a, beta, c);
  else if (d.kind === 'bf16') k.gemmBf16(transB, m, n, kk, 1, a, d.bits, beta, c);
  else if (d.kind === 'int8') k.gemmInt8(transB, m, n, kk, 1, a, d.cb, d.scb, beta, c);
  else k.gemmQuant4(transB, m, n, kk, 1, a, d.packed, d.absmax, d.blocksize, d.kind === 'nf4' ? 0 : 1, beta, c);
}

function checkPair(x: F, w: Tensor): void {
  const xf64 = x instanceof Float64Array;
  if (!xf64 && w.dtype === 'f64') throw new PeftError('E_INPUT', 'an f64 weight cannot multiply f32 activations');
}

/** y[m, out] = x[m, in] @ W^T + beta * y. */
export function matmulWt(k: TrainKernels, m: number, x: F, w: Tensor, beta: number, y: F): void {
  checkPair(x, w);
  const [out, inF] = w.shape;
  if (x instanceof Float64Array) k.gemm(false, true, m, out, inF, 1, x, weightF64(w), beta, y);
  else if (w.dtype === 'f32') k.gemm(false, true, m, out, inF, 1, x, w.data, beta, y);
  else frozenGemm(k, true, m, out, inF, x, w, beta, y as Float32Array);
}

/** dx[m, in] = dy[m, out] @ W + beta * dx. */
export function matmulW(k: TrainKernels, m: number, dy: F, w: Tensor, beta: number, dx: F): void {
  checkPair(dy, w);
  const [out, inF] = w.shape;
  if (dy instanceof Float64Array) k.gemm(false, false, m, inF, out, 1, dy, weightF64(w), beta, dx);
  else if (w.dtype === 'f32') k.gemm(false, false, m, inF, out, 1, dy, w.data, beta, dx);
  else frozenGemm(k, false, m, inF, out, dy, w, beta, dx as Float32Array);
}
