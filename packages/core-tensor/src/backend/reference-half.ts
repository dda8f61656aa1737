/**
 * Reference f32 <-> f16 / bf16 conversions (IEEE 754 round-to-nearest-even), part of the reference
 * backend. Bits are read and written through Uint32 views so NaN payloads survive (a JS number
 * NaN may be canonicalized when stored through a Float32Array).
 *
 * NaN rules (shared with the native kernels): f32 -> f16 gives sign | 0x7E00 | (mantissa >> 13);
 * f32 -> bf16 gives sign | 0x7FC0; f16 -> f32 is exact except that a signaling NaN comes back quiet
 * (payload shifted, quiet bit set: what F16C vcvtph2ps does, and the contract's "NaN stays quiet");
 * bf16 -> f32 is the bits shifted left by 16, payload and all.
 */
import { checkOut } from './validate.js';
import { roundHalfEven } from './round.js';

const TWO_POW_24 = 2 ** 24;

function u32View(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

/** One f32 (its bits and value) to f16 bits. */
function toHalfBits(bits: number, v: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return mant !== 0 ? sign | 0x7e00 | (mant >>> 13) : sign | 0x7c00;
  const a = Math.abs(v);
  if (a >= 65520) return sign | 0x7c00; // 65520 is the tie between 65504 (odd mantissa) and 2^16: inf
  if (a < 2 ** -14) return sign | roundHalfEven(a * TWO_POW_24); // subnormal; 1024 is the min normal
  let e = exp - 127; // a >= 2^-14 is a normal f32
  let m = roundHalfEven(a * 2 ** (10 - e)); // in [1024, 2048], exact scaling by a power of two
  if (m === 2048) {
    e += 1;
    m = 1024;
  }
  return sign | ((e + 15) << 10) | (m - 1024);
}

export function f32ToF16(x: Float32Array, out?: Uint16Array): Uint16Array {
  checkOut('f32ToF16', out, x.length);
  const y = out ?? new Uint16Array(x.length);
  const bits = u32View(x);
  for (let i = 0; i < x.length; i++) y[i] = toHalfBits(bits[i], x[i]);
  return y;
}

export function f16ToF32(x: Uint16Array, out?: Float32Array): Float32Array {
  checkOut('f16ToF32', out, x.length);
  const y = out ?? new Float32Array(x.length);
  const ybits = u32View(y);
  for (let i = 0; i < x.length; i++) {
    const h = x[i];
    const neg = (h & 0x8000) !== 0;
    const e = (h >>> 10) & 31;
    const m = h & 0x3ff;
    if (e === 31) {
      // inf, or NaN: payload shifted, quiet bit set
      ybits[i] = (neg ? 0x80000000 : 0) + 0x7f800000 + (m === 0 ? 0 : 0x400000 | (m << 13));
    } else {
      const v = e === 0 ? m / TWO_POW_24 : (1024 + m) * 2 ** (e - 25);
      y[i] = neg ? -v : v;
    }
  }
  return y;
}

export function f32ToBf16(x: Float32Array, out?: Uint16Array): Uint16Array {
  checkOut('f32ToBf16', out, x.length);
  const y = out ?? new Uint16Array(x.length);
  const bits = u32View(x);
  for (let i = 0; i < x.length; i++) {
    const b = bits[i];
    if ((b & 0x7fffffff) > 0x7f800000) y[i] = ((b >>> 16) & 0x8000) | 0x7fc0;
    else y[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16; // RNE on the low half; carries into inf
  }
  return y;
}

export function bf16ToF32(x: Uint16Array, out?: Float32Array): Float32Array {
  checkOut('bf16ToF32', out, x.length);
  const y = out ?? new Float32Array(x.length);
  const ybits = u32View(y);
  for (let i = 0; i < x.length; i++) ybits[i] = x[i] * 65536;
  return y;
}
