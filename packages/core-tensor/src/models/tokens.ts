/**
 * Token batches as the models take them: one sequence (an Int32Array), equal-length rows, or a flat
 * row-major buffer with its [B, T] shape (what a data loader produces without copying).
 */
import { PeftError } from '../errors.js';

export type TokenIds = Int32Array | readonly ArrayLike<number>[] | { data: Int32Array; shape: readonly [number, number] };

/** ids as a flat [B * T] buffer (no copy for Int32Array inputs) with its batch and length. */
export function tokenBatch(ids: TokenIds): { data: Int32Array; B: number; T: number } {
  if (ids instanceof Int32Array) return { data: ids, B: 1, T: ids.length };
  if (!Array.isArray(ids)) {
    const { data, shape } = ids as { data: Int32Array; shape: readonly [number, number] };
    if (shape.length !== 2 || shape[0] * shape[1] !== data.length) {
      throw new PeftError('E_SHAPE', `${data.length} token ids do not fill shape [${shape.join(', ')}]`);
    }
    return { data, B: shape[0], T: shape[1] };
  }
  const rows = ids as readonly ArrayLike<number>[];
  const T = rows.length > 0 ? rows[0].length : 0;
  const data = new Int32Array(rows.length * T);
  rows.forEach((r, b) => {
    if (r.length !== T) throw new PeftError('E_SHAPE', `token rows differ in length (${T} and ${r.length}); pad them`);
    for (let t = 0; t < T; t++) {
      if (!Number.isSafeInteger(r[t])) throw new PeftError('E_INPUT', `token id ${String(r[t])} (row ${b}) is not an integer`);
      data[b * T + t] = r[t];
    }
  });
  return { data, B: rows.length, T };
}
