/**
 * `peft merge BASE --adapter A [--adapter B --weight ...]` as a library call: fold low-rank
 * adapters into a base model and write a full model folder, streaming tensor by tensor:
 *
 *   W' = W + Σᵢ wᵢ sᵢ Bᵢ Aᵢ                     (PEFT LoraLayer.merge: W += s B A)
 *   DoRA: W' = m / ||W + ΔW||_row · (W + ΔW)   (PEFT DoraLinearLayer; norm over each output row)
 *
 * A quantized base (quantization_config in config.json: bitsandbytes 4-bit / int8, or a plugin
 * quantizer's, found by registry.quantizerFor) is dequantized through that quantizer, updated, and
 * written in `dtype` (default: the weight's dtype before quantization, from quant_state, else bf16),
 * or re-quantized by the same quantizer with the same settings when `requantize` (modules no
 * adapter touches are then copied as stored). quantization_config is dropped unless re-quantized.
 * Tensors no adapter touches pass through byte for byte (converted only when `dtype` is given).
 * Non-finite values are refused by name (exit 2): in the adapters (deltas.ts), in every base tensor as
 * it is read (stored bytes, or the dequantized weight), and in every tensor as it is written (a fold
 * that overflows the output dtype). Tensors of modules an adapter does not target are not applied
 * and reported in `warnings`.
 * Peak memory: the adapters plus about three copies of the largest tensor. Output is atomic, and
 * --out is checked against the base and the adapters and locked before any is read.
 * Not here: how an adapter's keys become ΔW (its method's delta()), merging adapters (merge-adapters.ts).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fromF32, getBackend, toF32 } from '../../backend/index.js';
import type { Backend } from '../../backend/types.js';
import { type Dtype, type NamedRawTensor, type RawTensor } from '../../dtype.js';
import { inputError } from '../../errors.js';
import { checkFinite, checkFiniteRaw } from '../../finite.js';
import { copyAuxFiles } from '../../io/atomic.js';
import { withOutput, type Output } from '../../io/output-guard.js';
import { openModelFolder, type ModelFolder } from '../../io/model-folder.js';
import { floatKeysOf, pyJsonDumps } from '../../io/py-json.js';
import { ShardedWriter } from '../../io/sharded-writer.js';
import type { LowRankDelta } from '../../plugin/method.js';
import type { QuantizerDef } from '../../plugin/quantizer.js';
import type { Registry } from '../../plugin/registry.js';
import { addProduct, adapterWarnings, readAdapterDeltas } from './deltas.js';
import { findQuantModules, originalDtype, requantizeOptions, type QuantModule } from './fold-quant.js';

export type FoldDtype = 'bf16' | 'f16' | 'f32';
const DTYPES: Record<FoldDtype, Dtype> = { bf16: 'BF16', f16: 'F16', f32: 'F32' };
const TORCH: Record<FoldDtype, string> = { bf16: 'bfloat16', f16: 'float16', f32: 'float32' };
const FLOATS: readonly Dtype[] = ['F32', 'F16', 'BF16'];

export interface FoldOptions {
  base: string;
  adapters: string[];
  /** One per adapter (default 1 each): W' = W + Σ wᵢ ΔWᵢ. */
  weights?: number[];
  dtype?: FoldDtype;
  /** Re-quantize updated modules of a quantized base with its own settings. */
  requantize?: boolean;
  out: string;
  force?: boolean;
  backend?: Backend;
  maxShardBytes?: number;
}

export interface FoldReport {
  tensors: number;
  /** Modules whose weight was updated. */
  foldedModules: number;
  dequantizedModules: number;
  requantizedModules: number;
  bytesOut: number;
  /** Warning lines (deltas.ts adapterWarnings): tensors PEFT would not apply, targeted modules without tensors. */
  warnings: string[];
  seconds: number;
}

interface Contribution {
  d: LowRankDelta;
  w: number;
  dir: string;
}

/** Module -> contributions, checked: weights finite, at most one DoRA magnitude per module; and the warnings. */
async function collect(opts: FoldOptions, registry: Registry, base: ModelFolder): Promise<{ byModule: Map<string, Contribution[]>; warnings: string[] }> {
  const weights = opts.weights ?? opts.adapters.map(() => 1);
  if (weights.length !== opts.adapters.length) throw inputError('E_INPUT', `${weights.length} weights for ${opts.adapters.length} adapters`);
  for (const w of weights) if (!Number.isFinite(w)) throw inputError('E_INPUT', `adapter weight ${w} is not a finite number`);
  const byModule = new Map<string, Contribution[]>();
  const warnings: string[] = [];
  const baseModules = base.tensorNames.filter((n) => n.endsWith('.weight')).map((n) => n.slice(0, -'.weight'.length));
  for (const [i, dir] of opts.adapters.entries()) {
    const a = await readAdapterDeltas(dir, registry, baseModules);
    for (const w of adapterWarnings(a.dir, a)) warnings.push(w);
    for (const d of a.deltas.values()) {
      const list = byModule.get(d.module) ?? [];
      list.push({ d, w: weights[i], dir });
      byModule.set(d.module, list);
    }
  }
  for (const [m, list] of byModule) {
    if (list.filter((c) => c.d.magnitude).length > 0 && list.length > 1) {
      throw inputError('E_INPUT', `module ${m}: a DoRA adapter cannot be folded together with another adapter on the same module`, list[0].dir);
    }
  }
  return { byModule, warnings };
}

/** W [out, in] (f32, updated in place) with every contribution folded in. */
function fold(w: Float32Array, shape: readonly number[], list: Contribution[], where: string): void {
  const { d } = list[0];
  if (shape.length !== 2 || shape[0] !== d.outFeatures || shape[1] !== d.inFeatures) {
    throw inputError('E_SHAPE', `module ${d.module}: the adapter's update is [${d.outFeatures}, ${d.inFeatures}], the base weight is [${shape}]`, where);
  }
  const acc = new Float64Array(w);
  for (const c of list) addProduct(acc, c.d, c.w);
  const m = d.magnitude;
  const n = d.inFeatures;
  for (let i = 0; i < d.outFeatures; i++) {
    let f = 1;
    if (m) {
      let ss = 0;
      for (let j = 0; j < n; j++) ss += acc[i * n + j] ** 2;
      f = m[i] / Math.sqrt(ss);
    }
    for (let j = 0; j < n; j++) w[i * n + j] = f * acc[i * n + j];
  }
}

class Folder {
  readonly backend: Backend;
  readonly report: FoldReport = { tensors: 0, foldedModules: 0, dequantizedModules: 0, requantizedModules: 0, bytesOut: 0, warnings: [], seconds: 0 };
  constructor(
    readonly opts: FoldOptions, readonly quantizer: QuantizerDef | undefined, readonly base: ModelFolder,
    readonly deltas: Map<string, Contribution[]>, readonly writer: ShardedWriter,
  ) {
    this.backend = opts.backend ?? getBackend();
  }

  /** "<base>/<file>" holding `name`, for messages. */
  fileOf(name: string): string {
    return join(this.base.dir, this.base.info(name).file);
  }

  /** A base tensor as stored, refused when it holds NaN / Inf (the absmax of 4-bit blocks included). */
  async read(name: string): Promise<RawTensor> {
    const raw = await this.base.read(name);
    checkFiniteRaw(raw, { what: `tensor ${name}`, where: this.fileOf(name) });
    return raw;
  }

  /** Inputs were checked as read: a non-finite output is the fold's own overflow. */
  async write(t: NamedRawTensor): Promise<void> {
    checkFiniteRaw(t, { what: `the output tensor ${t.name}`, code: 'E_INPUT', hint: `folding the adapters overflows ${t.dtype}` });
    this.report.tensors++;
    this.report.bytesOut += t.data.byteLength;
    await this.writer.add(t);
  }

  /** f32 values in the output dtype (or `fallback`). */
  encoded(name: string, shape: number[], values: Float32Array, fallback: Dtype): NamedRawTensor {
    const dtype = this.opts.dtype ? DTYPES[this.opts.dtype] : fallback;
    return { name, shape, dtype, data: fromF32(this.backend, values, dtype) };
  }

  async plain(name: string): Promise<void> {
    const raw = await this.read(name);
    const module = name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : undefined;
    const list = module ? this.deltas.get(module) : undefined;
    const isFloat = FLOATS.includes(raw.dtype);
    if (!list && !(isFloat && this.opts.dtype)) return this.write({ name, ...raw });
    if (!isFloat) throw inputError('E_INPUT', `tensor ${name} is ${raw.dtype}, not a float weight an adapter can be folded into`, this.base.dir);
    const w = Float32Array.from(toF32(this.backend, { ...raw, name } as RawTensor));
    if (list) {
      fold(w, raw.shape, list, this.base.dir);
      this.report.foldedModules++;
    }
    await this.write(this.encoded(name, raw.shape, w, raw.dtype));
  }

  async quantized(m: QuantModule): Promise<void> {
    const list = this.deltas.get(m.prefix);
    if (!list && this.opts.requantize) {
      for (const n of m.names) await this.write({ name: n, ...(await this.read(n)) });
      return;
    }
    const stored = new Map<string, RawTensor>();
    for (const n of m.names) stored.set(n, await this.read(n));
    const get = (n: string) => stored.get(n);
    const q = this.quantizer!;
    const { data, shape } = q.dequantize(m.prefix, get, { backend: this.backend });
    const w = Float32Array.from(data);
    checkFinite(w, { what: `the dequantized weight ${m.prefix}.weight`, where: this.fileOf(m.names[0]) });
    if (list) {
      fold(w, shape, list, this.base.dir);
      this.report.foldedModules++;
    }
    if (this.opts.requantize) {
      const qc = (this.base.config as Record<string, unknown>).quantization_config as Record<string, unknown>;
      for (const t of q.quantize(m.prefix, w, shape, requantizeOptions(q, m, get, qc), { backend: this.backend })) await this.write(t);
      this.report.requantizedModules++;
      return;
    }
    this.report.dequantizedModules++;
    await this.write(this.encoded(`${m.prefix}.weight`, shape, w, originalDtype(m)));
  }
}

function outputConfig(base: ModelFolder, opts: FoldOptions): Record<string, unknown> {
  const config = { ...(base.config as Record<string, unknown>) };
  if (!opts.requantize) delete config.quantization_config;
  if (opts.dtype) config.torch_dtype = TORCH[opts.dtype];
  return config;
}

export async function foldAdapters(opts: FoldOptions, registry: Registry): Promise<FoldReport> {
  const spec = { command: 'merge', out: opts.out, inputs: [opts.base, ...opts.adapters], force: opts.force };
  return withOutput(spec, (output) => foldInto(output, opts, registry));
}

async function foldInto(output: Output, opts: FoldOptions, registry: Registry): Promise<FoldReport> {
  const t0 = performance.now();
  if (!opts.adapters.length) throw inputError('E_INPUT', 'no adapter to fold (pass at least one --adapter)');
  const base = await openModelFolder(opts.base);
  try {
    const { byModule: deltas, warnings } = await collect(opts, registry, base);
    const quantized = !!(base.config as Record<string, unknown>).quantization_config;
    if (opts.requantize && !quantized) throw inputError('E_INPUT', 'requantize needs a quantized base (no quantization_config in config.json)', opts.base);
    const { quantizer, modules, owner } = await findQuantModules(base, registry);
    for (const [m, list] of deltas) {
      if (!modules.has(m) && !base.has(`${m}.weight`)) throw inputError('E_INPUT', `module ${m} of the adapter has no weight ${m}.weight in the base ${opts.base}`, list[0].dir);
    }
    let done: FoldReport | undefined;
    const inputBytes = base.tensorNames.reduce((n, t) => n + base.info(t).byteLength, 0);
    // Bytes per tensor so far times the tensors, twice (a shard and its spill file coexist).
    const neededBytes = () => 2 * (done?.tensors ? (done.bytesOut / done.tensors) * base.tensorNames.length : inputBytes);
    const report = await output.write(async (tmp) => {
      const writer = new ShardedWriter(tmp, { maxShardBytes: opts.maxShardBytes });
      const f = new Folder(opts, quantizer, base, deltas, writer);
      done = f.report;
      try {
        const seen = new Set<string>();
        for (const name of base.tensorNames) {
          const m = owner.get(name);
          if (m === undefined) await f.plain(name);
          else if (!seen.has(m)) {
            seen.add(m);
            await f.quantized(modules.get(m)!);
          }
        }
        await writer.finish();
      } catch (e) {
        await writer.abort();
        throw e;
      }
      const floatKeys = floatKeysOf(await readFile(join(opts.base, 'config.json'), 'utf8'));
      await writeFile(join(tmp, 'config.json'), pyJsonDumps(outputConfig(base, opts), { floatKeys }));
      await copyAuxFiles(base, tmp);
      return f.report;
    }, { neededBytes });
    report.warnings = warnings;
    report.seconds = (performance.now() - t0) / 1000;
    return report;
  } finally {
    await base.close();
  }
}
