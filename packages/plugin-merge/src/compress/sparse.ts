/**
 * What compeft and sparsify share: the codec fields every sparse payload has (count, Rice
 * parameter, gap section size), reading them back strictly, and scattering decoded values
 * into per-tensor arrays in the container's tensor order.
 * Not here: how values are stored (signs or f16), the selection (topk.ts).
 */
import { numel, PeftError, type CompressTensor } from '@peft/core-tensor';
import { decodePositions } from './gaps.js';

export const formatError = (method: string) => (what: string) => new PeftError('E_FORMAT', `${method} container: ${what}`);

/** A codec field that must be a non-negative safe integer. */
export function countField(codec: Record<string, unknown>, key: string, fail: (w: string) => Error): number {
  const v = codec[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw fail(`codec field "${key}" is ${JSON.stringify(v)}, expected a count`);
  return v;
}

export function paramsOf(tensors: readonly CompressTensor[]): number {
  return tensors.reduce((s, t) => s + numel(t.shape), 0);
}

/**
 * Splits the payload into [gaps | rest] as the codec says (rest must be exactly `restBytes(count)`),
 * and decodes the positions.
 */
export function readSparse(
  tensors: readonly CompressTensor[], codec: Record<string, unknown>, payload: Uint8Array,
  restBytes: (count: number) => number, fail: (w: string) => Error,
): { positions: Float64Array; rest: Uint8Array; count: number } {
  const count = countField(codec, 'count', fail);
  const gapBytes = countField(codec, 'gap_bytes', fail);
  const k = countField(codec, 'rice_k', fail);
  const params = paramsOf(tensors);
  if (count > params) throw fail(`${count} kept values for ${params} parameters`);
  const want = gapBytes + restBytes(count);
  if (payload.length !== want) throw fail(`payload is ${payload.length} bytes, the codec fields need ${want}`);
  const positions = decodePositions(payload.subarray(0, gapBytes), count, k, params, fail);
  return { positions, rest: payload.subarray(gapBytes), count };
}

/** Zero tensors with `valueAt(j)` written at the j-th position (flat index over the tensors in order). */
export function scatter(tensors: readonly CompressTensor[], positions: Float64Array, valueAt: (j: number) => number): Float32Array[] {
  const out = tensors.map((t) => new Float32Array(numel(t.shape)));
  let t = 0;
  let start = 0;
  for (let j = 0; j < positions.length; j++) {
    while (positions[j] >= start + out[t].length) start += out[t++].length;
    out[t][positions[j] - start] = valueAt(j);
  }
  return out;
}
