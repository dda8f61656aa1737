/**
 * The `quant_state.bitsandbytes__{nf4,fp4}` tensor: the UTF-8 bytes of the JSON that bitsandbytes'
 * QuantState.as_dict(packed=True) builds with `json.dumps` (bitsandbytes/utils.py pack_dict_to_tensor).
 * We reproduce Python's output byte for byte: key order of as_dict, `", "` / `": "` separators, and
 * Python's float repr for nested_offset. Parsing accepts any JSON with the fields bitsandbytes reads.
 */
import { PeftError } from '../errors.js';

export type ComputeDtype = 'bfloat16' | 'float16' | 'float32';

export interface QuantState4 {
  quant_type: 'nf4' | 'fp4';
  blocksize: number;
  /** torch dtype name of the original weight, e.g. "bfloat16" */
  dtype: string;
  shape: number[];
  nested_blocksize?: number;
  nested_dtype?: string;
  /** mean of the absmax values subtracted before double quantization (an f32 value) */
  nested_offset?: number;
}

/**
 * Python's repr(float), which json.dumps uses: the shortest round-trip digits (the same digits JS
 * picks), in fixed notation for decimal exponents -4..15 and as `1.5e-07` otherwise; always a `.0`
 * on integral values. json.dumps spells non-finite values NaN / Infinity / -Infinity.
 */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? 'Infinity' : '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const [mant, expText] = Math.abs(x).toExponential().split('e');
  const digits = mant.replace('.', '');
  const e = Number(expText);
  if (e >= -4 && e < 16) {
    if (e < 0) return `${sign}0.${'0'.repeat(-e - 1)}${digits}`;
    const int = digits.slice(0, e + 1).padEnd(e + 1, '0');
    return `${sign}${int}.${digits.slice(e + 1) || '0'}`;
  }
  const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  return `${sign}${m}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
}

/** json.dumps(non_tensor_dict) exactly as bitsandbytes writes it. */
export function formatQuantState(s: QuantState4): string {
  const parts = [
    `"quant_type": "${s.quant_type}"`,
    `"blocksize": ${s.blocksize}`,
    `"dtype": "${s.dtype}"`,
    `"shape": [${s.shape.join(', ')}]`,
  ];
  if (s.nested_offset !== undefined) {
    parts.push(
      `"nested_blocksize": ${s.nested_blocksize ?? 256}`,
      `"nested_dtype": "${s.nested_dtype ?? 'float32'}"`,
      `"nested_offset": ${pythonFloatRepr(s.nested_offset)}`,
    );
  }
  return `{${parts.join(', ')}}`;
}

export function encodeQuantState(s: QuantState4): Uint8Array {
  return new TextEncoder().encode(formatQuantState(s));
}

function bad(key: string, message: string): never {
  throw new PeftError('E_FORMAT', `${key}: ${message}`);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Parses and checks the packed quant state stored under `key` (named in every error). */
export function decodeQuantState(key: string, bytes: Uint8Array): QuantState4 {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    bad(key, `not UTF-8 JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(key, 'expected a JSON object');
  const o = v as Record<string, unknown>;
  if (o.quant_type !== 'nf4' && o.quant_type !== 'fp4') bad(key, `unsupported quant_type ${JSON.stringify(o.quant_type)}`);
  if (!isCount(o.blocksize)) bad(key, `blocksize must be a positive integer, got ${JSON.stringify(o.blocksize)}`);
  if (typeof o.dtype !== 'string') bad(key, 'dtype must be a string');
  if (!Array.isArray(o.shape) || !o.shape.every(isCount)) bad(key, `shape must be a list of sizes, got ${JSON.stringify(o.shape)}`);
  const s: QuantState4 = { quant_type: o.quant_type, blocksize: o.blocksize, dtype: o.dtype, shape: o.shape as number[] };
  if (o.nested_offset !== undefined) {
    if (typeof o.nested_offset !== 'number') bad(key, 'nested_offset must be a number');
    if (o.nested_blocksize !== undefined && !isCount(o.nested_blocksize)) bad(key, 'nested_blocksize must be an integer');
    if (o.nested_dtype !== undefined && o.nested_dtype !== 'float32') {
      bad(key, `nested_dtype ${JSON.stringify(o.nested_dtype)} is not supported (bitsandbytes writes "float32")`);
    }
    s.nested_offset = o.nested_offset;
    s.nested_blocksize = (o.nested_blocksize as number | undefined) ?? 256;
    s.nested_dtype = 'float32';
  }
  return s;
}
