/**
 * `peft compress --decompress` as a library call: a `.peftz` container (or the folder
 * compressAdapter wrote) back to what was compressed, atomically:
 * - an adapter container -> a PEFT folder (adapter_config.json + adapter_model.safetensors),
 *   tensors in f32 by default (exact: the decoded values are f32) or their original dtype;
 * - a model-delta container + `base` -> a model folder with W = base + decoded delta, in each
 *   tensor's original dtype by default, with the base's tokenizer / aux files.
 * A corrupted container fails (E_FORMAT, one line) before anything is written.
 * Also `describeCompressed`, what `peft inspect` shows for a container.
 * Not here: the payload's decoding (the compressor named in the header).
 */
import { open, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { getBackend, fromF32, toF32 } from '../../backend/index.js';
import { numel, type Dtype, type NamedRawTensor } from '../../dtype.js';
import { inputError } from '../../errors.js';
import { copyAuxFiles } from '../../io/atomic.js';
import { openModelFolder } from '../../io/model-folder.js';
import { writePeftAdapter } from '../../io/peft-adapter.js';
import { withOutput, type Output } from '../../io/output-guard.js';
import { pyJsonDumps } from '../../io/py-json.js';
import { fsError } from '../../io/safetensors-reader.js';
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
}

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
  const bytes = await readFile(file).catch((e) => {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw inputError('E_NOT_FOUND', `no ${COMPRESSED_FILE} here (not a compressed output)`, input);
    throw fsError(e, file, 'reading');
  });
  return { file, ...decodeContainer(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), file) };
}

/** The decoded updates, checked against the header (one f32 array per tensor, in header order). */
function decodeUpdates(header: ContainerHeader, payload: Uint8Array, file: string, registry: Registry): Float32Array[] {
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
  const updates = decodeUpdates(header, payload, file, registry);
  const report = { kind: header.kind, method: header.method, tensors: updates.length, params: header.params, kept: header.kept, out: opts.out };
  if (header.kind === 'adapter') {
    if (opts.base) throw inputError('E_INPUT', 'holds an adapter (an update against 0): --base does not apply', file);
    const mode = opts.dtype ?? 'f32';
    const tensors: NamedRawTensor[] = header.tensors.map((t, i) => ({ name: t.name, shape: t.shape, ...encodeAs(updates[i], t.dtype, mode) }));
    await writePeftAdapter(output, { config: header.config, tensors, floatKeys: header.float_keys });
    return report;
  }
  if (!opts.base) throw inputError('E_INPUT', 'holds a full-model delta: pass the base model it was taken against (--base)', file);
  await writeModelDelta(output, header, updates, opts.base, opts);
  return report;
}

/** base + delta for every tensor, in the base's tensor order, into a model folder. */
async function writeModelDelta(output: Output, header: ContainerHeader, updates: Float32Array[], baseDir: string, opts: DecompressOptions): Promise<void> {
  const base = await openModelFolder(baseDir);
  try {
    const index = new Map(header.tensors.map((t, i) => [t.name, i]));
    for (const name of base.tensorNames) if (!index.has(name)) throw inputError('E_INPUT', `tensor ${name} is not in the compressed delta`, baseDir);
    for (const t of header.tensors) {
      if (!base.has(t.name)) throw inputError('E_INPUT', `tensor ${t.name} of the compressed delta is missing from the base`, baseDir);
      if (base.info(t.name).shape.join() !== t.shape.join()) throw inputError('E_SHAPE', `tensor ${t.name} is [${base.info(t.name).shape}] here, [${t.shape}] in the delta`, baseDir);
    }
    const neededBytes = () => 2 * header.tensors.reduce((n, t) => n + numel(t.shape) * (t.dtype === 'F32' || opts.dtype === 'f32' ? 4 : 2), 0);
    await output.write(async (tmp) => {
      const writer = new ShardedWriter(tmp);
      try {
        for (const name of base.tensorNames) {
          const i = index.get(name)!;
          const w = Float32Array.from(toF32(getBackend(), { ...(await base.read(name)), name } as NamedRawTensor));
          for (let j = 0; j < w.length; j++) w[j] += updates[i][j];
          await writer.add({ name, shape: header.tensors[i].shape, ...encodeAs(w, header.tensors[i].dtype, opts.dtype ?? 'original') });
        }
        await writer.finish();
      } catch (e) {
        await writer.abort();
        throw e;
      }
      await writeFile(join(tmp, 'config.json'), pyJsonDumps(header.config, { floatKeys: header.float_keys }));
      await copyAuxFiles(base, tmp);
    }, { neededBytes });
  } finally {
    await base.close();
  }
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

/** Reads 4 bytes only: inspect calls this on multi-GB safetensors files too. */
async function startsWithMagic(file: string): Promise<boolean> {
  const fh = await open(file, 'r').catch(() => undefined);
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
  const bytes = await readFile(file);
  const { header } = decodeContainer(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), file);
  return {
    method: header.method, options: header.options, kind: header.kind,
    peftType: typeof header.config.peft_type === 'string' ? header.config.peft_type : undefined,
    tensors: header.tensors.length, params: header.params, kept: header.kept, density: header.kept / header.params,
    bytes: bytes.length, ratioVsFp16: (2 * header.params) / bytes.length, bitsPerParam: (8 * bytes.length) / header.params,
  };
}
