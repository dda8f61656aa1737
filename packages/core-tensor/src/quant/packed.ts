/**
 * A plugin quantizer's weight in memory when the quantizer gives no `frozen` of its own: the stored
 * tensors stay exactly as read (packed, frozen, no gradient), and the PackedData's dequantize calls
 * the quantizer into the buffer it is given: ops/packed-gemm.ts hands it a scratch buffer per
 * product and frees it after, so memory holds the packed model plus at most one dense weight.
 * And the check every packed weight passes as it loads: the quantizer's dequantize must give the
 * shape the model expects, in finite values (exit 2 naming the tensor), as bitsandbytes absmax is.
 * Not here: the bitsandbytes formats (bnb-frozen.ts: the kernels' own layouts), products (ops/).
 */
import { numel } from '../dtype.js';
import { inputError, PeftError } from '../errors.js';
import { checkFinite } from '../finite.js';
import type { PackedData } from '../tensor/types.js';
import type { FrozenContext, QuantFormat, StoredTensors } from './format.js';

export function packedFromDequantize(f: QuantFormat, prefix: string, get: StoredTensors, ctx: FrozenContext): PackedData {
  return {
    kind: 'packed',
    format: f.name,
    dequantize(out) {
      const r = f.dequantize(prefix, get, { backend: ctx.backend, out });
      if (r.data.length !== out.length) {
        throw new PeftError('E_RUNTIME', `quantizer ${f.name}: dequantize of ${prefix} gave ${r.data.length} values, expected ${out.length}`);
      }
      if (r.data !== out) out.set(r.data);
    },
  };
}

/** Dequantizes once (a transient copy) to check shape and finiteness before the weight is used. */
export function checkDequantized(f: QuantFormat, prefix: string, get: StoredTensors, shape: readonly number[], ctx: FrozenContext): void {
  const key = `${prefix}.weight`;
  const r = f.dequantize(prefix, get, { backend: ctx.backend });
  const text = (s: readonly number[]) => `[${s.join(', ')}]`;
  if (r.shape.length !== shape.length || r.shape.some((v, i) => v !== shape[i]) || r.data.length !== numel(shape)) {
    throw inputError('E_SHAPE', `tensor ${key} (${f.name}) dequantizes to shape ${text(r.shape)}, the model expects ${text(shape)}`, ctx.where(key));
  }
  checkFinite(r.data, { what: `the dequantized ${f.name} weight ${key}`, where: ctx.where(key) });
}
