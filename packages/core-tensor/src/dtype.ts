/**
 * Safetensors dtypes and the raw-tensor record passed between io/, quant/ and plugins.
 * Data is always little-endian bytes as stored on disk; `asF32` & co. give typed views
 * (copying only when the bytes are not aligned for the view).
 */
export const DTYPE_SIZES = {
  F64: 8, F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F8_E5M2: 1,
  I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
} as const;

export type Dtype = keyof typeof DTYPE_SIZES;

export function isDtype(s: unknown): s is Dtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZES, s);
}

export function dtypeSize(d: Dtype): number {
  return DTYPE_SIZES[d];
}

/** A tensor as bytes: what safetensors stores and what quantizers produce. */
export interface RawTensor {
  dtype: Dtype;
  shape: number[];
  data: Uint8Array;
}

export interface NamedRawTensor extends RawTensor {
  name: string;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

function aligned(bytes: Uint8Array, size: number): Uint8Array {
  return bytes.byteOffset % size === 0 ? bytes : bytes.slice();
}

export function asF32(bytes: Uint8Array): Float32Array {
  const b = aligned(bytes, 4);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength >>> 2);
}

export function asU16(bytes: Uint8Array): Uint16Array {
  const b = aligned(bytes, 2);
  return new Uint16Array(b.buffer, b.byteOffset, b.byteLength >>> 1);
}

export function asI8(bytes: Uint8Array): Int8Array {
  return new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The bytes behind any typed array (no copy). */
export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
