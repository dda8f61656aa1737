/**
 * `peft inspect` as a library call: what a model folder, a quantized folder, a PEFT adapter
 * folder or a single safetensors file holds: architecture, tensors, dtypes, logical parameter count, bytes and
 * quantization. Reads headers (and the tiny quant-state tensors) only, never the weights.
 */
import { stat } from 'node:fs/promises';
import { numel, type Dtype } from '../dtype.js';
import { PeftError } from '../errors.js';
import { describePeftAdapter, openModelFolder, readJsonObject, SafetensorsFile, type PeftAdapterSummary } from '../io/index.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describeQuantization } from '../quant/index.js';
import type { Registry } from '../plugin/registry.js';
import { describeCompressed, type CompressedSummary } from './adapters/decompress.js';

export interface DtypeCount {
  tensors: number;
  bytes: number;
}

export interface InspectReport {
  path: string;
  kind: 'model' | 'safetensors' | 'adapter' | 'compressed';
  architecture?: string;
  modelType?: string;
  shape?: Record<string, number>;
  files: number;
  tensors: number;
  parameters: number;
  bytes: number;
  dtypes: Partial<Record<Dtype, DtypeCount>>;
  quantization?: ReturnType<typeof describeQuantization>;
  metadata?: Record<string, string>;
  adapter?: PeftAdapterSummary;
  /** A prompt-learning adapter (its config has PEFT's PromptLearningConfig.num_virtual_tokens). */
  prompt?: PromptSummary;
  /** A `.peftz` container (peft compress): method, counts and the ratio against fp16. */
  compressed?: CompressedSummary;
}

/** Statistics tensors of bitsandbytes layouts: stored, but not parameters of the model. */
const QUANT_AUX = /\.(weight\.(absmax|quant_map|nested_absmax|nested_quant_map|quant_state\.[\w]+)|SCB|weight_format)$/;
const QUANT_STATE = /\.weight\.quant_state\.bitsandbytes__(nf4|fp4)$/;

interface TensorLike {
  name: string;
  dtype: Dtype;
  shape: number[];
  byteLength: number;
}

async function tally(path: string, kind: InspectReport['kind'], list: TensorLike[], readSmall: (n: string) => Promise<Uint8Array>) {
  const r: InspectReport = { path, kind, files: 1, tensors: list.length, parameters: 0, bytes: 0, dtypes: {} };
  for (const t of list) {
    r.bytes += t.byteLength;
    const d = (r.dtypes[t.dtype] ??= { tensors: 0, bytes: 0 });
    d.tensors++;
    d.bytes += t.byteLength;
    if (QUANT_STATE.test(t.name)) {
      // A 4-bit weight is stored packed; its logical shape lives in the quant-state JSON.
      const state = JSON.parse(Buffer.from(await readSmall(t.name)).toString('utf8')) as { shape?: number[] };
      const packed = list.find((x) => x.name === t.name.replace(/\.quant_state\.\w+$/, ''));
      if (state.shape && packed) r.parameters += numel(state.shape) - numel(packed.shape);
    }
    if (!QUANT_AUX.test(t.name)) r.parameters += numel(t.shape);
  }
  return r;
}

export interface PromptSummary {
  virtualTokens: number;
  /** How the prompt started or is produced: prompt_tuning_init, encoder_reparameterization_type, or the prefix's. */
  init: string;
  /** Every tensor's shape, e.g. prompt_embeddings [20, 4096]. */
  shapes: Record<string, number[]>;
}

/** N, the init and the shapes of a prompt-learning adapter (PEFT config fields; prefix: init_weights / prefix_projection). */
async function describePrompt(dir: string): Promise<PromptSummary | undefined> {
  const c = await readJsonObject(join(dir, 'adapter_config.json'));
  if (typeof c.num_virtual_tokens !== 'number') return undefined;
  const prefix = c.peft_type === 'PREFIX_TUNING' ? `${c.init_weights === 'zero' ? 'ZERO' : 'RANDOM'}${c.prefix_projection === true ? ' (projection)' : ''}` : undefined;
  const init = String(c.prompt_tuning_init ?? c.encoder_reparameterization_type ?? prefix ?? 'RANDOM');
  const f = await SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
  await f.close();
  return { virtualTokens: c.num_virtual_tokens, init, shapes: Object.fromEntries(f.tensors.map((t) => [t.name, [...t.shape]])) };
}

function configShape(config: Record<string, unknown>): Record<string, number> {
  const keys = ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'vocab_size'];
  return Object.fromEntries(keys.filter((k) => typeof config[k] === 'number').map((k) => [k, config[k] as number]));
}

export interface InspectOptions {
  /** Names an adapter's modules through the method owning its peft_type (its key naming). */
  registry?: Registry;
}

export async function inspectPath(path: string, opts: InspectOptions = {}): Promise<InspectReport> {
  const st = await stat(path).catch(() => {
    throw new PeftError('E_NOT_FOUND', `${path}: no such file or folder`);
  });
  const compressed = await describeCompressed(path);
  if (compressed) return { path, kind: 'compressed', files: 1, tensors: compressed.tensors, parameters: compressed.params, bytes: compressed.bytes, dtypes: {}, compressed };
  if (st.isFile()) {
    const f = await SafetensorsFile.open(path);
    try {
      const r = await tally(path, 'safetensors', f.tensors, (n) => f.read(n));
      if (Object.keys(f.metadata).length) r.metadata = f.metadata;
      return r;
    } finally {
      await f.close();
    }
  }
  if (existsSync(join(path, 'adapter_config.json'))) {
    const keysFor = (peftType: string) => opts.registry?.findMethod(peftType)?.keys;
    const adapter = await describePeftAdapter(path, { keysFor });
    const weights = await inspectPath(join(adapter.dir, 'adapter_model.safetensors'));
    const prompt = await describePrompt(adapter.dir);
    return { ...weights, path, kind: 'adapter', adapter, ...(prompt && { prompt }) };
  }
  const m = await openModelFolder(path);
  try {
    const list = m.tensorNames.map((name) => ({ name, ...m.info(name) }));
    const r = await tally(path, 'model', list, async (n) => (await m.read(n)).data);
    const config = m.config as Record<string, unknown>;
    r.files = new Set(list.map((t) => t.file)).size;
    r.architecture = Array.isArray(config.architectures) ? String(config.architectures[0]) : undefined;
    r.modelType = typeof config.model_type === 'string' ? config.model_type : undefined;
    r.shape = configShape(config);
    r.quantization = describeQuantization(config, m.tensorNames);
    return r;
  } finally {
    await m.close();
  }
}
