/**
 * One model folder as a merge input: its tensors as the f32 values a merge method sees, read one
 * at a time into caller-owned buffers. Float tensors (F32/F16/BF16) are widened; a quantized folder
 * (bitsandbytes nf4 / fp4 / int8 as `peft quantize` or transformers write them, or a plugin
 * quantizer's) is read through the quantizer its quantization_config names (registry.quantizerFor),
 * dequantized on the fly, so a quantized weight is one logical tensor (`X.weight`, its full shape)
 * and its stored parts (absmax, quant_state, SCB, a plugin's scales) are not tensors of their own.
 * Nothing is kept in memory beyond the headers.
 * Not here: comparing folders (check.ts), choosing output dtypes (run.ts).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { getBackend, toF32 } from '../../backend/index.js';
import type { Backend } from '../../backend/types.js';
import { bytesOf, type Dtype, type RawTensor } from '../../dtype.js';
import { inputError } from '../../errors.js';
import { openModelFolder, type ModelFolder } from '../../io/model-folder.js';
import { storedLayout, weightModules, type StoredLayout } from '../../quant/format.js';
import type { QuantizerDef } from '../../plugin/quantizer.js';
import type { Registry } from '../../plugin/registry.js';

export type FloatDtype = 'F32' | 'F16' | 'BF16';

export interface MergeTensorInfo {
  name: string;
  shape: number[];
  /** Stored dtype, or the quantizer (nf4, fp4, int8, a plugin's) of a quantized weight. */
  stored: string;
  /** Bytes on disk (all parts of a quantized weight). */
  bytes: number;
  /** The float dtype the tensor stands for: its own, or the one a quantized weight was made from. */
  floatDtype: FloatDtype;
  /** Quantized weights: the module prefix and the stored tensors that make it up. */
  module?: string;
  parts?: string[];
}

const FLOAT: readonly string[] = ['F32', 'F16', 'BF16'];
const TORCH_DTYPES: Record<string, FloatDtype> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };

export class MergeSource {
  readonly order: string[] = [];
  readonly info = new Map<string, MergeTensorInfo>();
  /** Stored tensors that are neither float nor part of a quantized weight (cannot be merged). */
  readonly nonFloat: string[] = [];
  tokenizerHash?: string;

  private constructor(readonly dir: string, readonly folder: ModelFolder, readonly quantizer?: QuantizerDef) {}

  get config(): Record<string, unknown> {
    return this.folder.config as Record<string, unknown>;
  }

  static async open(dir: string, registry: Registry): Promise<MergeSource> {
    const folder = await openModelFolder(dir);
    try {
      const qc = (folder.config as Record<string, unknown>).quantization_config;
      const q = qc === undefined || qc === null ? undefined : registry.quantizerFor(qc, join(dir, 'config.json'));
      const src = new MergeSource(dir, folder, q);
      await src.#index();
      if (folder.auxFiles.includes('tokenizer.json')) {
        src.tokenizerHash = createHash('sha256').update(await readFile(join(dir, 'tokenizer.json'))).digest('hex');
      }
      return src;
    } catch (e) {
      await folder.close();
      throw e;
    }
  }

  /** Logical tensors in file order; a quantized weight takes the place of its packed `X.weight`. */
  async #index(): Promise<void> {
    const f = this.folder;
    const names = f.tensorNames;
    const owner = new Map<string, MergeTensorInfo>(); // stored part -> the quantized weight it belongs to
    if (this.quantizer) {
      for (const module of weightModules(names)) {
        const layout = await storedLayout(this.quantizer, module, f);
        if (layout) await this.#quantized(module, layout, owner);
      }
    }
    for (const n of names) {
      const q = owner.get(n);
      if (q) {
        if (q.name === n) this.#add(q);
        continue;
      }
      const st = f.info(n);
      if (!FLOAT.includes(st.dtype)) this.nonFloat.push(`${n} (${st.dtype})`);
      else this.#add({ name: n, shape: st.shape, stored: st.dtype, bytes: st.byteLength, floatDtype: st.dtype as FloatDtype });
    }
  }

  #add(t: MergeTensorInfo): void {
    this.order.push(t.name);
    this.info.set(t.name, t);
  }

  /** A quantized module; a format whose layout does not give the shape is dequantized once to learn it. */
  async #quantized(module: string, layout: StoredLayout, owner: Map<string, MergeTensorInfo>): Promise<void> {
    const shape = layout.shape ?? (await this.#dequantized(module, layout.parts)).shape;
    const info: MergeTensorInfo = {
      name: `${module}.weight`, shape: [...shape], stored: this.quantizer!.name, module, parts: layout.parts,
      bytes: layout.parts.reduce((a, p) => a + this.folder.info(p).byteLength, 0),
      // the model's torch_dtype first: `peft quantize` records the compute dtype in the quant_state
      floatDtype: TORCH_DTYPES[String(this.config.torch_dtype)] ?? layout.sourceDtype ?? 'F32',
    };
    for (const p of layout.parts) owner.set(p, info);
  }

  /** A quantized module's weight through its quantizer (into `out` when given). */
  async #dequantized(module: string, parts: readonly string[], out?: Float32Array, backend?: Backend) {
    const got = new Map<string, RawTensor>();
    for (const p of parts) {
      if (!this.folder.has(p)) throw inputError('E_FORMAT', `tensor ${p} of the quantized weight ${module}.weight is missing`, this.dir);
      got.set(p, await this.folder.read(p));
    }
    return this.quantizer!.dequantize(module, (n) => got.get(n), { backend: backend ?? getBackend(), out });
  }

  /**
   * Reads tensor `name` as f32 into `out` (exactly its element count). `scratch` holds the stored
   * bytes of half-precision tensors (at least their byte length); F32 is read straight into `out`.
   */
  async readInto(name: string, out: Float32Array, scratch: Uint8Array, backend: Backend): Promise<void> {
    const t = this.info.get(name);
    if (!t) throw inputError('E_NOT_FOUND', `no tensor named ${JSON.stringify(name)}`, this.dir);
    if (t.parts) {
      const r = await this.#dequantized(t.module!, t.parts, out, backend);
      if (r.data.length !== out.length) throw inputError('E_FORMAT', `${name} dequantizes to ${r.data.length} values, expected ${out.length}`, this.dir);
      if (r.data !== out) out.set(r.data);
      return;
    }
    const file = this.folder.fileOf(name);
    if (t.stored === 'F32') return file.readInto(name, bytesOf(out));
    const bytes = scratch.subarray(0, t.bytes);
    await file.readInto(name, bytes);
    toF32(backend, { dtype: t.stored as Dtype, shape: t.shape, data: bytes }, out);
  }

  close(): Promise<void> {
    return this.folder.close();
  }
}
