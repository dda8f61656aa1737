/**
 * bitsandbytes checkpoints as frozen weights in memory (QuantFormat.frozen of nf4 / fp4 / int8):
 * 4-bit codes stay PACKED as stored (only the double-quantized absmax, 1/64 of the size, is
 * expanded once) and int8 weights keep their CB / SCB rows, so the fused dequant-GEMM kernels
 * compute with them. Checked as they load: shapes, the code book, and the finiteness of the block
 * scales (the 4-bit absmax, the int8 row scales), each message naming the tensor and its file.
 * Also each format's layout: which stored tensors make up a module (bnb4bit.ts, int8.ts).
 * Not here: reading files (io/var-builder.ts), writing the layouts (bnb4bit.ts, int8.ts).
 */
import { toF32 } from '../backend/index.js';
import { quantMap } from '../backend/quant-tables.js';
import type { Backend, QuantType4 } from '../backend/types.js';
import { numel, type RawTensor } from '../dtype.js';
import { inputError } from '../errors.js';
import { checkFinite } from '../finite.js';
import type { Int8Data, Quant4Data } from '../tensor/types.js';
import { doubleDequantize } from './bnb4bit.js';
import type { FrozenContext, StoredIndex, StoredLayout, StoredTensors } from './format.js';
import { decodeQuantState } from './quant-state.js';

const text = (s: readonly number[]): string => `[${s.join(', ')}]`;
const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((v, i) => v === b[i]);
const TORCH: Record<string, 'F32' | 'F16' | 'BF16'> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };

const stateKeys = (key: string): string[] => [`${key}.quant_state.bitsandbytes__nf4`, `${key}.quant_state.bitsandbytes__fp4`];

/** A Linear4bit module: `P.weight` and every `P.weight.*` part, shape and dtype from its quant_state. */
export async function layout4bit(prefix: string, index: StoredIndex): Promise<StoredLayout | undefined> {
  const key = `${prefix}.weight`;
  const stateKey = stateKeys(key).find((k) => index.has(k));
  if (!stateKey) return undefined;
  const s = decodeQuantState(stateKey, (await index.read(stateKey)).data);
  return { parts: index.tensorNames.filter((n) => n === key || n.startsWith(`${key}.`)), shape: [...s.shape], sourceDtype: TORCH[s.dtype] };
}

/** A Linear8bitLt module: an I8 `P.weight` with its `P.SCB` (and `P.weight_format`). */
export function layoutInt8(prefix: string, index: StoredIndex): StoredLayout | undefined {
  const key = `${prefix}.weight`;
  if (!index.has(key) || index.info(key).dtype !== 'I8' || !index.has(`${prefix}.SCB`)) return undefined;
  return { parts: [key, `${prefix}.SCB`, `${prefix}.weight_format`].filter((n) => index.has(n)), shape: [...index.info(key).shape] };
}

/** The stored tensors of one module, each missing one named (exit 2). */
class Parts {
  constructor(readonly get: StoredTensors, readonly ctx: FrozenContext) {}

  need(key: string): RawTensor {
    const t = this.get(key);
    if (!t) throw inputError('E_NOT_FOUND', `missing tensor ${key}`, this.ctx.where(key));
    return t;
  }

  f32(key: string, len: number): Float32Array {
    const x = toF32(this.ctx.backend, { ...this.need(key), name: key } as RawTensor);
    if (x.length !== len) throw inputError('E_FORMAT', `tensor ${key}: expected ${len} values, found ${x.length}`, this.ctx.where(key));
    return x;
  }
}

/** The kernels carry the standard code books; a checkpoint with another quant_map cannot be computed with. */
function checkQuantMap(p: Parts, key: string, type: QuantType4): void {
  const got = p.f32(key, 16);
  const want = quantMap(type);
  if (!got.every((v, i) => v === want[i])) throw inputError('E_FORMAT', `${key}: not the standard ${type} code book`, p.ctx.where(key));
}

/** f32 per-block absmax; with double quantization, dyn[code] * nested[i / 256] + offset (bitsandbytes dequantize_4bit). */
function absmaxOf(p: Parts, backend: Backend, key: string, blocks: number, offset: number | undefined, nestedBlocksize: number): Float32Array {
  const name = `${key}.absmax`;
  if (offset === undefined) return Float32Array.from(p.f32(name, blocks));
  const codes = p.need(name);
  if (codes.dtype !== 'U8' || codes.data.length !== blocks) {
    throw inputError('E_FORMAT', `tensor ${name}: expected U8 [${blocks}] with double quantization, got ${codes.dtype} ${text(codes.shape)}`, p.ctx.where(name));
  }
  const nested = p.f32(`${key}.nested_absmax`, Math.ceil(blocks / nestedBlocksize));
  const code = p.f32(`${key}.nested_quant_map`, 256);
  return doubleDequantize(backend, codes.data, nested, code, nestedBlocksize, offset);
}

/** bitsandbytes Linear4bit: packed codes kept as they are, absmax expanded once (see bnb4bit.ts for the layout). */
export function frozen4bit(prefix: string, get: StoredTensors, shape: readonly number[], ctx: FrozenContext): Quant4Data {
  const p = new Parts(get, ctx);
  const key = `${prefix}.weight`;
  const stateKey = stateKeys(key).find((k) => get(k)) ?? stateKeys(key)[0];
  const s = decodeQuantState(stateKey, p.need(stateKey).data);
  if (!stateKey.endsWith(s.quant_type)) throw inputError('E_FORMAT', `${stateKey}: quant_type is '${s.quant_type}'`, ctx.where(stateKey));
  if (!sameShape(s.shape, shape)) {
    throw inputError('E_SHAPE', `tensor ${key} (4-bit) has shape ${text(s.shape)} in its quant_state, the model expects ${text(shape)}`, ctx.where(key));
  }
  const n = numel(shape);
  const packed = p.need(key).data; // any quant_storage dtype: the bytes are the nibbles
  if (packed.byteLength < Math.ceil(n / 2)) {
    throw inputError('E_FORMAT', `tensor ${key}: ${packed.byteLength} packed bytes, shape ${text(shape)} needs ${Math.ceil(n / 2)}`, ctx.where(key));
  }
  checkQuantMap(p, `${key}.quant_map`, s.quant_type);
  const absmax = absmaxOf(p, ctx.backend, key, Math.ceil(n / s.blocksize), s.nested_offset, s.nested_blocksize ?? 256);
  checkFinite(absmax, { what: `the absmax of 4-bit tensor ${key}`, where: ctx.where(key) }); // a block's scale: NaN / Inf poisons the block
  return { kind: s.quant_type, packed: packed.subarray(0, Math.ceil(n / 2)), absmax, blocksize: s.blocksize };
}

/** bitsandbytes Linear8bitLt: CB int8 [out, in] and SCB f32 [out] (see int8.ts). */
export function frozenInt8(prefix: string, get: StoredTensors, shape: readonly number[], ctx: FrozenContext): Int8Data {
  const p = new Parts(get, ctx);
  const key = `${prefix}.weight`;
  const w = p.need(key);
  if (!sameShape(w.shape, shape)) throw inputError('E_SHAPE', `tensor ${key} has shape ${text(w.shape)}, the model expects ${text(shape)}`, ctx.where(key));
  const format = `${prefix}.weight_format`;
  const f = get(format)?.data;
  if (f && (f.length !== 1 || f[0] !== 0)) throw inputError('E_FORMAT', `${format}: only format 0 ("row") is supported`, ctx.where(format));
  const cb = new Int8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength);
  const scb = Float32Array.from(p.f32(`${prefix}.SCB`, shape[0]));
  checkFinite(scb, { what: `tensor ${prefix}.SCB (int8 row scales)`, where: ctx.where(`${prefix}.SCB`) });
  return { kind: 'int8', cb, scb };
}
