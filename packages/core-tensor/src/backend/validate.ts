/**
 * Argument checks shared by every backend, so that the reference and native backends reject the same
 * calls with the same messages (PeftError 'E_INPUT'). They check shapes and enums, never values.
 */
import { PeftError } from '../errors.js';
import type { QuantType4 } from './types.js';

function fail(op: string, message: string): never {
  throw new PeftError('E_INPUT', `${op}: ${message}`);
}

/** bitsandbytes blocksizes: a power of two in 32..4096. */
export function checkBlocksize(op: string, blocksize: number): void {
  const ok = Number.isInteger(blocksize) && blocksize >= 32 && blocksize <= 4096 && (blocksize & (blocksize - 1)) === 0;
  if (!ok) fail(op, `blocksize must be a power of two in 32..4096, got ${blocksize}`);
}

export function checkType4(op: string, type: string): asserts type is QuantType4 {
  if (type !== 'nf4' && type !== 'fp4') fail(op, `4-bit type must be 'nf4' or 'fp4', got '${type}'`);
}

export function checkCount(op: string, what: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) fail(op, `${what} must be a non-negative integer, got ${n}`);
}

/** `arr` must hold at least `need` elements (inputs may be longer, e.g. a reused buffer). */
export function checkAtLeast(op: string, what: string, arr: ArrayLike<number>, need: number): void {
  if (arr.length < need) fail(op, `${what} has ${arr.length} elements, needs ${need}`);
}

/** An input that must have an exact length (a code book). */
export function checkLength(op: string, what: string, arr: ArrayLike<number>, n: number): void {
  if (arr.length !== n) fail(op, `${what} must have ${n} entries, got ${arr.length}`);
}

/** An output buffer must have exactly the length of the result. */
export function checkOut(op: string, out: ArrayLike<number> | undefined, n: number): void {
  if (out !== undefined && out.length !== n) fail(op, `out has ${out.length} elements, expected ${n}`);
}

/** A blockwise-8 code: 256 ascending values (the midpoint rule needs them sorted). */
export function checkCode256(op: string, code: Float32Array): void {
  if (code.length !== 256) fail(op, `code must have 256 entries, got ${code.length}`);
  for (let k = 0; k < 255; k++) {
    if (!(code[k] <= code[k + 1])) fail(op, `code must be sorted ascending (entry ${k + 1} breaks it)`);
  }
}

export function checkRows(op: string, len: number, rows: number, cols: number, what: string): void {
  checkCount(op, 'rows', rows);
  checkCount(op, 'cols', cols);
  if (len !== rows * cols) fail(op, `${what} has ${len} elements, expected rows*cols = ${rows * cols}`);
}

export function blockCount(n: number, blocksize: number): number {
  return Math.ceil(n / blocksize);
}
