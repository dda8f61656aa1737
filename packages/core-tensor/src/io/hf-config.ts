/**
 * Hugging Face `config.json`: reading it, and the tensor shapes a Llama-family checkpoint
 * (llama, mistral, qwen2) must have according to it, so a mismatched folder fails with a
 * message naming the tensor before any work starts.
 * Shapes are PyTorch's: nn.Linear weight is [out_features, in_features].
 * Not here: building modules from the config (models/), quantization_config parsing (quant/).
 */
import { readJsonObject } from './json-file.js';
import { join } from 'node:path';
import { inputError } from '../errors.js';
import type { Dtype } from '../dtype.js';

export type HfConfig = Record<string, unknown>;

export const LLAMA_FAMILY = ['llama', 'mistral', 'qwen2'] as const;
export type LlamaModelType = (typeof LLAMA_FAMILY)[number];

/** Reads `<dir>/config.json`; it must be a JSON object. */
export async function readHfConfig(dir: string): Promise<HfConfig> {
  return (await readJsonObject(join(dir, 'config.json'))) as HfConfig;
}

/** The dimensions that decide every tensor shape, with transformers' defaults filled in. */
export interface LlamaDims {
  modelType: LlamaModelType;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  tieEmbeddings: boolean;
  /** q/k/v projections carry a bias (always for qwen2; `attention_bias` for llama). */
  qkvBias: boolean;
  /** o_proj carries a bias (llama `attention_bias`). */
  oBias: boolean;
  /** gate/up/down carry a bias (llama `mlp_bias`). */
  mlpBias: boolean;
}

function posInt(config: HfConfig, key: string, file: string, fallback?: number): number {
  const v = config[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0)
    throw inputError('E_FORMAT', `${key} must be a positive integer, got ${JSON.stringify(config[key])}`, file);
  return v;
}

function bool(config: HfConfig, key: string, file: string, fallback: boolean): boolean {
  const v = config[key] ?? fallback;
  if (typeof v !== 'boolean') throw inputError('E_FORMAT', `${key} must be true or false, got ${JSON.stringify(v)}`, file);
  return v;
}

export function llamaDims(config: HfConfig, file = 'config.json'): LlamaDims {
  const modelType = config.model_type;
  if (!LLAMA_FAMILY.includes(modelType as LlamaModelType))
    throw inputError('E_FORMAT', `model_type ${JSON.stringify(modelType)} is not a Llama-family model (${LLAMA_FAMILY.join(', ')})`, file);
  const hiddenSize = posInt(config, 'hidden_size', file);
  const numHeads = posInt(config, 'num_attention_heads', file);
  const numKvHeads = posInt(config, 'num_key_value_heads', file, numHeads);
  if (numHeads % numKvHeads !== 0)
    throw inputError('E_FORMAT', `num_attention_heads (${numHeads}) is not a multiple of num_key_value_heads (${numKvHeads})`, file);
  if (config.head_dim == null && hiddenSize % numHeads !== 0)
    throw inputError('E_FORMAT', `hidden_size (${hiddenSize}) is not a multiple of num_attention_heads (${numHeads}) and head_dim is not set`, file);
  const headDim = posInt(config, 'head_dim', file, hiddenSize / numHeads);
  const attnBias = modelType === 'llama' && bool(config, 'attention_bias', file, false);
  return {
    modelType: modelType as LlamaModelType,
    hiddenSize,
    intermediateSize: posInt(config, 'intermediate_size', file),
    numLayers: posInt(config, 'num_hidden_layers', file),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: posInt(config, 'vocab_size', file),
    // LlamaConfig, MistralConfig and Qwen2Config all default tie_word_embeddings to False.
    tieEmbeddings: bool(config, 'tie_word_embeddings', file, false),
    qkvBias: modelType === 'qwen2' || attnBias,
    oBias: attnBias,
    mlpBias: modelType === 'llama' && bool(config, 'mlp_bias', file, false),
  };
}

/** Every tensor a Llama-family checkpoint holds, name -> shape, in model order. */
export function llamaShapes(config: HfConfig, file = 'config.json'): Map<string, number[]> {
  const d = llamaDims(config, file);
  const H = d.hiddenSize, F = d.intermediateSize, Q = d.numHeads * d.headDim, KV = d.numKvHeads * d.headDim;
  const m = new Map<string, number[]>();
  m.set('model.embed_tokens.weight', [d.vocabSize, H]);
  for (let i = 0; i < d.numLayers; i++) {
    const p = `model.layers.${i}`;
    m.set(`${p}.input_layernorm.weight`, [H]);
    const proj: [string, number, number, boolean][] = [
      ['self_attn.q_proj', Q, H, d.qkvBias], ['self_attn.k_proj', KV, H, d.qkvBias], ['self_attn.v_proj', KV, H, d.qkvBias],
      ['self_attn.o_proj', H, Q, d.oBias],
    ];
    for (const [name, out, inp, bias] of proj) {
      m.set(`${p}.${name}.weight`, [out, inp]);
      if (bias) m.set(`${p}.${name}.bias`, [out]);
    }
    m.set(`${p}.post_attention_layernorm.weight`, [H]);
    for (const [name, out, inp] of [['mlp.gate_proj', F, H], ['mlp.up_proj', F, H], ['mlp.down_proj', H, F]] as const) {
      m.set(`${p}.${name}.weight`, [out, inp]);
      if (d.mlpBias) m.set(`${p}.${name}.bias`, [out]);
    }
  }
  m.set('model.norm.weight', [H]);
  if (!d.tieEmbeddings) m.set('lm_head.weight', [d.vocabSize, H]);
  return m;
}

/** What checkLlamaShapes needs to know about the stored tensors (a ModelFolder fits). */
export interface ShapeSource {
  readonly tensorNames: readonly string[];
  info(name: string): { dtype: Dtype; shape: readonly number[]; file: string };
}

/**
 * bitsandbytes stores a quantized Linear as a packed U8 (4-bit) or I8 (8-bit) `.weight` next to
 * quant-state tensors (`.weight.absmax`, `.weight.quant_state.*`, ... or `.SCB`); its stored shape is
 * the packed one, so the float shape check does not apply.
 */
function isQuantized(name: string, dtype: Dtype, names: ReadonlySet<string>, all: readonly string[]): boolean {
  if (dtype !== 'U8' && dtype !== 'I8') return false;
  const module = name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : name;
  return names.has(`${module}.SCB`) || all.some((n) => n.startsWith(`${name}.`));
}

const fmtShape = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * Throws E_SHAPE for the first known tensor whose shape disagrees with config.json. Extra tensors are allowed.
 * Call as `checkLlamaShapes(model)` with a ModelFolder, or `checkLlamaShapes(config, source)`.
 */
export function checkLlamaShapes(model: ShapeSource & { readonly config: HfConfig; readonly dir?: string }): void;
export function checkLlamaShapes(config: HfConfig, source: ShapeSource): void;
export function checkLlamaShapes(a: HfConfig | (ShapeSource & { config: HfConfig; dir?: string }), b?: ShapeSource): void {
  const source = b ?? (a as ShapeSource);
  const config = b ? (a as HfConfig) : (a as { config: HfConfig }).config;
  const dir = b ? undefined : (a as { dir?: string }).dir;
  const expected = llamaShapes(config, dir ? join(dir, 'config.json') : 'config.json');
  const names = new Set(source.tensorNames);
  for (const [name, want] of expected) {
    if (!names.has(name)) continue;
    const { dtype, shape, file } = source.info(name);
    if (shape.length === want.length && shape.every((s, i) => s === want[i])) continue;
    if (isQuantized(name, dtype, names, source.tensorNames)) continue;
    throw inputError('E_SHAPE', `tensor ${name} has shape ${fmtShape(shape)} but config.json implies ${fmtShape(want)}`, file);
  }
}
