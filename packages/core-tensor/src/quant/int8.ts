/**
 * LLM.int8 weights (bitsandbytes Linear8bitLt) as transformers saves them for a module prefix P
 * (bitsandbytes/nn/modules.py Linear8bitLt._save_to_state_dict):
 *
 *   P.weight         I8  [rows, cols]   round-half-even(w * 127 / SCB[row])
 *   P.SCB            F32 [rows]         max |w| of each row
 *   P.weight_format  U8  []             0 = "row" (the only layout bitsandbytes still writes)
 *
 * Rows are all leading dimensions (prod(shape[:-1])), columns the last. bitsandbytes' Int8Params
 * rounds the weight to fp16 before quantizing; we quantize the f32 values we are given.
 */
import { bytesOf, numel, type NamedRawTensor, type RawTensor } from '../dtype.js';
import { PeftError } from '../errors.js';
import { toF32 } from '../backend/index.js';
import type { Backend } from '../backend/types.js';

function rowsCols(name: string, shape: number[]): [number, number] {
  if (shape.length < 1) throw new PeftError('E_SHAPE', `${name}: an int8 weight needs at least one dimension`);
  return [numel(shape.slice(0, -1)), shape[shape.length - 1]];
}

export function quantizeInt8Weight(backend: Backend, prefix: string, w: Float32Array, shape: number[]): NamedRawTensor[] {
  const name = `${prefix}.weight`;
  if (numel(shape) !== w.length) {
    throw new PeftError('E_SHAPE', `${name}: shape [${shape.join(', ')}] has ${numel(shape)} elements, data has ${w.length}`);
  }
  const [rows, cols] = rowsCols(name, shape);
  const { cb, scb } = backend.quantizeInt8Rows(w, rows, cols);
  return [
    { name, dtype: 'I8', shape: [...shape], data: bytesOf(cb) },
    { name: `${prefix}.SCB`, dtype: 'F32', shape: [rows], data: bytesOf(scb) },
    // torch.tensor(0, dtype=torch.uint8): a 0-dim tensor
    { name: `${prefix}.weight_format`, dtype: 'U8', shape: [], data: new Uint8Array([0]) },
  ];
}

export function dequantizeInt8Weight(
  backend: Backend, prefix: string, get: (name: string) => RawTensor | undefined, out?: Float32Array,
): { data: Float32Array; shape: number[] } {
  const name = `${prefix}.weight`;
  const w = get(name);
  if (!w) throw new PeftError('E_FORMAT', `missing tensor '${name}' of an int8 weight`);
  const scbT = get(`${prefix}.SCB`);
  if (!scbT) throw new PeftError('E_FORMAT', `missing tensor '${prefix}.SCB' of an int8 weight`);
  if (w.dtype !== 'I8') throw new PeftError('E_FORMAT', `${name}: expected I8, got ${w.dtype}`);
  if (w.data.byteLength !== numel(w.shape)) throw new PeftError('E_FORMAT', `${name}: byte size does not match shape`);
  const fmt = get(`${prefix}.weight_format`);
  if (fmt && (fmt.data.length !== 1 || fmt.data[0] !== 0)) {
    throw new PeftError('E_FORMAT', `${prefix}.weight_format: only format 0 ("row") is supported, got ${fmt.data[0]}`);
  }
  const [rows, cols] = rowsCols(name, w.shape);
  const scb = toF32(backend, { ...scbT, name: `${prefix}.SCB` } as RawTensor);
  if (scb.length !== rows) throw new PeftError('E_FORMAT', `${prefix}.SCB: expected ${rows} values, found ${scb.length}`);
  const cb = new Int8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength);
  return { data: backend.dequantizeInt8Rows(cb, scb, rows, cols, out), shape: [...w.shape] };
}
