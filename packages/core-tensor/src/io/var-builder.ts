/**
 * VarBuilder: a prefix-scoped weight source, as candle-nn's VarBuilder. Model code asks for
 * `vb.pp('model').pp('layers.0').get('input_layernorm.weight', [C])` and never sees files; the same
 * `load` code reads a Hugging Face folder, wraps tensors already in memory, or creates fresh
 * trainable ones (candle's VarMap). Every tensor comes with the shape the caller expects, and a
 * mismatch names the key and the file.
 *
 * Three sources:
 * - folder: F32 / F16 / BF16 safetensors (BF16 Linear weights stay frozen bf16 bits unless asked to
 *   widen), and bitsandbytes checkpoints as `peft quantize` / transformers write them: 4-bit weights
 *   stay PACKED (only the double-quantized absmax, 1/64 of the size, is expanded once at load) and
 *   int8 weights keep their CB / SCB rows.
 * - tensors: a name -> Tensor map (tests, adapters, weights built in code).
 * - init: creates every requested tensor from its init hint (trainable), recording it in a map.
 * What comes from a folder never requires grad: base weights are frozen, and checked finite as they
 * load (the f32 values, bf16 bits, 4-bit absmax or int8 row scales; exit 2 naming the tensor).
 * Not here: module construction (models/), quantizing (quant/), writing checkpoints.
 */
import { asU16, numel, type Dtype, type RawTensor } from '../dtype.js';
import { inputError, PeftError } from '../errors.js';
import { checkFinite, checkFiniteRaw } from '../finite.js';
import { getBackend, toF32 } from '../backend/index.js';
import type { Backend } from '../backend/types.js';
import { doubleDequantize } from '../quant/bnb4bit.js';
import { decodeQuantState } from '../quant/quant-state.js';
import { quantMap } from '../backend/quant-tables.js';
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
  /** A Linear weight [out, in]: frozen kinds (bf16, nf4, fp4, int8) stay as stored. */
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

  /** A Linear weight [out, in], frozen-packed when stored so (bf16, nf4, fp4, int8). */
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
}

const FLOAT_DTYPES: readonly Dtype[] = ['F32', 'F16', 'BF16'];

class FolderSource implements WeightSource {
  readonly where: string;
  readonly #backend: Backend;

  constructor(readonly folder: ModelFolder, readonly opts: FolderOptions) {
    this.where = folder.dir;
    this.#backend = opts.backend ?? getBackend();
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
    this.#need(key);
    const state = [`${key}.quant_state.bitsandbytes__nf4`, `${key}.quant_state.bitsandbytes__fp4`].find((k) => this.folder.has(k));
    if (state) return this.#quant4(key, state, shape);
    const info = this.folder.info(key);
    const module = key.endsWith('.weight') ? key.slice(0, -'.weight'.length) : key;
    if (info.dtype === 'I8' && this.folder.has(`${module}.SCB`)) return this.#int8(key, module, shape);
    if (info.dtype === 'BF16' && !this.opts.widenBf16) {
      this.#checkShape(key, info.shape, shape);
      const raw = await this.#read(key);
      checkFiniteRaw(raw, { what: `tensor ${key}`, where: this.#file(key) });
      return keep(frozenTensor({ kind: 'bf16', bits: asU16(raw.data) }, shape));
    }
    return this.getFloat(key, shape);
  }

  /** bitsandbytes Linear4bit: packed codes kept as they are, absmax expanded once (see quant/bnb4bit.ts for the layout). */
  async #quant4(key: string, stateKey: string, shape: readonly number[]): Promise<Tensor> {
    const s = decodeQuantState(stateKey, (await this.#read(stateKey)).data);
    if (!stateKey.endsWith(s.quant_type)) throw inputError('E_FORMAT', `${stateKey}: quant_type is '${s.quant_type}'`, this.#file(stateKey));
    if (!sameShape(s.shape, shape)) {
      throw inputError('E_SHAPE', `tensor ${key} (4-bit) has shape ${text(s.shape)} in its quant_state, the model expects ${text(shape)}`, this.#file(key));
    }
    const n = numel(shape);
    const packed = (await this.#read(key)).data; // any quant_storage dtype: the bytes are the nibbles
    if (packed.byteLength < Math.ceil(n / 2)) {
      throw inputError('E_FORMAT', `tensor ${key}: ${packed.byteLength} packed bytes, shape ${text(shape)} needs ${Math.ceil(n / 2)}`, this.#file(key));
    }
    await this.#checkQuantMap(`${key}.quant_map`, s.quant_type);
    const absmax = await this.#absmax(key, Math.ceil(n / s.blocksize), s.nested_offset, s.nested_blocksize ?? 256);
    checkFinite(absmax, { what: `the absmax of 4-bit tensor ${key}`, where: this.#file(key) }); // a block's scale: NaN / Inf poisons the block
    const data = { kind: s.quant_type, packed: packed.subarray(0, Math.ceil(n / 2)), absmax, blocksize: s.blocksize };
    return keep(frozenTensor(data, shape));
  }

  /** The kernels carry the standard code books; a checkpoint with another quant_map cannot be computed with. */
  async #checkQuantMap(key: string, type: 'nf4' | 'fp4'): Promise<void> {
    this.#need(key);
    const got = await this.#f32(key, 16);
    const want = quantMap(type);
    if (!got.every((v, i) => v === want[i])) throw inputError('E_FORMAT', `${key}: not the standard ${type} code book`, this.#file(key));
  }

  async #f32(key: string, len: number): Promise<Float32Array> {
    this.#need(key);
    const x = toF32(this.#backend, { ...(await this.#read(key)), name: key } as RawTensor);
    if (x.length !== len) throw inputError('E_FORMAT', `tensor ${key}: expected ${len} values, found ${x.length}`, this.#file(key));
    return x;
  }

  /** f32 per-block absmax; with double quantization, dyn[code] * nested[i / 256] + offset (bitsandbytes dequantize_4bit). */
  async #absmax(key: string, blocks: number, offset: number | undefined, nestedBlocksize: number): Promise<Float32Array> {
    const name = `${key}.absmax`;
    if (offset === undefined) return Float32Array.from(await this.#f32(name, blocks));
    this.#need(name);
    const codes = await this.#read(name);
    if (codes.dtype !== 'U8' || codes.data.length !== blocks) {
      throw inputError('E_FORMAT', `tensor ${name}: expected U8 [${blocks}] with double quantization, got ${codes.dtype} ${text(codes.shape)}`, this.#file(name));
    }
    const nested = await this.#f32(`${key}.nested_absmax`, Math.ceil(blocks / nestedBlocksize));
    const code = await this.#f32(`${key}.nested_quant_map`, 256);
    return doubleDequantize(this.#backend, codes.data, nested, code, nestedBlocksize, offset);
  }

  /** bitsandbytes Linear8bitLt: CB int8 [out, in] and SCB f32 [out] (see quant/int8.ts). */
  async #int8(key: string, module: string, shape: readonly number[]): Promise<Tensor> {
    this.#checkShape(key, this.folder.info(key).shape, shape);
    const format = `${module}.weight_format`;
    if (this.folder.has(format)) {
      const f = (await this.#read(format)).data;
      if (f.length !== 1 || f[0] !== 0) throw inputError('E_FORMAT', `${format}: only format 0 ("row") is supported`, this.#file(format));
    }
    const raw = (await this.#read(key)).data;
    const cb = new Int8Array(raw.buffer, raw.byteOffset, raw.byteLength);
    const scb = Float32Array.from(await this.#f32(`${module}.SCB`, shape[0]));
    checkFinite(scb, { what: `tensor ${module}.SCB (int8 row scales)`, where: this.#file(`${module}.SCB`) });
    return keep(frozenTensor({ kind: 'int8', cb, scb }, shape));
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
