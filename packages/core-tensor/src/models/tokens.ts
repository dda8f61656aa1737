/**
 * Token batches as the models take them: one sequence (an Int32Array), equal-length rows, or a flat
 * row-major buffer with its [B, T] shape (what a data loader produces without copying); and the
 * position of each row a forward runs.
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

/**
 * Each row's position, for rows = lead virtual rows + n caller rows: past + i, or for caller rows the
 * given position ([n] shared, or [B*n]) + shift.
 */
export function positionsFor(B: number, rows: number, past: number, given?: ArrayLike<number>, lead = 0, shift = 0): Int32Array {
  const n = rows - lead;
  if (given !== undefined && given.length !== n && given.length !== B * n) {
    throw new PeftError('E_SHAPE', `${given.length} positions for a [${B}, ${n}] batch (expected ${n} or ${B * n})`);
  }
  const pos = new Int32Array(B * rows);
  for (let i = 0; i < pos.length; i++) {
    const [b, t] = [Math.floor(i / rows), (i % rows) - lead];
    if (given === undefined || t < 0) {
      pos[i] = past + (i % rows);
      continue;
    }
    const p = given.length === n ? given[t] : given[b * n + t];
    if (!Number.isSafeInteger(p) || p < 0) throw new PeftError('E_INPUT', `position ${String(p)} of token ${b * n + t} is not a non-negative integer`);
    pos[i] = p + shift;
  }
  return pos;
}
