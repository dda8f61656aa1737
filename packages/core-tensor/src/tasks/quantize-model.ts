/**
 * `peft quantize` as a library call: stream a Hugging Face model folder tensor by tensor,
 * quantize the selected Linear weights with a registered quantizer, pass everything else
 * through byte for byte, and write a folder that transformers + bitsandbytes load.
 * Peak memory is a small multiple of the largest tensor (its bytes, the f32 copy, and the
 * dequantized copy for the error statistics), never the model. Output is atomic (io/output-guard.ts:
 * --out checked against the input and locked before anything is read). Every tensor is checked finite
 * as it is read (a NaN / Inf weight would poison its blocks' absmax), by name, exit 2.
 */
import { getBackend, toF32 } from '../backend/index.js';
import type { Backend } from '../backend/types.js';
import { numel, type NamedRawTensor, type RawTensor } from '../dtype.js';
import { PeftError } from '../errors.js';
import { checkFiniteRaw } from '../finite.js';
import {
  checkLlamaShapes, copyAuxFiles, floatKeysOf, openModelFolder, pyJsonDumps, ShardedWriter, withOutput, type Output,
} from '../io/index.js';
import type { QuantizerDef } from '../plugin/quantizer.js';
import type { ResolvedOptions } from '../plugin/options.js';
import { DEFAULT_TARGETS, selectModule, type ModuleSelection } from './select-modules.js';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface QuantizeModelOptions {
  modelDir: string;
  outDir: string;
  quantizer: QuantizerDef;
  options: ResolvedOptions;
  targets?: readonly string[];
  skip?: readonly string[];
  force?: boolean;
  backend?: Backend;
  maxShardBytes?: number;
  onTensor?: (e: TensorEvent) => void;
}

export interface TensorEvent {
  index: number;
  total: number;
  name: string;
  action: 'quantized' | 'copied';
}

export interface TensorReport {
  name: string;
  shape: number[];
  bytesIn: number;
  bytesOut: number;
  meanAbsError: number;
  maxAbsError: number;
}

export interface QuantizeSummary {
  method: string;
  options: ResolvedOptions;
  backend: string;
  tensors: number;
  quantizedTensors: number;
  quantizedParams: number;
  bytesBefore: number;
  bytesAfter: number;
  /** Bits per parameter of the quantized weights, all stored statistics included. */
  bitsPerParam: number;
  meanAbsError: number;
  maxAbsError: number;
  largestTensorBytes: number;
  seconds: number;
  perTensor: TensorReport[];
}

/**
 * Buffers reused across tensors, sized once for the largest: fresh multi-MB arrays per tensor
 * cost more in page faults than the kernels do, and would make peak memory depend on the
 * allocator instead of the largest tensor.
 */
class Scratch {
  readonly bytes: Uint8Array;
  readonly f32: Float32Array;
  readonly deq: Float32Array;
  constructor(maxBytes: number, maxElems: number) {
    this.bytes = new Uint8Array(maxBytes);
    this.f32 = new Float32Array(maxElems);
    this.deq = new Float32Array(maxElems);
  }
}

/** Mean/max |w - w'|, and whether w held NaN/inf (x*0 is NaN exactly for non-finite x). */
function errorStats(w: Float32Array, d: Float32Array): { sum: number; max: number; finite: boolean } {
  let sum = 0;
  let max = 0;
  let probe = 0;
  for (let i = 0; i < w.length; i++) {
    const e = Math.abs(w[i] - d[i]);
    sum += e;
    if (e > max) max = e;
    probe += w[i] * 0;
  }
  return { sum, max, finite: probe === 0 };
}

/** Quantize one weight and measure its error; returns the tensors to store. */
function quantizeOne(opts: QuantizeModelOptions, backend: Backend, scratch: Scratch, module: string, raw: RawTensor, file: string) {
  const q = opts.quantizer;
  const n = numel(raw.shape);
  const w = toF32(backend, raw, raw.dtype === 'F32' ? undefined : scratch.f32.subarray(0, n));
  const out = q.quantize(module, w, raw.shape, opts.options, { backend });
  const byName = new Map(out.map((t) => [t.name, t] as const));
  const back = q.dequantize(module, (name) => byName.get(name), { backend, out: scratch.deq.subarray(0, n) });
  const { sum, max, finite } = errorStats(w, back.data);
  if (!finite) throw new PeftError('E_FORMAT', `${file}: tensor ${module}.weight contains NaN or infinity`);
  const bytesOut = out.reduce((s, t) => s + t.data.byteLength, 0);
  return { out, sum, max, bytesOut };
}

/**
 * Modules transformers must leave unconverted (`llm_int8_skip_modules`): every 2-D weight we
 * did not quantize except embeddings, and `lm_head` even when tied (transformers' own default).
 */
function unquantizedLinears(plan: { name: string; module?: string }[], shapeOf: (n: string) => number[]): string[] {
  const quantized = new Set(plan.map((p) => p.module).filter(Boolean));
  const kept = plan
    .filter((p) => !p.module && p.name.endsWith('.weight') && shapeOf(p.name).length === 2)
    .map((p) => p.name.slice(0, -'.weight'.length))
    .filter((m) => !m.endsWith('embed_tokens'));
  return [...new Set([...(quantized.has('lm_head') ? [] : ['lm_head']), ...kept])];
}

export async function quantizeModel(opts: QuantizeModelOptions): Promise<QuantizeSummary> {
  const spec = { command: 'quantize', out: opts.outDir, inputs: [opts.modelDir], force: opts.force };
  return withOutput(spec, (output) => quantizeInto(output, opts));
}

async function quantizeInto(output: Output, opts: QuantizeModelOptions): Promise<QuantizeSummary> {
  const t0 = performance.now();
  const backend = opts.backend ?? getBackend();
  const q = opts.quantizer;
  const sel: ModuleSelection = { targets: opts.targets?.length ? opts.targets : DEFAULT_TARGETS, skip: opts.skip ?? [] };
  const model = await openModelFolder(opts.modelDir);
  try {
    if ((model.config as Record<string, unknown>).quantization_config) {
      throw new PeftError('E_INPUT', `${join(opts.modelDir, 'config.json')}: model is already quantized (quantization_config present)`);
    }
    checkLlamaShapes(model);
    const names = model.tensorNames;
    const plan = names.map((name) => ({ name, module: selectModule(name, model.info(name).shape, sel) }));
    const infos = names.map((n) => model.info(n));
    const maxElems = plan.reduce((m, p) => (p.module ? Math.max(m, numel(model.info(p.name).shape)) : m), 0);
    const scratch = new Scratch(infos.reduce((m, i) => Math.max(m, i.byteLength), 0), maxElems);
    if (!plan.some((p) => p.module)) {
      throw new PeftError('E_INPUT', `${opts.modelDir}: no tensor matches the targets (${sel.targets.join(', ')})`);
    }
    const s: QuantizeSummary = {
      method: q.name, options: opts.options, backend: `${backend.name}/${backend.simd}`, tensors: names.length,
      quantizedTensors: 0, quantizedParams: 0, bytesBefore: 0, bytesAfter: 0, bitsPerParam: 0,
      meanAbsError: 0, maxAbsError: 0, largestTensorBytes: 0, seconds: 0, perTensor: [],
    };
    let errSum = 0;
    let quantBytes = 0;
    const inputBytes = infos.reduce((n, i) => n + i.byteLength, 0);
    // The ratio written so far, extrapolated; twice that while a shard's spill file and the shard coexist.
    const neededBytes = () => 2 * inputBytes * (s.bytesBefore ? s.bytesAfter / s.bytesBefore : 1);
    await output.write(async (tmp) => {
      const writer = new ShardedWriter(tmp, { maxShardBytes: opts.maxShardBytes });
      try {
        for (const [index, { name, module }] of plan.entries()) {
          const info = model.info(name);
          const data = scratch.bytes.subarray(0, info.byteLength);
          await model.fileOf(name).readInto(name, data);
          const raw: RawTensor = { dtype: info.dtype, shape: info.shape, data };
          const file = info.file;
          checkFiniteRaw(raw, { what: `tensor ${name}`, where: join(opts.modelDir, file) });
          s.bytesBefore += raw.data.byteLength;
          s.largestTensorBytes = Math.max(s.largestTensorBytes, raw.data.byteLength);
          let written: NamedRawTensor[];
          if (module) {
            const r = quantizeOne(opts, backend, scratch, module, raw, file);
            written = r.out;
            const n = numel(raw.shape);
            errSum += r.sum;
            s.maxAbsError = Math.max(s.maxAbsError, r.max);
            s.quantizedTensors++;
            s.quantizedParams += n;
            quantBytes += r.bytesOut;
            s.perTensor.push({
              name, shape: raw.shape, bytesIn: raw.data.byteLength, bytesOut: r.bytesOut, meanAbsError: r.sum / n, maxAbsError: r.max,
            });
          } else {
            written = [{ name, ...raw }];
          }
          for (const t of written) {
            s.bytesAfter += t.data.byteLength;
            await writer.add(t);
          }
          opts.onTensor?.({ index, total: plan.length, name, action: module ? 'quantized' : 'copied' });
        }
        await writer.finish();
      } catch (e) {
        await writer.abort();
        throw e;
      }
      const skipModules = unquantizedLinears(plan, (n) => model.info(n).shape);
      const config = { ...(model.config as Record<string, unknown>), quantization_config: q.config(opts.options, skipModules) };
      // Keep the source's float literals (`10000.0`) as transformers wrote them.
      const floatKeys = floatKeysOf(await readFile(join(opts.modelDir, 'config.json'), 'utf8'));
      await writeFile(join(tmp, 'config.json'), pyJsonDumps(config, { floatKeys }));
      await copyAuxFiles(model, tmp);
    }, { neededBytes });
    s.meanAbsError = s.quantizedParams ? errSum / s.quantizedParams : 0;
    s.bitsPerParam = s.quantizedParams ? (8 * quantBytes) / s.quantizedParams : 0;
    s.seconds = (performance.now() - t0) / 1000;
    return s;
  } finally {
    await model.close();
  }
}
