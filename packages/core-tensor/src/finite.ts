/**
 * Non-finite values (NaN, ±Inf) are refused by name (DESIGN.md "Safety rules"): every path that
 * reads weights, adapters or checkpoints, or writes merged / folded tensors, runs one of these scans
 * where the values pass anyway (after reading, after the f32 conversion, before writing).
 * The scans test exponent bits on integer views (all ones = Inf or NaN, in f32, f16, bf16 and f64),
 * so they cost one pass over the bytes: about 6 GB/s for f32 and 3 GB/s for 16-bit data in Node 20
 * on the build VM, well above the speed tensors are read from disk.
 * Not here: deciding where to check (the tasks and loaders), converting dtypes (backend/).
 */
import type { Dtype, RawTensor } from './dtype.js';
import { inputError, type ErrorCode } from './errors.js';

/** Exponent mask and the integer view of each float dtype; other dtypes cannot hold NaN / Inf. */
const EXPONENT: Partial<Record<Dtype, { mask: number; bytes: 2 | 4 }>> = {
  F32: { mask: 0x7f800000, bytes: 4 },
  F16: { mask: 0x7c00, bytes: 2 },
  BF16: { mask: 0x7f80, bytes: 2 },
};

function scanBits(u: Uint16Array | Uint32Array, mask: number): number {
  for (let i = 0; i < u.length; i++) if ((u[i] & mask) === mask) return i;
  return -1;
}

/** Index of the first NaN / ±Inf of `x`, or -1. */
export function firstNonFinite(x: Float32Array | Float64Array): number {
  if (x instanceof Float32Array) return scanBits(new Uint32Array(x.buffer, x.byteOffset, x.length), 0x7f800000);
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) return i;
  return -1;
}

/** The same over stored bytes of a safetensors dtype (-1 for dtypes without NaN / Inf). */
export function firstNonFiniteRaw(t: Pick<RawTensor, 'dtype' | 'data'>): number {
  const d = t.data;
  if (t.dtype === 'F64') {
    const b = d.byteOffset % 8 === 0 ? d : d.slice();
    return firstNonFinite(new Float64Array(b.buffer, b.byteOffset, b.byteLength >>> 3));
  }
  const e = EXPONENT[t.dtype];
  if (!e) return -1;
  const b = d.byteOffset % e.bytes === 0 ? d : d.slice();
  const u = e.bytes === 4 ? new Uint32Array(b.buffer, b.byteOffset, b.byteLength >>> 2) : new Uint16Array(b.buffer, b.byteOffset, b.byteLength >>> 1);
  return scanBits(u, e.mask);
}

/** "NaN", "inf" or "-inf" for element `i` of a scan that found one. */
function describe(value: number): string {
  return Number.isNaN(value) ? 'NaN' : value > 0 ? 'inf' : '-inf';
}

function valueAt(t: Pick<RawTensor, 'dtype' | 'data'>, i: number): number {
  const dv = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  if (t.dtype === 'F64') return dv.getFloat64(i * 8, true);
  if (t.dtype === 'F32') return dv.getFloat32(i * 4, true);
  const bits = dv.getUint16(i * 2, true);
  const mantissa = t.dtype === 'F16' ? bits & 0x3ff : bits & 0x7f;
  return mantissa !== 0 ? NaN : bits & 0x8000 ? -Infinity : Infinity;
}

export interface FiniteCheck {
  /** The file or folder the values belong to (prefixes the message). */
  where?: string;
  /** What the values are, e.g. "tensor model.norm.weight" or "the folded model.layers.0.mlp.up_proj.weight". */
  what: string;
  /** Default E_FORMAT (a file holding non-finite values); E_INPUT when finite inputs and settings overflow. */
  code?: Exclude<ErrorCode, 'E_RUNTIME' | 'E_NO_SPACE'>;
  /** Appended to the message, e.g. the setting that made the values overflow. */
  hint?: string;
}

function refuse(c: FiniteCheck, i: number, value: number): never {
  const hint = c.hint ? ` (${c.hint})` : '';
  throw inputError(c.code ?? 'E_FORMAT', `${c.what} holds ${describe(value)} at element ${i}: non-finite values are refused${hint}`, c.where);
}

/** Throws (exit 2) naming `c.what` when `x` holds a NaN or an infinity. */
export function checkFinite(x: Float32Array | Float64Array, c: FiniteCheck): void {
  const i = firstNonFinite(x);
  if (i >= 0) refuse(c, i, x[i]);
}

/** checkFinite over stored bytes (any dtype; only F64 / F32 / F16 / BF16 can fail). */
export function checkFiniteRaw(t: Pick<RawTensor, 'dtype' | 'data'>, c: FiniteCheck): void {
  const i = firstNonFiniteRaw(t);
  if (i >= 0) refuse(c, i, valueAt(t, i));
}
