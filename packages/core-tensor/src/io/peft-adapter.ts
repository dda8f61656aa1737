/**
 * Hugging Face PEFT adapter folders: `adapter_config.json` + `adapter_model.safetensors`, the
 * on-disk format every PEFT method shares (LoRA, DoRA, prompt learning, ...). Follows
 * `src/peft/config.py` (PeftConfigMixin.save_pretrained) and `src/peft/utils/save_and_load.py`
 * (get_peft_model_state_dict: key names as saved). Any method's folder reads the same way: the
 * tensors come back by their keys, and a method's key naming (peft-keys.ts) groups them.
 * Not here: what the tensors mean (the adapter methods), pickle `.bin` checkpoints (refused).
 */
import { promises as fsp } from 'node:fs';
import { join, posix, win32 } from 'node:path';
import { inputError, PeftError } from '../errors.js';
import { DTYPE_SIZES, type NamedRawTensor, type RawTensor } from '../dtype.js';
import { readJsonObject } from './json-file.js';
import { parsePeftKey, type AdapterKeys } from './peft-keys.js';
import { floatKeysOf, pyJsonDumps } from './py-json.js';
import { fsError, SafetensorsFile } from './safetensors-reader.js';
import { writeSafetensors } from './safetensors-writer.js';
import { withAtomicOutput, type Output } from './output-guard.js';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
/** PEFT writes `{"format": "pt"}` (safe_save_file(..., metadata={"format": "pt"}) in peft_model.py). */
export const ADAPTER_METADATA: Readonly<Record<string, string>> = Object.freeze({ format: 'pt' });
/** PEFT config fields typed `float` whose integral values Python prints as `0.0`. */
export const PEFT_FLOAT_KEYS: readonly string[] = ['lora_dropout', 'rank_dropout', 'module_dropout', 'vera_dropout', 'boft_dropout', 'fourierft_dropout'];

export interface PeftAdapter {
  /** The folder the files were read from (`<dir>/<adapterName>` for a non-default adapter). */
  dir: string;
  config: Record<string, unknown>;
  /** PEFT keys as on disk, e.g. `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`. */
  tensors: Map<string, RawTensor>;
  metadata: Record<string, string>;
  /** Config keys written as float literals in the file, so a rewrite keeps `16.0` as `16.0`. */
  floatKeys: Set<string>;
}

export interface ReadAdapterOptions {
  /** PEFT saves adapters other than "default" in `<dir>/<name>/` (PeftModel.save_pretrained). */
  adapterName?: string;
}

/** Folder of the named adapter: PEFT's `os.path.join(save_directory, adapter_name) if adapter_name != "default"`. */
function adapterDir(dir: string, adapterName?: string): string {
  if (adapterName === undefined || adapterName === 'default') return dir;
  if (!adapterName || /[\\/]|^\.\.?$/.test(adapterName)) throw inputError('E_INPUT', `invalid adapter name ${JSON.stringify(adapterName)}`);
  return join(dir, adapterName);
}

async function checkFolder(dir: string): Promise<void> {
  let st;
  try {
    st = await fsp.stat(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw inputError('E_NOT_FOUND', 'no such adapter folder', dir);
    throw fsError(e, dir, 'opening the adapter folder');
  }
  if (!st.isDirectory()) throw inputError('E_FORMAT', 'not a folder (a PEFT adapter is a folder with adapter_config.json)', dir);
}

/** Reads and checks adapter_config.json, then opens the weights (header only). The caller closes `file`. */
async function openAdapter(root: string, opts: ReadAdapterOptions): Promise<{ dir: string; config: Record<string, unknown>; floatKeys: Set<string>; file: SafetensorsFile }> {
  const dir = adapterDir(root, opts.adapterName);
  await checkFolder(dir);
  const cfgPath = join(dir, ADAPTER_CONFIG);
  const config = await readJsonObject(cfgPath, { notFound: 'missing (not a PEFT adapter folder)' });
  if (typeof config.peft_type !== 'string') throw inputError('E_FORMAT', 'has no string "peft_type" (not a PEFT adapter config)', cfgPath);
  const floatKeys = floatKeysOf(await fsp.readFile(cfgPath, 'utf8'));
  const wPath = join(dir, ADAPTER_WEIGHTS);
  let file: SafetensorsFile;
  try {
    file = await SafetensorsFile.open(wPath);
  } catch (e) {
    if (!(e instanceof PeftError) || e.code !== 'E_NOT_FOUND') throw e;
    const bin = (await fsp.readdir(dir)).filter((f) => f.endsWith('.bin')).sort();
    if (bin.length) throw inputError('E_FORMAT', `pickle checkpoints are not loaded; convert to safetensors (no ${ADAPTER_WEIGHTS} here)`, join(dir, bin[0]));
    throw inputError('E_NOT_FOUND', 'missing (the adapter has a config but no weights)', wPath);
  }
  return { dir, config, floatKeys, file };
}

/** Reads a PEFT adapter folder; every tensor is loaded (adapters are small). */
export async function readPeftAdapter(dir: string, opts: ReadAdapterOptions = {}): Promise<PeftAdapter> {
  const { dir: at, config, floatKeys, file } = await openAdapter(dir, opts);
  try {
    const tensors = new Map<string, RawTensor>();
    for (const t of file.tensors) tensors.set(t.name, { dtype: t.dtype, shape: [...t.shape], data: await file.read(t.name) });
    return { dir: at, config, tensors, metadata: { ...file.metadata }, floatKeys };
  } finally {
    await file.close();
  }
}

export interface WriteAdapterOptions {
  config: Record<string, unknown>;
  tensors: ReadonlyMap<string, RawTensor> | readonly NamedRawTensor[];
  /** Extra keys printed as floats (PEFT_FLOAT_KEYS always are); pass `PeftAdapter.floatKeys` when rewriting. */
  floatKeys?: Iterable<string>;
  /** Writing to a path: replace an existing folder (only one written by the same command: see output-marker.ts). */
  force?: boolean;
  /** Writing to a path: the command named in the folder's marker and lock (default "write-adapter"). */
  command?: string;
}

/** Last component of an absolute local path (POSIX or Windows); anything else unchanged. */
export function normaliseBaseModelPath(p: string): string {
  if (!posix.isAbsolute(p) && !win32.isAbsolute(p)) return p;
  return p.split(/[\\/]+/).filter(Boolean).pop() ?? p;
}

/** The config as written: PEFT's save forces inference_mode and we drop local absolute paths. */
export function peftConfigForSave(config: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...config, inference_mode: true }; // PeftModel.save_pretrained sets inference_mode = True
  // PEFT pitfall (REFERENCES.md): it stores `base_model_name_or_path` as given, so a local absolute path
  // (/home/me/models/llama) leaks the machine's layout and breaks loading elsewhere. Keep only the last component.
  if (typeof out.base_model_name_or_path === 'string') out.base_model_name_or_path = normaliseBaseModelPath(out.base_model_name_or_path);
  return out;
}

/**
 * Writes the adapter folder atomically with the files of writePeftAdapterFiles: at the path `out` (opened
 * here: lock, marker, --force rules of output-guard.ts), or into an Output a command opened before reading
 * its inputs.
 */
export async function writePeftAdapter(out: string | Output, opts: WriteAdapterOptions): Promise<void> {
  if (typeof opts.config?.peft_type !== 'string') throw inputError('E_INPUT', 'adapter config has no string "peft_type"', typeof out === 'string' ? out : out.shown);
  const fill = (tmp: string) => writePeftAdapterFiles(tmp, opts);
  const neededBytes = () => [...(opts.tensors instanceof Map ? opts.tensors.values() : opts.tensors)].reduce((n, t) => n + t.data.byteLength, 0);
  if (typeof out !== 'string') return out.write(fill, { neededBytes });
  await withAtomicOutput(out, { command: opts.command ?? 'write-adapter', force: opts.force }, fill, { neededBytes });
}

/**
 * Writes adapter_config.json (json.dumps(indent=2, sort_keys=True), no trailing newline, as config.py) and
 * the weights INTO the existing folder `dir`, leaving anything else there alone. Not atomic by itself:
 * callers pass a folder they rename into place (writePeftAdapter, the trainer's checkpoints).
 */
export async function writePeftAdapterFiles(dir: string, opts: Omit<WriteAdapterOptions, 'force' | 'command'>): Promise<void> {
  if (typeof opts.config?.peft_type !== 'string') throw inputError('E_INPUT', 'adapter config has no string "peft_type"', dir);
  const text = pyJsonDumps(peftConfigForSave(opts.config), { floatKeys: [...PEFT_FLOAT_KEYS, ...(opts.floatKeys ?? [])] }).slice(0, -1);
  const tensors: NamedRawTensor[] = opts.tensors instanceof Map
    ? [...opts.tensors].map(([name, t]) => ({ name, ...t }))
    : [...(opts.tensors as readonly NamedRawTensor[])];
  await writeSafetensors(join(dir, ADAPTER_WEIGHTS), tensors, { ...ADAPTER_METADATA });
  try {
    await fsp.writeFile(join(dir, ADAPTER_CONFIG), text);
  } catch (e) {
    throw fsError(e, join(dir, ADAPTER_CONFIG), 'writing');
  }
}

export interface PeftAdapterSummary {
  dir: string;
  peftType: string;
  taskType?: string;
  r?: number;
  loraAlpha?: number;
  /** Last components of the module paths the keys name (q_proj, v_proj, ...), sorted; [] without `keysFor`. */
  targetModules: string[];
  tensorCount: number;
  parameters: number;
  bytes: number;
}

export interface DescribeAdapterOptions extends ReadAdapterOptions {
  /** The key naming of the method owning `peftType` (its MethodDef.keys), to list the modules; none: no list. */
  keysFor?: (peftType: string) => AdapterKeys | undefined;
}

/** Summary for `peft inspect`; reads the config and the weights' header only. */
export async function describePeftAdapter(dir: string, opts: DescribeAdapterOptions = {}): Promise<PeftAdapterSummary> {
  const { dir: at, config, file } = await openAdapter(dir, opts);
  await file.close();
  const targets = new Set<string>();
  const keys = opts.keysFor?.(config.peft_type as string);
  let parameters = 0, bytes = 0;
  for (const t of file.tensors) {
    const k = keys && parsePeftKey(keys, t.name);
    if (k && k.module) targets.add(k.module.slice(k.module.lastIndexOf('.') + 1));
    parameters += t.byteLength / DTYPE_SIZES[t.dtype];
    bytes += t.byteLength;
  }
  const num = (v: unknown) => (typeof v === 'number' ? v : undefined);
  return {
    dir: at, peftType: config.peft_type as string, taskType: typeof config.task_type === 'string' ? config.task_type : undefined,
    r: num(config.r), loraAlpha: num(config.lora_alpha), targetModules: [...targets].sort(),
    tensorCount: file.tensors.length, parameters, bytes,
  };
}
