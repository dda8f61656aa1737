/**
 * The compressed-update container (`*.peftz`): what `peft compress` writes and `--decompress`,
 * `peft inspect` read. The core owns the envelope so every compressor gets the same magic,
 * checksum and header, and inspect can describe a container without loading its plugin; the
 * payload's coding belongs to the compressor named in the header.
 *
 * Layout (all integers little-endian):
 *
 *   offset  size  field
 *   0       4     magic "PFTZ" (50 46 54 5a)
 *   4       2     version (1)
 *   6       2     flags (0; anything else is refused)
 *   8       4     H = header bytes
 *   12      4     P = payload bytes
 *   16      4     CRC-32 (IEEE 802.3, as zlib.crc32) of bytes [20, 20 + H + P)
 *   20      H     header: raw-deflate of UTF-8 JSON (ContainerHeader below)
 *   20 + H  P     payload: the compressor's bytes (e.g. ComPEFT's Rice-coded gaps + sign bits)
 *
 * The file is exactly 20 + H + P bytes. Header JSON fields:
 *   method, options          the compressor and its resolved options
 *   kind                     "adapter" (update against 0: LoRA factors) or "model-delta" (against a base model)
 *   config                   adapter_config.json (adapter) or the fine-tuned config.json (model-delta)
 *   float_keys               config keys written as floats (`16.0`), so the restored config reads the same
 *   tensors                  [[name, dtype, shape], ...] in the coded (sorted) order
 *   params, kept             update values coded, values stored
 *   codec                    the compressor's own fields (scales, Rice parameter, section sizes)
 *
 * Limits (a hostile 243-byte file must not make us allocate gigabytes), checked before allocating:
 *   - the header inflates to at most MAX_CONTAINER_HEADER_BYTES (inflate stops there);
 *   - it lists at most MAX_CONTAINER_TENSORS tensors;
 *   - kept <= 8 * P: every compressor spends at least one payload bit per kept value (ComPEFT: a
 *     Rice codeword of >= 1 bit plus a sign bit; sparsify: >= 1 + 16 bits), so a payload cannot code
 *     more values than it has bits;
 *   - the dense values decoded (params) are bounded where they are allocated: decompress.ts
 *     (DEFAULT_MAX_DECODED_ELEMENTS for adapters, `--max-elements` raises it; a model delta by its base).
 * encodeContainer refuses to write what decodeContainer would refuse.
 * Not here: the payload's coding (the compressor), files and folders (compress.ts).
 */
import { crc32, deflateRawSync, inflateRawSync } from 'node:zlib';
import { isDtype, numel } from '../../dtype.js';
import { inputError, PeftError } from '../../errors.js';
import { parseJsonObject } from '../../io/json-file.js';
import { isLfsPointer, lfsPointerError } from '../../io/regular-file.js';
import type { CompressTensor } from '../../plugin/compressor.js';

export const CONTAINER_MAGIC = 'PFTZ';
export const CONTAINER_VERSION = 1;
export const CONTAINER_PREFIX_BYTES = 20;

/** Inflated header JSON, at most (16 MiB: ~100 bytes a tensor entry leaves room for 100k tensors and the config). */
export const MAX_CONTAINER_HEADER_BYTES = 16 * 1024 * 1024;
/** Tensors one container may list (a 70B-parameter model has about 1,000; an all-linear LoRA of it about 1,100). */
export const MAX_CONTAINER_TENSORS = 100_000;

const mib = (n: number) => `${n / (1024 * 1024)} MiB`;

export type ContainerKind = 'adapter' | 'model-delta';

export interface ContainerHeader {
  method: string;
  options: Record<string, unknown>;
  kind: ContainerKind;
  config: Record<string, unknown>;
  float_keys?: string[];
  tensors: CompressTensor[];
  params: number;
  kept: number;
  codec: Record<string, unknown>;
}

/** The container's bytes. */
export function encodeContainer(header: ContainerHeader, payload: Uint8Array): Uint8Array {
  const { tensors, ...rest } = header;
  const json = Buffer.from(JSON.stringify({ ...rest, tensors: tensors.map((t) => [t.name, t.dtype, t.shape]) }), 'utf8');
  if (tensors.length > MAX_CONTAINER_TENSORS) throw inputError('E_INPUT', `${tensors.length} tensors are more than a container holds (${MAX_CONTAINER_TENSORS})`);
  if (json.length > MAX_CONTAINER_HEADER_BYTES) throw inputError('E_INPUT', `the container header would be ${json.length} bytes, above its ${mib(MAX_CONTAINER_HEADER_BYTES)} limit`);
  if (header.kept > 8 * payload.length) throw new PeftError('E_RUNTIME', `compressor ${header.method}: ${header.kept} kept values in ${payload.length} payload bytes (less than a bit each)`);
  const h = deflateRawSync(json, { level: 9 });
  if (h.length > 0xffffffff || payload.length > 0xffffffff) throw inputError('E_INPUT', 'the compressed update exceeds the container\'s 4 GiB section limit');
  const out = new Uint8Array(CONTAINER_PREFIX_BYTES + h.length + payload.length);
  const view = new DataView(out.buffer);
  out.set(Buffer.from(CONTAINER_MAGIC, 'latin1'), 0);
  view.setUint16(4, CONTAINER_VERSION, true);
  view.setUint16(6, 0, true);
  view.setUint32(8, h.length, true);
  view.setUint32(12, payload.length, true);
  out.set(h, CONTAINER_PREFIX_BYTES);
  out.set(payload, CONTAINER_PREFIX_BYTES + h.length);
  view.setUint32(16, crc32(out.subarray(CONTAINER_PREFIX_BYTES)), true);
  return out;
}

/** Whether `bytes` starts like a container (for inspect's routing; decodeContainer checks the rest). */
export function hasContainerMagic(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && Buffer.from(bytes.subarray(0, 4)).toString('latin1') === CONTAINER_MAGIC;
}

/** Header and payload of a container; anything inconsistent is E_FORMAT naming `file`. */
export function decodeContainer(bytes: Uint8Array, file: string): { header: ContainerHeader; payload: Uint8Array } {
  const bad = (what: string) => inputError('E_FORMAT', `not a valid compressed container: ${what}`, file);
  if (isLfsPointer(bytes)) throw lfsPointerError(file);
  if (!hasContainerMagic(bytes)) throw bad(`bad magic (expected "${CONTAINER_MAGIC}")`);
  if (bytes.length < CONTAINER_PREFIX_BYTES) throw bad(`truncated (${bytes.length} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint16(4, true);
  if (version !== CONTAINER_VERSION) throw bad(`version ${version} (this build reads ${CONTAINER_VERSION})`);
  if (view.getUint16(6, true) !== 0) throw bad(`unknown flags ${view.getUint16(6, true)}`);
  const h = view.getUint32(8, true);
  const p = view.getUint32(12, true);
  const want = CONTAINER_PREFIX_BYTES + h + p;
  if (bytes.length !== want) throw bad(`${bytes.length} bytes, the prefix announces ${want} (truncated or extended)`);
  if (crc32(bytes.subarray(CONTAINER_PREFIX_BYTES)) !== view.getUint32(16, true)) throw bad('checksum mismatch (the file is corrupted)');
  const header = checkHeader(inflateHeader(bytes.subarray(CONTAINER_PREFIX_BYTES, CONTAINER_PREFIX_BYTES + h), file, bad), bad);
  if (header.kept > 8 * p) throw bad(`the header says ${header.kept} values were kept, more than a ${p}-byte payload can code (one value per bit at most)`);
  return { header, payload: bytes.subarray(CONTAINER_PREFIX_BYTES + h) };
}

/** The header JSON, inflated to at most MAX_CONTAINER_HEADER_BYTES (a deflated 300 MB of spaces stops there). */
function inflateHeader(deflated: Uint8Array, file: string, bad: (w: string) => Error): unknown {
  let text: string;
  try {
    text = inflateRawSync(deflated, { maxOutputLength: MAX_CONTAINER_HEADER_BYTES }).toString('utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw bad(`the header inflates past the ${mib(MAX_CONTAINER_HEADER_BYTES)} limit`);
    throw bad('the header does not decode');
  }
  try {
    return parseJsonObject(text, file);
  } catch (e) {
    if ((e as PeftError).code === 'E_INPUT') throw e; // a reserved key (__proto__, ...) named as such
    throw bad('the header does not decode');
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function checkTensor(t: unknown, bad: (w: string) => Error): CompressTensor {
  if (!Array.isArray(t) || t.length !== 3) throw bad('a tensor entry is not [name, dtype, shape]');
  const [name, dtype, shape] = t as unknown[];
  if (typeof name !== 'string' || !isDtype(dtype) || !Array.isArray(shape) || !shape.every(isCount)) {
    throw bad(`tensor entry ${JSON.stringify(t).slice(0, 80)} is malformed`);
  }
  return { name, dtype, shape: shape as number[] };
}

function checkHeader(json: unknown, bad: (w: string) => Error): ContainerHeader {
  if (!isObject(json)) throw bad('the header is not a JSON object');
  const { method, options, kind, config, tensors, params, kept, codec } = json;
  if (typeof method !== 'string' || !isObject(options) || !isObject(config) || !isObject(codec)) throw bad('the header lacks method/options/config/codec');
  if (kind !== 'adapter' && kind !== 'model-delta') throw bad(`unknown kind ${JSON.stringify(kind)}`);
  if (!Array.isArray(tensors)) throw bad('the header has no tensor list');
  if (tensors.length > MAX_CONTAINER_TENSORS) throw bad(`the header lists ${tensors.length} tensors, above the limit of ${MAX_CONTAINER_TENSORS}`);
  const list = tensors.map((t) => checkTensor(t, bad));
  if (!isCount(params) || !isCount(kept) || kept > params) throw bad('params/kept are not counts with kept <= params');
  const total = list.reduce((s, t) => s + numel(t.shape), 0);
  if (total !== params) throw bad(`the tensors hold ${total} values, the header says params=${params}`);
  const names = list.map((t) => t.name);
  if (names.some((n, i) => i > 0 && !(names[i - 1] < n))) throw bad('tensor names are not sorted and unique');
  const floatKeys = Array.isArray(json.float_keys) ? json.float_keys.filter((k): k is string => typeof k === 'string') : undefined;
  return { method, options, kind, config, float_keys: floatKeys, tensors: list, params, kept, codec };
}
