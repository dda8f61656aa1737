/**
 * The safetensors header, without any file access: parse + validate, and build.
 *
 * Layout: [u64 LE n][n bytes of UTF-8 JSON][data section]. The JSON maps tensor names to
 * {dtype, shape, data_offsets:[begin,end)} (offsets relative to the data section) plus an
 * optional "__metadata__" string->string map.
 *
 * Validation follows the reference Rust crate (huggingface/safetensors, `read_metadata` and
 * `Metadata::validate` in safetensors/src/tensor.rs), so that we accept exactly the files
 * `safetensors.safe_open` accepts:
 *   - n <= 100_000_000 and 8 + n <= file size;
 *   - the header is UTF-8 JSON; leading/trailing JSON whitespace is allowed (the writer pads
 *     with spaces to 8-byte alignment; the crate does not yet require the first byte to be `{`);
 *   - tensors sorted by begin offset must tile the data section: each begins where the previous
 *     ended (no hole, no overlap), end >= begin, end - begin == numel * dtype size, and the last
 *     end is exactly the data section's length.
 * Unknown fields inside a tensor entry are ignored, as serde does. Duplicate JSON keys cannot be
 * seen through JSON.parse (last one wins); the tiling check still catches their offsets.
 *
 * Not here: reading/writing files (safetensors-reader.ts, safetensors-writer.ts).
 */
import { inputError } from '../errors.js';
import { DTYPE_SIZES, isDtype, type Dtype } from '../dtype.js';

export const MAX_HEADER_BYTES = 100_000_000;
export const METADATA_KEY = '__metadata__';

export interface TensorInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** [begin, end) in bytes, relative to the start of the data section. */
  offsets: [number, number];
  byteLength: number;
}

export interface ParsedHeader {
  /** Length of the JSON header in bytes (the u64 prefix). */
  headerBytes: number;
  /** Absolute file position of the data section: 8 + headerBytes. */
  dataStart: number;
  metadata: Record<string, string>;
  /** In file order (ascending offsets). */
  tensors: TensorInfo[];
}

const fmt = (file: string, msg: string) => inputError('E_FORMAT', `not a valid safetensors file: ${msg}`, file);

/** Reads the u64 header length from the first 8 bytes and checks it against the file size and limit. */
export function headerLength(prefix: Uint8Array, fileSize: number, file: string, maxHeaderBytes = MAX_HEADER_BYTES): number {
  if (fileSize < 8 || prefix.byteLength < 8) throw fmt(file, `file is ${fileSize} bytes, shorter than the 8-byte header length`);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n === 0n) throw fmt(file, 'header length is 0');
  if (n > BigInt(maxHeaderBytes)) throw fmt(file, `header length ${n} is above the ${maxHeaderBytes}-byte limit`);
  if (n > BigInt(fileSize - 8)) throw fmt(file, `header length ${n} is larger than the file (${fileSize} bytes)`);
  return Number(n);
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function decodeJson(bytes: Uint8Array, file: string): Record<string, unknown> {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw fmt(file, 'header is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw fmt(file, `header is not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw fmt(file, 'header JSON is not an object');
  return json as Record<string, unknown>;
}

function parseMetadata(v: unknown, file: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (v === null || v === undefined) return out; // serde's Option: null means absent
  if (typeof v !== 'object' || Array.isArray(v)) throw fmt(file, '__metadata__ is not an object');
  for (const [k, s] of Object.entries(v)) {
    if (typeof s !== 'string') throw fmt(file, `__metadata__.${k} is not a string`);
    out[k] = s;
  }
  return out;
}

const isUint = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

function parseEntry(name: string, v: unknown, file: string): TensorInfo {
  const where = `tensor ${JSON.stringify(name)}`;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw fmt(file, `${where} is not an object`);
  const { dtype, shape, data_offsets: off } = v as Record<string, unknown>;
  if (dtype === undefined || shape === undefined || off === undefined)
    throw fmt(file, `${where} lacks one of dtype, shape, data_offsets`);
  if (!isDtype(dtype)) throw fmt(file, `${where} has unknown dtype ${JSON.stringify(dtype)}`);
  if (!Array.isArray(shape) || !shape.every(isUint))
    throw fmt(file, `${where} has shape ${JSON.stringify(shape)}, not a list of non-negative integers`);
  if (!Array.isArray(off) || off.length !== 2 || !isUint(off[0]) || !isUint(off[1]))
    throw fmt(file, `${where} has data_offsets ${JSON.stringify(off)}, not two non-negative integers`);
  const [begin, end] = off as [number, number];
  if (end < begin) throw fmt(file, `${where} has data_offsets [${begin}, ${end}] with end before begin`);
  // numel may exceed 2^53 for hostile shapes; a float product is still far above any real span, so the check below fails as it should.
  let n = DTYPE_SIZES[dtype];
  for (const d of shape) n *= d;
  if (n !== end - begin)
    throw fmt(file, `${where} (${dtype} [${shape.join(', ')}]) needs ${n} bytes but data_offsets span ${end - begin}`);
  return { name, dtype, shape: [...shape], offsets: [begin, end], byteLength: end - begin };
}

/** Checks that the tensors, in offset order, tile [0, dataBytes) exactly (the crate's rule). */
function checkTiling(tensors: TensorInfo[], dataBytes: number, file: string): void {
  let pos = 0;
  let prev: TensorInfo | undefined;
  for (const t of tensors) {
    const [b] = t.offsets;
    if (b < pos) throw fmt(file, `tensors ${JSON.stringify(prev!.name)} and ${JSON.stringify(t.name)} overlap`);
    if (b > pos) throw fmt(file, `bytes [${pos}, ${b}) of the data section before tensor ${JSON.stringify(t.name)} belong to no tensor`);
    pos = t.offsets[1];
    prev = t;
  }
  if (pos > dataBytes)
    throw fmt(file, `tensor ${JSON.stringify(prev!.name)} ends at byte ${pos}, beyond the data section (${dataBytes} bytes)`);
  if (pos < dataBytes) throw fmt(file, `${dataBytes - pos} bytes after the last tensor belong to no tensor`);
}

/** Parses and validates the JSON header `json` of a file of `fileSize` bytes. */
export function parseHeader(json: Uint8Array, fileSize: number, file: string): ParsedHeader {
  const obj = decodeJson(json, file);
  const metadata = parseMetadata(obj[METADATA_KEY], file);
  const tensors: TensorInfo[] = [];
  for (const [name, v] of Object.entries(obj)) if (name !== METADATA_KEY) tensors.push(parseEntry(name, v, file));
  // Sort by (begin, end) like the crate, so zero-length tensors sit before the tensor they share a begin with;
  // then by name, so the order never depends on the JSON key order.
  tensors.sort((a, b) => a.offsets[0] - b.offsets[0] || a.offsets[1] - b.offsets[1] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const headerBytes = json.byteLength;
  const dataStart = 8 + headerBytes;
  checkTiling(tensors, fileSize - dataStart, file);
  return { headerBytes, dataStart, metadata, tensors };
}

// ---- building -----------------------------------------------------------------------------

/**
 * The crate's Dtype enum is declared in increasing alignment order and `serialize` sorts
 * tensors by descending dtype then by name, so the data of wide types comes first and stays
 * aligned. We reproduce the order to write the same bytes as `safetensors.torch.save_file`.
 */
const DTYPE_RANK: Record<Dtype, number> = {
  BOOL: 0, U8: 1, I8: 2, F8_E5M2: 3, F8_E4M3: 4, I16: 5, U16: 6, F16: 7, BF16: 8,
  I32: 9, U32: 10, F32: 11, F64: 12, I64: 13, U64: 14,
};

const enc = new TextEncoder();

/** Rust compares String by UTF-8 bytes; JS `<` compares UTF-16 units, which differ past U+FFFF. */
function byteCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export function safetensorsOrder<T extends { name: string; dtype: Dtype }>(items: readonly T[]): T[] {
  return [...items].sort((l, r) => DTYPE_RANK[r.dtype] - DTYPE_RANK[l.dtype] || byteCompare(l.name, r.name));
}

export interface HeaderEntry {
  name: string;
  dtype: Dtype;
  shape: readonly number[];
  byteLength: number;
}

/**
 * Builds the 8-byte length + JSON header for `entries`, which must already be in data order
 * (see `safetensorsOrder`). Returns the bytes and each entry's [begin, end).
 * The JSON is compact and padded with spaces to a multiple of 8 bytes, exactly as the crate writes it;
 * metadata keys are sorted so output does not depend on insertion order.
 */
export function buildHeader(entries: readonly HeaderEntry[], metadata?: Record<string, string>): { bytes: Uint8Array; offsets: [number, number][] } {
  const parts: string[] = [];
  if (metadata && Object.keys(metadata).length > 0) {
    const sorted = Object.keys(metadata).sort(byteCompare).map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`);
    parts.push(`"${METADATA_KEY}":{${sorted.join(',')}}`);
  }
  const offsets: [number, number][] = [];
  let pos = 0;
  for (const e of entries) {
    offsets.push([pos, pos + e.byteLength]);
    parts.push(`${JSON.stringify(e.name)}:{"dtype":"${e.dtype}","shape":[${e.shape.join(',')}],"data_offsets":[${pos},${pos + e.byteLength}]}`);
    pos += e.byteLength;
  }
  const json = enc.encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const bytes = new Uint8Array(8 + padded).fill(0x20, 8 + json.byteLength);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(padded), true);
  bytes.set(json, 8);
  return { bytes, offsets };
}
