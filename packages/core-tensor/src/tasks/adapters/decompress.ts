/**
 * `peft compress --decompress` as a library call: a `.peftz` container (or the folder
 * compressAdapter wrote) back to what was compressed, atomically:
 * - an adapter container -> a PEFT folder (adapter_config.json + adapter_model.safetensors),
 *   tensors in f32 by default (exact: the decoded values are f32) or their original dtype;
 * - a model-delta container + `base` -> a model folder with W = base + decoded delta, in each
 *   tensor's original dtype by default, with the base's tokenizer / aux files.
 * A corrupted container fails (E_FORMAT, one line) before anything is written, and a hostile one before
 * anything is allocated: container.ts bounds the header, the tensor count and the kept values by the
 * payload's bits; here the dense values an adapter decodes to are bounded by `maxElements`
 * (DEFAULT_MAX_DECODED_ELEMENTS, `--max-elements`), a model delta's by its base (shapes checked first).
 * Also `describeCompressed`, what `peft inspect` shows for a container.
 * Not here: the payload's decoding (the compressor named in the header).
 */
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { getBackend, fromF32, toF32 } from '../../backend/index.js';
import { numel, type Dtype, type NamedRawTensor } from '../../dtype.js';
import { inputError, PeftError } from '../../errors.js';
import { checkFinite, checkFiniteRaw } from '../../finite.js';
import { copyAuxFiles } from '../../io/atomic.js';
import { checkConfigTensors } from '../../io/hf-config.js';
import { openModelFolder, type ModelFolder } from '../../io/model-folder.js';
import { withOutput, type Output } from '../../io/output-guard.js';
import { writePeftAdapter } from '../../io/peft-adapter.js';
import { pyJsonDumps } from '../../io/py-json.js';
import { openRegularFile, readRegularFile } from '../../io/regular-file.js';
import { ShardedWriter } from '../../io/sharded-writer.js';
import type { Registry } from '../../plugin/registry.js';
import { decodeContainer, hasContainerMagic, type ContainerHeader } from './container.js';
import { COMPRESSED_FILE } from './compress.js';

export interface DecompressOptions {
  /** A `.peftz` file, or a folder holding `compressed.peftz`. */
  input: string;
  out: string;
  /** Required for a model-delta container: the base model the delta was taken against. */
  base?: string;
  /** Output dtype: 'f32', or 'original' (each tensor's dtype before compression). Default: f32 for adapters, original for model deltas. */
  dtype?: 'f32' | 'original';
  force?: boolean;
  /** Refuse an adapter container that decodes to more values than this (default DEFAULT_MAX_DECODED_ELEMENTS). */
  maxElements?: number;
}

/** 2^28 values (1 GiB as f32): an all-linear rank-64 LoRA of a 7B model is 160 M; `--max-elements` raises it. */
export const DEFAULT_MAX_DECODED_ELEMENTS = 2 ** 28;
/** Values one typed array holds in Node 20 (V8's limit): a single tensor beyond it cannot be decoded. */
const MAX_ARRAY_ELEMENTS = 2 ** 32;

export interface DecompressReport {
  kind: ContainerHeader['kind'];
  method: string;
  tensors: number;
  params: number;
  kept: number;
  out: string;
}

/** The container file of `input` (a file, or a folder holding compressed.peftz). */
export async function containerPath(input: string): Promise<string> {
  const st = await stat(input).catch(() => {
    throw inputError('E_NOT_FOUND', 'no such file or folder', input);
  });
  return st.isDirectory() ? join(input, COMPRESSED_FILE) : input;
}

async function readContainer(input: string) {
  const file = await containerPath(input);
  const bytes = await readRegularFile(file).catch((e) => {
    if ((e as PeftError).code === 'E_NOT_FOUND') throw inputError('E_NOT_FOUND', `no ${COMPRESSED_FILE} here (not a compressed output)`, input);
    throw e;
  });
  return { file, ...decodeContainer(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), file) };
}

/** An adapter container's dense size against the limit, before the compressor allocates it. */
function checkDecodedSize(header: ContainerHeader, file: string, maxElements: number): void {
  if (header.params > maxElements) {
    throw inputError('E_INPUT', `decodes to ${header.params} values, above the limit of ${maxElements} (--max-elements raises it)`, file);
  }
}

/** The decoded updates, checked against the header (one f32 array per tensor, in header order). */
function decodeUpdates(header: ContainerHeader, payload: Uint8Array, file: string, registry: Registry): Float32Array[] {
  const big = header.tensors.find((t) => numel(t.shape) > MAX_ARRAY_ELEMENTS);
  if (big) throw inputError('E_INPUT', `tensor ${big.name} has ${numel(big.shape)} values, more than one array holds (${MAX_ARRAY_ELEMENTS})`, file);
  const compressor = registry.get('compressor', header.method);
  let updates: Float32Array[];
  try {
    updates = compressor.decompress(header.tensors, header.codec, payload);
  } catch (e) {
    if (e instanceof Error && 'code' in e) e.message = `${file}: ${e.message}`;
    throw e;
  }
  const bad = (w: string) => inputError('E_FORMAT', `not a valid compressed container: ${w}`, file);
  if (updates.length !== header.tensors.length) throw bad(`${updates.length} tensors decoded, the header lists ${header.tensors.length}`);
  let nonzero = 0;
  for (const [i, u] of updates.entries()) {
    if (u.length !== numel(header.tensors[i].shape)) throw bad(`tensor ${header.tensors[i].name} decoded to ${u.length} values`);
    checkFinite(u, { what: `tensor ${header.tensors[i].name} (decoded)`, where: file });
    for (let j = 0; j < u.length; j++) if (u[j] !== 0) nonzero++;
  }
  if (nonzero > header.kept) throw bad(`${nonzero} nonzero values decoded, the header says ${header.kept} were kept`);
  return updates;
}

function encodeAs(values: Float32Array, dtype: Dtype, mode: 'f32' | 'original'): { dtype: Dtype; data: Uint8Array } {
  const d: Dtype = mode === 'original' && (dtype === 'F16' || dtype === 'BF16') ? dtype : 'F32';
  return { dtype: d, data: fromF32(getBackend(), values, d) };
}

export async function decompressAdapter(opts: DecompressOptions, registry: Registry): Promise<DecompressReport> {
  const spec = { command: 'compress --decompress', out: opts.out, inputs: [opts.input, opts.base], force: opts.force };
  return withOutput(spec, (output) => decompressInto(output, opts, registry));
}

async function decompressInto(output: Output, opts: DecompressOptions, registry: Registry): Promise<DecompressReport> {
  const { file, header, payload } = await readContainer(opts.input);
  const report = { kind: header.kind, method: header.method, tensors: header.tensors.length, params: header.params, kept: header.kept, out: opts.out };
  if (header.kind === 'adapter') {
    if (opts.base) throw inputError('E_INPUT', 'holds an adapter (an update against 0): --base does not apply', file);
    checkDecodedSize(header, file, opts.maxElements ?? DEFAULT_MAX_DECODED_ELEMENTS);
    const updates = decodeUpdates(header, payload, file, registry);
    const mode = opts.dtype ?? 'f32';
    const tensors: NamedRawTensor[] = header.tensors.map((t, i) => ({ name: t.name, shape: t.shape, ...encodeAs(updates[i], t.dtype, mode) }));
    await writePeftAdapter(output, { config: header.config, tensors, floatKeys: header.float_keys });
    return report;
  }
  if (!opts.base) throw inputError('E_INPUT', 'holds a full-model delta: pass the base model it was taken against (--base)', file);
  const base = await openModelFolder(opts.base);
  try {
    checkAgainstBase(header, base, file);
    await writeModelDelta(output, header, decodeUpdates(header, payload, file, registry), base, opts);
  } finally {
    await base.close();
  }
  return report;
}

/**
 * A model delta must have the base's tensors and shapes, and its config (which the output gets) must
 * describe them: checked before decoding, so the base bounds what is allocated.
 */
function checkAgainstBase(header: ContainerHeader, base: ModelFolder, file: string): void {
  const index = new Set(header.tensors.map((t) => t.name));
  for (const name of base.tensorNames) if (!index.has(name)) throw inputError('E_INPUT', `tensor ${name} is not in the compressed delta`, base.dir);
  for (const t of header.tensors) {
    if (!base.has(t.name)) throw inputError('E_INPUT', `tensor ${t.name} of the compressed delta is missing from the base`, base.dir);
    if (base.info(t.name).shape.join() !== t.shape.join()) throw inputError('E_SHAPE', `tensor ${t.name} is [${base.info(t.name).shape}] here, [${t.shape}] in the delta`, base.dir);
  }
  checkConfigTensors(header.config, base, `${file} (its config.json)`);
}

/** base + delta for every tensor, in the base's tensor order, into a model folder. */
async function writeModelDelta(output: Output, header: ContainerHeader, updates: Float32Array[], base: ModelFolder, opts: DecompressOptions): Promise<void> {
  const index = new Map(header.tensors.map((t, i) => [t.name, i]));
  const neededBytes = () => 2 * header.tensors.reduce((n, t) => n + numel(t.shape) * (t.dtype === 'F32' || opts.dtype === 'f32' ? 4 : 2), 0);
  await output.write(async (tmp) => {
    const writer = new ShardedWriter(tmp);
    try {
      for (const name of base.tensorNames) {
        const i = index.get(name)!;
        const raw = await base.read(name);
        checkFiniteRaw(raw, { what: `tensor ${name}`, where: join(base.dir, base.info(name).file) });
        const w = Float32Array.from(toF32(getBackend(), { ...raw, name } as NamedRawTensor));
        for (let j = 0; j < w.length; j++) w[j] += updates[i][j];
        const t = { name, shape: header.tensors[i].shape, ...encodeAs(w, header.tensors[i].dtype, opts.dtype ?? 'original') };
        checkFiniteRaw(t, { what: `the output tensor ${name}`, code: 'E_INPUT', hint: `base + delta overflows ${t.dtype}` });
        await writer.add(t);
      }
      await writer.finish();
    } catch (e) {
      await writer.abort();
      throw e;
    }
    await writeFile(join(tmp, 'config.json'), pyJsonDumps(header.config, { floatKeys: header.float_keys }));
    await copyAuxFiles(base, tmp);
  }, { neededBytes });
}

export interface CompressedSummary {
  method: string;
  options: Record<string, unknown>;
  kind: ContainerHeader['kind'];
  peftType?: string;
  tensors: number;
  params: number;
  kept: number;
  density: number;
  bytes: number;
  /** 2 × params (the fp16 size) / bytes */
  ratioVsFp16: number;
  bitsPerParam: number;
}

/** Reads 4 bytes only: inspect calls this on multi-GB safetensors files too. A FIFO or device is refused, not read. */
async function startsWithMagic(file: string): Promise<boolean> {
  const fh = await openRegularFile(file).then((r) => r.fh, (e: PeftError) => {
    if (e.code === 'E_NOT_FOUND') return undefined;
    throw e;
  });
  if (!fh) return false;
  try {
    const head = new Uint8Array(4);
    const { bytesRead } = await fh.read(head, 0, 4, 0);
    return bytesRead === 4 && hasContainerMagic(head);
  } catch {
    return false;
  } finally {
    await fh.close();
  }
}

/** What a container holds, or undefined when `path` is not one (no magic). Bad containers are E_FORMAT. */
export async function describeCompressed(path: string): Promise<CompressedSummary | undefined> {
  const file = await containerPath(path);
  if (!(await startsWithMagic(file))) return undefined;
  const bytes = await readRegularFile(file);
  const { header } = decodeContainer(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), file);
  return {
    method: header.method, options: header.options, kind: header.kind,
    peftType: typeof header.config.peft_type === 'string' ? header.config.peft_type : undefined,
    tensors: header.tensors.length, params: header.params, kept: header.kept, density: header.kept / header.params,
    bytes: bytes.length, ratioVsFp16: (2 * header.params) / bytes.length, bitsPerParam: (8 * bytes.length) / header.params,
  };
}
