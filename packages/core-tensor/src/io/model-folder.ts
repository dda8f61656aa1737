/**
 * A Hugging Face model folder opened for reading: config.json plus weights in
 * `model.safetensors`, or shards listed by `model.safetensors.index.json`, or (no index)
 * whatever `*.safetensors` files are there. Weight lookup prefers them in that order, like
 * transformers. Every shard header is read and cross-checked at open, so a broken folder fails
 * before any work; tensor bytes are read lazily.
 * Files a model carries besides weights (tokenizer, generation config, chat template, ...) are
 * listed in `auxFiles` so writers can copy them.
 * config.json is checked against the tensors at open (hf-config.ts checkConfigTensors), so every command
 * that reads a model refuses one whose config claims layers or shapes its weights do not have.
 * Not here: pickle checkpoints (*.bin, *.pt), which are never read; the shape rules (hf-config.ts).
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { inputError, PeftError } from '../errors.js';
import type { Dtype, RawTensor } from '../dtype.js';
import { checkConfigTensors, readHfConfig, type HfConfig } from './hf-config.js';
import { readJsonObject } from './json-file.js';
import { fsError, SafetensorsFile, type TensorInfo } from './safetensors-reader.js';

export const SINGLE_WEIGHTS = 'model.safetensors';
export const WEIGHTS_INDEX = 'model.safetensors.index.json';

/** Non-weight files worth carrying to an output model folder. */
const AUX_PATTERNS: RegExp[] = [
  /^tokenizer(_config)?\.json$/, /^tokenizer\.model$/, /^special_tokens_map\.json$/, /^added_tokens\.json$/,
  /^generation_config\.json$/, /^chat_template\.(jinja|json)$/, /^vocab\.(json|txt)$/, /^merges\.txt$/,
  /\.tiktoken$/, /^spiece\.model$/, /^sentencepiece\.bpe\.model$/, /^preprocessor_config\.json$/,
];

export function isAuxFile(name: string): boolean {
  return AUX_PATTERNS.some((p) => p.test(name));
}

export interface ModelTensorInfo {
  dtype: Dtype;
  shape: number[];
  byteLength: number;
  /** Weight file (name relative to the folder) holding the tensor. */
  file: string;
}

async function listDir(dir: string): Promise<string[]> {
  try {
    const st = await fsp.stat(dir);
    if (!st.isDirectory()) throw inputError('E_FORMAT', 'not a folder', dir);
    return (await fsp.readdir(dir)).sort();
  } catch (e) {
    throw e instanceof PeftError ? e : fsError(e, dir, 'listing');
  }
}

/** The weight files to open, and for an index the name -> file map it declares. */
async function locateWeights(dir: string, entries: string[]): Promise<{ files: string[]; weightMap?: Map<string, string> }> {
  if (entries.includes(SINGLE_WEIGHTS)) return { files: [SINGLE_WEIGHTS] };
  if (entries.includes(WEIGHTS_INDEX)) return readIndex(dir, entries);
  const files = entries.filter((f) => f.endsWith('.safetensors') && !f.startsWith('.'));
  if (files.length === 0) throw inputError('E_FORMAT', 'not a model folder (no config.json / no *.safetensors)', dir);
  return { files };
}

async function readIndex(dir: string, entries: string[]): Promise<{ files: string[]; weightMap: Map<string, string> }> {
  const path = join(dir, WEIGHTS_INDEX);
  const wm = (await readJsonObject(path)).weight_map;
  if (wm === null || typeof wm !== 'object' || Array.isArray(wm)) throw inputError('E_FORMAT', 'weight_map is missing or not an object', path);
  const weightMap = new Map<string, string>();
  for (const [name, file] of Object.entries(wm)) {
    // A shard must be a plain file name in this folder: no "../" escapes.
    if (typeof file !== 'string' || !/^[^/\\]+\.safetensors$/.test(file) || file.startsWith('.'))
      throw inputError('E_FORMAT', `weight_map[${JSON.stringify(name)}] is ${JSON.stringify(file)}, not a .safetensors file name`, path);
    if (!entries.includes(file)) throw inputError('E_FORMAT', `shard ${file} (holding ${name}) is missing`, path);
    weightMap.set(name, file);
  }
  return { files: [...new Set(weightMap.values())].sort(), weightMap };
}

export class ModelFolder {
  readonly dir: string;
  /** config.json as parsed (the raw object). */
  readonly config: HfConfig;
  /** Weight file names, in the order their tensors are listed. */
  readonly weightFiles: string[];
  /** Tensor names: files in order, each file's tensors in data order. */
  readonly tensorNames: string[];
  /** Non-weight files to copy (names relative to dir). */
  readonly auxFiles: string[];
  readonly totalBytes: number;
  readonly #files: Map<string, SafetensorsFile>;
  readonly #where: Map<string, { file: SafetensorsFile; info: TensorInfo; name: string }>;

  private constructor(dir: string, config: HfConfig, files: Map<string, SafetensorsFile>, placed: Placed[], aux: string[]) {
    this.dir = dir;
    this.config = config;
    this.#files = files;
    this.weightFiles = [...files.keys()];
    this.#where = new Map();
    for (const [name, fname] of placed) {
      const file = files.get(fname)!;
      this.#where.set(name, { file, info: file.get(name)!, name: fname });
    }
    this.tensorNames = placed.map(([name]) => name);
    this.auxFiles = aux;
    this.totalBytes = placed.reduce((a, [n]) => a + this.#where.get(n)!.info.byteLength, 0);
  }

  static async open(dir: string): Promise<ModelFolder> {
    const entries = await listDir(dir);
    if (!entries.includes('config.json')) throw inputError('E_FORMAT', 'not a model folder (no config.json / no *.safetensors)', dir);
    const config = await readHfConfig(dir);
    const { files, weightMap } = await locateWeights(dir, entries);
    const opened = new Map<string, SafetensorsFile>();
    try {
      for (const f of files) opened.set(f, await SafetensorsFile.open(join(dir, f)));
      const placed = placeTensors(dir, opened, weightMap);
      const folder = new ModelFolder(dir, config, opened, placed, entries.filter(isAuxFile));
      // Before any work: a config.json claiming 10^7 layers (or other shapes) for these weights is refused here.
      checkConfigTensors(config, folder, join(dir, 'config.json'));
      return folder;
    } catch (e) {
      await Promise.all([...opened.values()].map((f) => f.close().catch(() => {})));
      throw e;
    }
  }

  has(name: string): boolean {
    return this.#where.has(name);
  }

  #lookup(name: string) {
    const w = this.#where.get(name);
    if (!w) throw inputError('E_NOT_FOUND', `no tensor named ${JSON.stringify(name)}`, this.dir);
    return w;
  }

  info(name: string): ModelTensorInfo {
    const { info, name: file } = this.#lookup(name);
    return { dtype: info.dtype, shape: [...info.shape], byteLength: info.byteLength, file };
  }

  async read(name: string): Promise<RawTensor> {
    const { file, info } = this.#lookup(name);
    return { dtype: info.dtype, shape: [...info.shape], data: await file.read(name) };
  }

  /** The opened file holding `name` (for readInto into caller-owned memory). */
  fileOf(name: string): SafetensorsFile {
    return this.#lookup(name).file;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#files.values()].map((f) => f.close()));
  }
}

/** [tensor name, weight file name] */
type Placed = [string, string];

/** With an index: its names, each checked to be in its shard. Without: every tensor, no duplicates across files. */
function placeTensors(dir: string, files: Map<string, SafetensorsFile>, weightMap?: Map<string, string>): Placed[] {
  const placed: Placed[] = [];
  if (weightMap) {
    for (const [name, fname] of weightMap) {
      if (!files.get(fname)!.has(name)) throw inputError('E_FORMAT', `${WEIGHTS_INDEX} maps ${name} to ${fname}, which does not hold it`, dir);
    }
    for (const [fname, f] of files) {
      for (const t of f.tensors) if (weightMap.get(t.name) === fname) placed.push([t.name, fname]);
    }
    return placed;
  }
  const seen = new Map<string, string>();
  for (const [fname, f] of files) {
    for (const t of f.tensors) {
      const other = seen.get(t.name);
      if (other) throw inputError('E_FORMAT', `tensor ${t.name} is in both ${other} and ${fname}`, dir);
      seen.set(t.name, fname);
      placed.push([t.name, fname]);
    }
  }
  return placed;
}

export function openModelFolder(dir: string): Promise<ModelFolder> {
  return ModelFolder.open(dir);
}

/** Cheap test (no parsing): config.json and some safetensors weights are present. */
export async function isModelFolder(dir: string): Promise<boolean> {
  let entries: string[];
  try {
    entries = await fsp.readdir(dir);
  } catch {
    return false;
  }
  return entries.includes('config.json') && entries.some((f) => f.endsWith('.safetensors') || f === WEIGHTS_INDEX);
}
