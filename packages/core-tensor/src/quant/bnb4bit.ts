/**
 * bitsandbytes 4-bit weights (NF4 / FP4, optional double quantization) as they appear in a
 * transformers checkpoint: what `Linear4bit._save_to_state_dict` writes for a module prefix P
 * (bitsandbytes/nn/modules.py; QuantState.as_dict(packed=True) in bitsandbytes/functional.py):
 *
 *   P.weight                               U8  [ceil(n/2), 1]   packed codes, element 2j in the high nibble
 *   P.weight.absmax                        F32 [blocks]         (U8 [blocks] codes with double quant)
 *   P.weight.quant_map                     F32 [16]
 *   P.weight.nested_absmax                 F32 [ceil(blocks/256)]   double quant only
 *   P.weight.nested_quant_map              F32 [256]                double quant only
 *   P.weight.quant_state.bitsandbytes__nf4 U8  [len]            JSON, see quant-state.ts
 *
 * The kernels come from the Backend; this module does the layout, double quantization and checks.
 */
import { type NamedRawTensor, type RawTensor, bytesOf, numel } from '../dtype.js';
import { PeftError } from '../errors.js';
import { toF32 } from '../backend/index.js';
import type { Backend, QuantType4 } from '../backend/types.js';
import { decodeQuantState, encodeQuantState, type ComputeDtype } from './quant-state.js';
import { DYNAMIC_MAP, quantMap } from '../backend/quant-tables.js';

export interface Quantize4bitOptions {
  type: QuantType4;
  /** power of two in 32..4096; bitsandbytes/transformers default 64 */
  blocksize: number;
  /** bitsandbytes compress_statistics / transformers bnb_4bit_use_double_quant */
  doubleQuant: boolean;
  /** recorded as the quant state's dtype: the dtype the weight is dequantized to */
  computeDtype: ComputeDtype;
}

/** bitsandbytes quantizes absmax in blocks of 256 with the dynamic map (functional.py quantize_4bit). */
const NESTED_BLOCKSIZE = 256;
const COMPUTE_DTYPES: readonly string[] = ['bfloat16', 'float16', 'float32'];

function tensor(name: string, dtype: 'U8' | 'F32', shape: number[], data: ArrayBufferView): NamedRawTensor {
  return { name, dtype, shape, data: bytesOf(data) };
}

/**
 * Double-quantization offset: mean(absmax) accumulated in f64 left to right, rounded to f32.
 * (bitsandbytes uses torch's f32 absmax.mean(), whose pairwise f32 sum can differ in the last bit.)
 */
export function absmaxOffset(absmax: Float32Array): number {
  let sum = 0;
  for (const a of absmax) sum += a;
  return Math.fround(sum / absmax.length);
}

/** absmax -> (offset, 8-bit codes, nested absmax), as quantize_4bit(compress_statistics=True). */
export function doubleQuantize(backend: Backend, absmax: Float32Array) {
  const offset = absmaxOffset(absmax);
  const centered = absmax.map((a) => Math.fround(a - offset));
  const q = backend.quantizeBlockwise8(centered, DYNAMIC_MAP, NESTED_BLOCKSIZE);
  return { offset, codes: q.codes, nestedAbsmax: q.absmax };
}

/** absmax[i] = f32(f32(code[q[i]] * nested[i / bs]) + offset) (dequantize_4bit with a nested state). */
export function doubleDequantize(
  backend: Backend, codes: Uint8Array, nestedAbsmax: Float32Array, code: Float32Array, blocksize: number, offset: number,
): Float32Array {
  const absmax = backend.dequantizeBlockwise8(codes, nestedAbsmax, code, blocksize);
  const off = Math.fround(offset);
  for (let i = 0; i < absmax.length; i++) absmax[i] = Math.fround(absmax[i] + off);
  return absmax;
}

export function quantize4bitWeight(
  backend: Backend, prefix: string, w: Float32Array, shape: number[], opts: Quantize4bitOptions,
): NamedRawTensor[] {
  const n = numel(shape);
  if (n !== w.length) throw new PeftError('E_SHAPE', `${prefix}.weight: shape [${shape.join(', ')}] has ${n} elements, data has ${w.length}`);
  if (n === 0) throw new PeftError('E_SHAPE', `${prefix}.weight: cannot quantize an empty tensor`);
  if (!COMPUTE_DTYPES.includes(opts.computeDtype)) {
    throw new PeftError('E_INPUT', `computeDtype must be one of ${COMPUTE_DTYPES.join(', ')}, got '${opts.computeDtype}'`);
  }
  const { packed, absmax } = backend.quantize4bit(w, opts.blocksize, opts.type);
  const P = `${prefix}.weight`;
  const out = [tensor(P, 'U8', [packed.length, 1], packed)];
  let offset: number | undefined;
  if (opts.doubleQuant) {
    const dq = doubleQuantize(backend, absmax);
    offset = dq.offset;
    out.push(
      tensor(`${P}.absmax`, 'U8', [dq.codes.length], dq.codes),
      tensor(`${P}.quant_map`, 'F32', [16], quantMap(opts.type)),
      tensor(`${P}.nested_absmax`, 'F32', [dq.nestedAbsmax.length], dq.nestedAbsmax),
      tensor(`${P}.nested_quant_map`, 'F32', [256], DYNAMIC_MAP.slice()),
    );
  } else {
    out.push(
      tensor(`${P}.absmax`, 'F32', [absmax.length], absmax),
      tensor(`${P}.quant_map`, 'F32', [16], quantMap(opts.type)),
    );
  }
  const state = encodeQuantState({
    quant_type: opts.type, blocksize: opts.blocksize, dtype: opts.computeDtype, shape: [...shape],
    ...(offset === undefined ? {} : { nested_blocksize: NESTED_BLOCKSIZE, nested_dtype: 'float32', nested_offset: offset }),
  });
  out.push(tensor(`${P}.quant_state.bitsandbytes__${opts.type}`, 'U8', [state.length], state));
  return out;
}

type Getter = (name: string) => RawTensor | undefined;

function need(get: Getter, name: string): RawTensor {
  const t = get(name);
  if (!t) throw new PeftError('E_FORMAT', `missing tensor '${name}' of a bitsandbytes 4-bit weight`);
  return t;
}

function f32Of(backend: Backend, name: string, t: RawTensor, len: number): Float32Array {
  const x = toF32(backend, { ...t, name } as RawTensor);
  if (x.length !== len) throw new PeftError('E_FORMAT', `${name}: expected ${len} values, found ${x.length}`);
  return x;
}

/** The quant_map a file carries must be the table its quant_type implies (up to the sign of zero). */
function checkQuantMap(backend: Backend, name: string, t: RawTensor, type: QuantType4): void {
  const got = f32Of(backend, name, t, 16);
  const want = quantMap(type);
  if (!got.every((v, i) => v === want[i])) {
    throw new PeftError('E_FORMAT', `${name}: not the standard ${type} code book; custom 4-bit maps are not supported`);
  }
}

/** Reads a 4-bit weight in bitsandbytes' layout (ours or bitsandbytes' own) back to f32. */
export function dequantize4bitWeight(
  backend: Backend, prefix: string, get: Getter, out?: Float32Array,
): { data: Float32Array; shape: number[] } {
  const P = `${prefix}.weight`;
  const stateKey = [`${P}.quant_state.bitsandbytes__nf4`, `${P}.quant_state.bitsandbytes__fp4`].find((k) => get(k));
  if (!stateKey) throw new PeftError('E_FORMAT', `missing tensor '${P}.quant_state.bitsandbytes__nf4' (or __fp4)`);
  const s = decodeQuantState(stateKey, need(get, stateKey).data);
  if (!stateKey.endsWith(s.quant_type)) throw new PeftError('E_FORMAT', `${stateKey}: quant_type is '${s.quant_type}'`);
  const n = numel(s.shape);
  const blocks = Math.ceil(n / s.blocksize);
  const packed = need(get, P).data; // any quant_storage dtype: the bytes are the packed nibbles
  if (packed.byteLength < Math.ceil(n / 2)) {
    throw new PeftError('E_FORMAT', `${P}: ${packed.byteLength} bytes, shape [${s.shape.join(', ')}] needs ${Math.ceil(n / 2)}`);
  }
  checkQuantMap(backend, `${P}.quant_map`, need(get, `${P}.quant_map`), s.quant_type);
  const absmaxT = need(get, `${P}.absmax`);
  let absmax: Float32Array;
  if (s.nested_offset !== undefined) {
    if (absmaxT.dtype !== 'U8' || absmaxT.data.length !== blocks) {
      throw new PeftError('E_FORMAT', `${P}.absmax: expected U8 [${blocks}] with double quantization, got ${absmaxT.dtype} [${absmaxT.shape.join(', ')}]`);
    }
    const nbs = s.nested_blocksize ?? NESTED_BLOCKSIZE;
    const nested = f32Of(backend, `${P}.nested_absmax`, need(get, `${P}.nested_absmax`), Math.ceil(blocks / nbs));
    const code = f32Of(backend, `${P}.nested_quant_map`, need(get, `${P}.nested_quant_map`), 256);
    absmax = doubleDequantize(backend, absmaxT.data, nested, code, nbs, s.nested_offset);
  } else {
    absmax = f32Of(backend, `${P}.absmax`, absmaxT, blocks);
  }
  const data = backend.dequantize4bit(packed, absmax, n, s.blocksize, s.quant_type, out);
  return { data, shape: s.shape };
}
