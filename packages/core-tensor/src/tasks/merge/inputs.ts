/**
 * One model folder as a merge input: its tensors as the f32 values a merge method sees, read one
 * at a time into caller-owned buffers. Float tensors (F32/F16/BF16) are widened; bitsandbytes
 * 4-bit (nf4/fp4) and int8 folders written by `peft quantize` or transformers are dequantized on
 * the fly through the registry's quantizer entries, so a quantized weight is one logical tensor
 * (`X.weight`, its full shape) and its absmax / quant_map / quant_state / SCB parts are not tensors
 * of their own. Nothing is kept in memory beyond the headers.
 * Not here: comparing folders (check.ts), choosing output dtypes (run.ts).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { toF32 } from '../../backend/index.js';
import type { Backend } from '../../backend/types.js';
import { bytesOf, type Dtype, type RawTensor } from '../../dtype.js';
import { inputError } from '../../errors.js';
import { openModelFolder, type ModelFolder } from '../../io/model-folder.js';
import { decodeQuantState } from '../../quant/quant-state.js';
import { describeQuantization } from '../../quant/config.js';
import type { QuantizerDef } from '../../plugin/quantizer.js';
import type { Registry } from '../../plugin/registry.js';

export type FloatDtype = 'F32' | 'F16' | 'BF16';

export interface MergeTensorInfo {
  name: string;
  shape: number[];
  /** Stored dtype, or the quantization type (nf4, fp4, int8) of a quantized weight. */
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
const STATE = /^(.*)\.weight\.quant_state\.bitsandbytes__(nf4|fp4)$/;

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
      const config = folder.config as Record<string, unknown>;
      const q = config.quantization_config ? describeQuantization(config, folder.tensorNames) : undefined;
      if (config.quantization_config && !q) {
        const method = (config.quantization_config as { quant_method?: unknown }).quant_method;
        throw inputError('E_INPUT', `quantization ${JSON.stringify(method)} is not supported as a merge input (bitsandbytes nf4, fp4 and int8 are)`, dir);
      }
      const src = new MergeSource(dir, folder, q ? registry.get('quantizer', q.type) : undefined);
      await src.#index(q?.type);
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
  async #index(quantType?: string): Promise<void> {
    const f = this.folder;
    const names = f.tensorNames;
    const owner = new Map<string, MergeTensorInfo>(); // stored part -> the quantized weight it belongs to
    for (const n of names) {
      const m = STATE.exec(n);
      if (m) this.#quantized4(m[1], n, names, owner, await f.read(n));
      else if (n.endsWith('.SCB') && quantType === 'int8') this.#quantized8(n.slice(0, -4), names, owner);
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

  #quantized4(module: string, stateName: string, names: string[], owner: Map<string, MergeTensorInfo>, state: RawTensor): void {
    const s = decodeQuantState(stateName, state.data);
    const w = `${module}.weight`;
    if (!this.folder.has(w)) throw inputError('E_FORMAT', `4-bit weight ${w} is missing (its quant_state is there)`, this.dir);
    const parts = names.filter((n) => n === w || n.startsWith(`${w}.`));
    const info: MergeTensorInfo = {
      name: w, shape: [...s.shape], stored: s.quant_type, module, parts,
      bytes: parts.reduce((a, p) => a + this.folder.info(p).byteLength, 0),
      // the model's torch_dtype first: `peft quantize` records the compute dtype in the quant_state
      floatDtype: TORCH_DTYPES[String(this.config.torch_dtype)] ?? TORCH_DTYPES[s.dtype] ?? 'F32',
    };
    for (const p of parts) owner.set(p, info);
  }

  #quantized8(module: string, names: string[], owner: Map<string, MergeTensorInfo>): void {
    const w = `${module}.weight`;
    if (!this.folder.has(w) || this.folder.info(w).dtype !== 'I8') throw inputError('E_FORMAT', `int8 weight ${w} is missing or not I8 (its SCB is there)`, this.dir);
    const parts = [w, `${module}.SCB`, `${module}.weight_format`].filter((n) => names.includes(n));
    const info: MergeTensorInfo = {
      name: w, shape: this.folder.info(w).shape, stored: 'int8', module, parts,
      bytes: parts.reduce((a, p) => a + this.folder.info(p).byteLength, 0), floatDtype: this.#configDtype(),
    };
    for (const p of parts) owner.set(p, info);
  }

  /** config.json's torch_dtype as a float dtype (F16 when absent, as LLM.int8 models are usually half). */
  #configDtype(): FloatDtype {
    return TORCH_DTYPES[String(this.config.torch_dtype)] ?? 'F16';
  }

  /**
   * Reads tensor `name` as f32 into `out` (exactly its element count). `scratch` holds the stored
   * bytes of half-precision tensors (at least their byte length); F32 is read straight into `out`.
   */
  async readInto(name: string, out: Float32Array, scratch: Uint8Array, backend: Backend): Promise<void> {
    const t = this.info.get(name);
    if (!t) throw inputError('E_NOT_FOUND', `no tensor named ${JSON.stringify(name)}`, this.dir);
    if (t.parts) {
      const got = new Map<string, RawTensor>();
      for (const p of t.parts) got.set(p, await this.folder.read(p));
      const r = this.quantizer!.dequantize(t.module!, (n) => got.get(n), { backend, out });
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
