/**
 * VarBuilder: a prefix-scoped weight source, as candle-nn's VarBuilder. Model code asks for
 * `vb.pp('model').pp('layers.0').get('input_layernorm.weight', [C])` and never sees files; the same
 * `load` code reads a Hugging Face folder, wraps tensors already in memory, or creates fresh
 * trainable ones (candle's VarMap). Every tensor comes with the shape the caller expects, and a
 * mismatch names the key and the file.
 *
 * Three sources:
 * - folder: F32 / F16 / BF16 safetensors (BF16 Linear weights stay frozen bf16 bits unless asked to
 *   widen), and quantized folders: the quantizer named by quantization_config (FolderOptions.quantizers,
 *   quant/format.ts) says which tensors make up a module and keeps them frozen in its form:
 *   bitsandbytes 4-bit weights stay PACKED (quant/bnb-frozen.ts) and int8 weights keep their CB / SCB
 *   rows; a plugin's stay as it stored them, dequantized per product (quant/packed.ts).
 * - tensors: a name -> Tensor map (tests, adapters, weights built in code).
 * - init: creates every requested tensor from its init hint (trainable), recording it in a map.
 * What comes from a folder never requires grad: base weights are frozen, and checked finite as they
 * load (the f32 values, bf16 bits, 4-bit absmax, int8 row scales or a plugin's dequantized values;
 * exit 2 naming the tensor).
 * Not here: module construction (models/), quantizing (quant/), writing checkpoints.
 */
import { asU16, type Dtype, type RawTensor } from '../dtype.js';
import { inputError, PeftError } from '../errors.js';
import { checkFinite, checkFiniteRaw } from '../finite.js';
import { join } from 'node:path';
import { getBackend, toF32 } from '../backend/index.js';
import type { Backend } from '../backend/types.js';
import { builtinQuantizers } from '../quant/builtin-formats.js';
import { storedLayout, type FrozenContext, type QuantFormat, type QuantizerLookup, type StoredLayout } from '../quant/format.js';
import { checkDequantized, packedFromDequantize } from '../quant/packed.js';
import { hashString } from '../random/rng.js';
import { frozenTensor, full, randn, tensor, uniform, zeros } from '../tensor/create.js';
import { keep } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ModelFolder } from './model-folder.js';

/** How an init source fills a tensor; HF's _init_weights uses N(0, initializer_range) for Linear / Embedding. */
export type Init = 'zeros' | 'ones' | { normal: number } | { uniform: number };
export const DEFAULT_INIT: Init = { normal: 0.02 };

/** What a VarBuilder reads from (full keys). */
export interface WeightSource {
  /** Names the source in messages (a folder path, "tensor map", ...). */
  readonly where: string;
  has(key: string): boolean;
  /** A float tensor (f32), whatever float dtype it is stored in. */
  getFloat(key: string, shape: readonly number[], init: Init): Promise<Tensor>;
  /** A Linear weight [out, in]: frozen kinds (bf16, nf4, fp4, int8, a plugin's packed form) stay as stored. */
  getWeight(key: string, shape: readonly number[], init: Init): Promise<Tensor>;
}

const text = (s: readonly number[]): string => `[${s.join(', ')}]`;
const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((v, i) => v === b[i]);

export class VarBuilder {
  private constructor(readonly source: WeightSource, readonly prefix: string) {}

  /** Weights of an open model folder (the caller closes it). `widenBf16` turns BF16 Linear weights into f32. */
  static fromFolder(folder: ModelFolder, opts: FolderOptions = {}): VarBuilder {
    return new VarBuilder(new FolderSource(folder, opts), '');
  }

  /** Tensors already in memory, by full key (not copied; shapes are still checked). */
  static fromTensors(tensors: ReadonlyMap<string, Tensor> | Record<string, Tensor>): VarBuilder {
    const map = tensors instanceof Map ? tensors : new Map(Object.entries(tensors));
    return new VarBuilder(new MapSource(map as ReadonlyMap<string, Tensor>), '');
  }

  /** Fresh trainable tensors, seeded per key; each is also stored in `vars` under its full key (candle's VarMap). */
  static init(vars: Map<string, Tensor> = new Map(), seed = 0): VarBuilder {
    return new VarBuilder(new InitSource(vars, seed), '');
  }

  /** A builder whose keys start with `name.` under this one's prefix. */
  pp(name: string | number): VarBuilder {
    return new VarBuilder(this.source, this.key(String(name)));
  }

  /** The full key of `name` under this prefix. */
  key(name: string): string {
    return this.prefix === '' ? name : `${this.prefix}.${name}`;
  }

  contains(name: string): boolean {
    return this.source.has(this.key(name));
  }

  /** An f32 tensor of exactly `shape` (norm weights, embeddings, biases). */
  get(name: string, shape: readonly number[], init: Init = DEFAULT_INIT): Promise<Tensor> {
    return this.source.getFloat(this.key(name), shape, init);
  }

  /** A Linear weight [out, in], frozen-packed when stored so (bf16, nf4, fp4, int8, a plugin's packed form). */
  getWeight(name: string, shape: readonly number[], init: Init = DEFAULT_INIT): Promise<Tensor> {
    return this.source.getWeight(this.key(name), shape, init);
  }
}

// ---- folder ---------------------------------------------------------------------------------------------

export interface FolderOptions {
  /** Widen BF16 Linear weights to f32 (default false: they stay bf16 bits, half the memory). */
  widenBf16?: boolean;
  /** Conversions and double-quant decoding (default getBackend()). */
  backend?: Backend;
  /**
   * Finds the quantizer of a quantized folder from its quantization_config: a Registry (tasks pass
   * theirs, so plugin quantizers load); default builtinQuantizers (bitsandbytes nf4 / fp4 / int8).
   */
  quantizers?: QuantizerLookup;
}

const FLOAT_DTYPES: readonly Dtype[] = ['F32', 'F16', 'BF16'];

class FolderSource implements WeightSource {
  readonly where: string;
  readonly #backend: Backend;
  /** The quantizer of the folder's quantization_config (undefined: not quantized). */
  readonly #format: QuantFormat | undefined;

  constructor(readonly folder: ModelFolder, readonly opts: FolderOptions) {
    this.where = folder.dir;
    this.#backend = opts.backend ?? getBackend();
    const qc = (folder.config as Record<string, unknown>).quantization_config;
    const lookup = opts.quantizers ?? builtinQuantizers;
    this.#format = qc === undefined || qc === null ? undefined : lookup.quantizerFor(qc, join(folder.dir, 'config.json'));
  }

  has(key: string): boolean {
    return this.folder.has(key);
  }

  /** "<dir>/<file>" holding key, for messages. */
  #file(key: string): string {
    return `${this.folder.dir}/${this.folder.info(key).file}`;
  }

  #need(key: string): void {
    if (!this.folder.has(key)) throw inputError('E_NOT_FOUND', `missing tensor ${key}`, this.folder.dir);
  }

  #checkShape(key: string, got: readonly number[], want: readonly number[]): void {
    if (!sameShape(got, want)) throw inputError('E_SHAPE', `tensor ${key} has shape ${text(got)}, the model expects ${text(want)}`, this.#file(key));
  }

  async #read(key: string): Promise<RawTensor> {
    return this.folder.read(key);
  }

  async getFloat(key: string, shape: readonly number[]): Promise<Tensor> {
    this.#need(key);
    const info = this.folder.info(key);
    if (!FLOAT_DTYPES.includes(info.dtype)) {
      throw inputError('E_FORMAT', `tensor ${key} is ${info.dtype}, expected F32, F16 or BF16`, this.#file(key));
    }
    this.#checkShape(key, info.shape, shape);
    const values = toF32(this.#backend, { ...(await this.#read(key)), name: key } as RawTensor);
    checkFinite(values, { what: `tensor ${key}`, where: this.#file(key) });
    return keep(tensor(values, shape));
  }

  async getWeight(key: string, shape: readonly number[]): Promise<Tensor> {
    const module = key.endsWith('.weight') ? key.slice(0, -'.weight'.length) : key;
    const layout = this.#format ? await storedLayout(this.#format, module, this.folder) : undefined;
    if (layout) return this.#quantized(this.#format!, key, module, layout, shape);
    this.#need(key);
    const info = this.folder.info(key);
    if (info.dtype === 'BF16' && !this.opts.widenBf16) {
      this.#checkShape(key, info.shape, shape);
      const raw = await this.#read(key);
      checkFiniteRaw(raw, { what: `tensor ${key}`, where: this.#file(key) });
      return keep(frozenTensor({ kind: 'bf16', bits: asU16(raw.data) }, shape));
    }
    return this.getFloat(key, shape);
  }

  /**
   * A module stored by the folder's quantizer: its stored tensors read, and kept as the format's
   * frozen form (bitsandbytes: the kernels' packed layouts; a plugin's: its own, or the stored
   * tensors with dequantize per product, quant/packed.ts), checked before use.
   */
  async #quantized(f: QuantFormat, key: string, module: string, layout: StoredLayout, shape: readonly number[]): Promise<Tensor> {
    if (layout.shape && !sameShape(layout.shape, shape)) {
      throw inputError('E_SHAPE', `tensor ${key} (${f.name}) has shape ${text(layout.shape)}, the model expects ${text(shape)}`, this.#where(key));
    }
    const stored = new Map<string, RawTensor>();
    for (const p of layout.parts) stored.set(p, await this.#read(p));
    const get = (n: string) => stored.get(n);
    const ctx: FrozenContext = { backend: this.#backend, where: (n) => this.#where(n) };
    const data = f.frozen ? f.frozen(module, get, shape, ctx) : packedFromDequantize(f, module, get, ctx);
    if (data.kind === 'packed') checkDequantized(f, module, get, shape, ctx);
    return keep(frozenTensor(data, shape));
  }

  /** The file holding `name`, or the folder for a missing one. */
  #where(name: string): string {
    return this.folder.has(name) ? this.#file(name) : this.folder.dir;
  }
}

// ---- tensors in memory ----------------------------------------------------------------------------------

class MapSource implements WeightSource {
  readonly where = 'tensor map';
  constructor(readonly tensors: ReadonlyMap<string, Tensor>) {}

  has(key: string): boolean {
    return this.tensors.has(key);
  }

  async getWeight(key: string, shape: readonly number[]): Promise<Tensor> {
    const t = this.tensors.get(key);
    if (!t) throw new PeftError('E_NOT_FOUND', `missing tensor ${key} in the tensor map`);
    if (!sameShape(t.shape, shape)) throw new PeftError('E_SHAPE', `tensor ${key} has shape ${text(t.shape)}, the model expects ${text(shape)}`);
    return t;
  }

  async getFloat(key: string, shape: readonly number[]): Promise<Tensor> {
    const t = await this.getWeight(key, shape);
    if (t.dtype !== 'f32' && t.dtype !== 'f64') throw new PeftError('E_FORMAT', `tensor ${key} is a frozen ${t.dtype} weight, expected f32`);
    return t;
  }
}

// ---- fresh tensors ---------------------------------------------------------------------------------------

class InitSource implements WeightSource {
  readonly where = 'init';
  constructor(readonly vars: Map<string, Tensor>, readonly seed: number) {}

  has(): boolean {
    return true;
  }

  async getWeight(key: string, shape: readonly number[], init: Init): Promise<Tensor> {
    return this.getFloat(key, shape, init);
  }

  /** The same key returns the same tensor (shared weights); a seed per key keeps values independent of load order. */
  async getFloat(key: string, shape: readonly number[], init: Init): Promise<Tensor> {
    const old = this.vars.get(key);
    if (old) {
      if (!sameShape(old.shape, shape)) throw new PeftError('E_SHAPE', `variable ${key} exists with shape ${text(old.shape)}, requested ${text(shape)}`);
      return old;
    }
    const seed = (this.seed ^ hashString(key)) >>> 0;
    const o = { requiresGrad: true, seed };
    const t = init === 'zeros' ? zeros(shape, o) : init === 'ones' ? full(shape, 1, o)
      : 'normal' in init ? randn(shape, { ...o, std: init.normal }) : uniform(shape, -init.uniform, init.uniform, o);
    this.vars.set(key, t);
    return t;
  }
}
