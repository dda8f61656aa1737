/**
 * `peft merge` as a library call: check the plan (check.ts), then stream the output tensor by
 * tensor: read that tensor of the base and of every model into reused f32 buffers (dequantizing
 * 4-bit / int8 inputs on the fly), let the registered merger combine them, convert to the output
 * dtype and append to sharded safetensors. Peak memory is about (inputs + 1) x the largest tensor
 * in f32, never a model. The folder (weights, config.json of the base or first model without its
 * quantization_config, the tokenizer source's tokenizer files, mergekit_config.yml) appears
 * atomically, or not at all; --out is checked against every input and locked before any is read. Non-finite
 * values are refused by name (exit 2): in each input tensor as it is read (after the f32 conversion or
 * dequantization), and in each merged tensor as encoded.
 * Not here: the math (plugin merger entries), recipe parsing (recipe.ts).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { getBackend } from '../../backend/index.js';
import type { Backend } from '../../backend/types.js';
import { bytesOf, numel, type Dtype } from '../../dtype.js';
import { PeftError } from '../../errors.js';
import { checkFinite, checkFiniteRaw } from '../../finite.js';
import { copyAuxFiles } from '../../io/atomic.js';
import { withOutput, type Output } from '../../io/output-guard.js';
import { floatKeysOf, pyJsonDumps } from '../../io/py-json.js';
import { ShardedWriter } from '../../io/sharded-writer.js';
import { hashString } from '../../random/rng.js';
import type { Registry } from '../../plugin/registry.js';
import { prepareMerge, type MergeCheckReport, type PreparedMerge } from './check.js';
import type { MergeSource } from './inputs.js';
import { planToRecipe } from './recipe.js';
import type { MergeDtype, MergePlan } from './plan.js';

export interface RunMergeOptions {
  /** Output model folder (created atomically). */
  out: string;
  /** Seed of the random methods (dare, della); default 0. Each tensor draws from (seed, tensor name). */
  seed?: number;
  /** Output dtype; overrides the plan's out_dtype / dtype. Default: each tensor's dtype in the base (or first) model. */
  dtype?: MergeDtype;
  /** Replace an existing output folder (only an earlier `peft merge` output). */
  force?: boolean;
  /** Files the caller read to build the plan (the recipe): --out may not hold them either. */
  inputs?: string[];
  backend?: Backend;
  maxShardBytes?: number;
  onProgress?: (e: MergeProgress) => void;
}

export interface MergeProgress {
  index: number;
  total: number;
  name: string;
}

export interface MergeReport {
  method: string;
  out: string;
  seed: number;
  /** The output dtype, or "as input" when each tensor keeps the reference model's dtype. */
  dtype: string;
  tensors: number;
  /** Bytes read from all inputs (stored bytes: packed for 4-bit). */
  bytesIn: number;
  bytesOut: number;
  largestTensorBytes: number;
  seconds: number;
  /** bytesIn / 1e6 / seconds */
  mbPerSecond: number;
  check: MergeCheckReport;
}

const DTYPES: Record<MergeDtype, Dtype> = { bf16: 'BF16', f16: 'F16', f32: 'F32' };
const TORCH_DTYPE: Record<string, string> = { BF16: 'bfloat16', F16: 'float16', F32: 'float32' };

/** The seed tensor `name` draws from. */
export function tensorSeed(seed: number, name: string): number {
  return hashString(`${seed >>> 0}:${name}`);
}

/** Buffers sized once for the largest tensor and reused: f32 per input, the result, and byte scratch. */
class Buffers {
  readonly inputs: Float32Array[];
  readonly out: Float32Array;
  readonly bytes: Uint8Array;
  #half?: Uint16Array;
  constructor(inputs: number, readonly maxElems: number, maxHalfBytes: number) {
    this.inputs = Array.from({ length: inputs }, () => new Float32Array(maxElems));
    this.out = new Float32Array(maxElems);
    this.bytes = new Uint8Array(maxHalfBytes);
  }

  /** Output bytes of half-precision tensors; allocated only when an output tensor is half precision. */
  get half(): Uint16Array {
    this.#half ??= new Uint16Array(this.maxElems);
    return this.#half;
  }
}

function buffersFor(job: PreparedMerge): Buffers {
  const sources = [...(job.base ? [job.base] : []), ...job.models];
  let maxHalf = 0;
  for (const s of sources) for (const t of s.info.values()) if (t.stored === 'F16' || t.stored === 'BF16') maxHalf = Math.max(maxHalf, t.bytes);
  return new Buffers(sources.length, job.report.largestTensorElements, maxHalf);
}

export async function runMerge(plan: MergePlan, registry: Registry, opts: RunMergeOptions): Promise<MergeReport> {
  const inputs = [plan.base, ...plan.models.map((m) => m.path), ...(opts.inputs ?? [])];
  return withOutput({ command: 'merge', out: opts.out, inputs, force: opts.force }, (output) => mergeInto(output, plan, registry, opts));
}

async function mergeInto(output: Output, plan: MergePlan, registry: Registry, opts: RunMergeOptions): Promise<MergeReport> {
  const t0 = performance.now();
  const job = await prepareMerge(plan, registry);
  try {
    const outDtype = opts.dtype ?? plan.outDtype ?? plan.dtype;
    const r: MergeReport = {
      method: job.def.name, out: opts.out, seed: opts.seed ?? 0, dtype: outDtype ?? 'as input', tensors: job.tensors.length,
      bytesIn: 0, bytesOut: 0, largestTensorBytes: 0, seconds: 0, mbPerSecond: 0, check: job.report,
    };
    const f32 = (name: string) => (outDtype ? outDtype === 'f32' : job.reference.info.get(name)?.floatDtype === 'F32');
    const neededBytes = () => 2 * job.tensors.reduce((n, p) => n + numel(p.shape) * (f32(p.name) ? 4 : 2), 0); // a shard and its spill
    await output.write(async (tmp) => {
      await writeTensors(job, opts, outDtype, tmp, r);
      await writeSideFiles(job, plan, outDtype, tmp);
    }, { neededBytes });
    r.seconds = (performance.now() - t0) / 1000;
    r.mbPerSecond = r.bytesIn / 1e6 / r.seconds;
    return r;
  } finally {
    await job.close();
  }
}

async function writeTensors(job: PreparedMerge, opts: RunMergeOptions, outDtype: MergeDtype | undefined, tmp: string, r: MergeReport): Promise<void> {
  const backend = opts.backend ?? getBackend();
  const buf = buffersFor(job);
  const sources: MergeSource[] = [...(job.base ? [job.base] : []), ...job.models];
  const ref = job.reference;
  const writer = new ShardedWriter(tmp, { maxShardBytes: opts.maxShardBytes });
  try {
    for (const [index, p] of job.tensors.entries()) {
      const n = numel(p.shape);
      const arrays = sources.map((s, i) => buf.inputs[i].subarray(0, n));
      for (const [i, s] of sources.entries()) {
        await s.readInto(p.name, arrays[i], buf.bytes, backend);
        checkFinite(arrays[i], { what: `tensor ${p.name}`, where: s.dir });
        r.bytesIn += s.info.get(p.name)!.bytes;
      }
      const res = job.def.mergeTensor({
        ...p, base: job.base ? arrays[0] : undefined, models: job.base ? arrays.slice(1) : arrays,
        out: buf.out.subarray(0, n), seed: tensorSeed(r.seed, p.name),
      });
      if (res.length !== n) throw new PeftError('E_RUNTIME', `${job.def.name} returned ${res.length} values for ${p.name}, expected ${n}`);
      const dtype = outDtype ? DTYPES[outDtype] : ref.info.get(p.name)!.floatDtype;
      const data = encode(backend, res, dtype, buf);
      checkFiniteRaw({ dtype, data }, { what: `the merged tensor ${p.name}`, code: 'E_INPUT', hint: `${job.def.name} gives values ${dtype} cannot hold` });
      r.bytesOut += data.byteLength;
      r.largestTensorBytes = Math.max(r.largestTensorBytes, data.byteLength);
      await writer.add({ name: p.name, dtype, shape: [...p.shape], data });
      opts.onProgress?.({ index, total: job.tensors.length, name: p.name });
    }
    await writer.finish();
  } catch (e) {
    await writer.abort();
    throw e;
  }
}

function encode(backend: Backend, x: Float32Array, dtype: Dtype, buf: Buffers): Uint8Array {
  if (dtype === 'F32') return bytesOf(x);
  const h = buf.half.subarray(0, x.length);
  return bytesOf(dtype === 'BF16' ? backend.f32ToBf16(x, h) : backend.f32ToF16(x, h));
}

/** config.json (floats spelled as the source spelled them), the tokenizer files, the recipe. */
async function writeSideFiles(job: PreparedMerge, plan: MergePlan, outDtype: MergeDtype | undefined, tmp: string): Promise<void> {
  const ref = job.reference;
  const { quantization_config: _, ...config } = ref.config;
  if (outDtype) config.torch_dtype = TORCH_DTYPE[DTYPES[outDtype]];
  const floatKeys = floatKeysOf(await readFile(join(ref.dir, 'config.json'), 'utf8'));
  await writeFile(join(tmp, 'config.json'), pyJsonDumps(config, { floatKeys }));
  // tokenizer_source base, or mergekit's default: the base model's, else the first model's (job.reference)
  await copyAuxFiles(ref.folder, tmp);
  await writeFile(join(tmp, 'mergekit_config.yml'), planToRecipe(plan));
}
