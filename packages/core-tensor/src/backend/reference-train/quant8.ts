/**
 * Reference blockwise 8-bit (de)quantization into caller-given arrays: the reference backend's
 * quantizeBlockwise8 / dequantizeBlockwise8 (../reference.ts, bitsandbytes' rule bit for bit), which
 * 8-bit optimizer states call every step through the training kernels.
 * Not here: the codes themselves (quant/tables.ts, the optimizer plugins), 4-bit formats.
 */
import { referenceBackend } from '../reference.js';
import { trainChecks } from './checks.js';

export function quantizeBlockwise8(x: Float32Array, code: Float32Array, blocksize: number, outCodes: Uint8Array,
  outAbsmax: Float32Array): void {
  trainChecks.quantizeBlockwise8(x, code, blocksize, outCodes, outAbsmax);
  const q = referenceBackend.quantizeBlockwise8(x, code, blocksize);
  outCodes.set(q.codes);
  outAbsmax.set(q.absmax);
}

export function dequantizeBlockwise8(codes: Uint8Array, absmax: Float32Array, code: Float32Array, blocksize: number,
  out: Float32Array): void {
  trainChecks.dequantizeBlockwise8(codes, absmax, code, blocksize, out);
  referenceBackend.dequantizeBlockwise8(codes, absmax, code, blocksize, out);
}
