/**
 * Hugging Face `config.json`: reading it, and the tensor shapes a Llama-family checkpoint
 * (llama, mistral, qwen2) must have according to it, so a mismatched folder fails with a
 * message naming the tensor before any work starts. `checkConfigTensors` is the check every
 * command gets (through ModelFolder.open): it walks the expected tensors lazily and stops at the
 * first missing one, so a hostile `num_hidden_layers` costs no more than the tensors present.
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

/** Every tensor a Llama-family checkpoint holds, [name, shape], in model order; lazy, so a hostile layer count costs nothing. */
function* llamaTensors(d: LlamaDims): Generator<[string, number[]]> {
  const H = d.hiddenSize, F = d.intermediateSize, Q = d.numHeads * d.headDim, KV = d.numKvHeads * d.headDim;
  yield ['model.embed_tokens.weight', [d.vocabSize, H]];
  for (let i = 0; i < d.numLayers; i++) {
    const p = `model.layers.${i}`;
    yield [`${p}.input_layernorm.weight`, [H]];
    const proj: [string, number, number, boolean][] = [
      ['self_attn.q_proj', Q, H, d.qkvBias], ['self_attn.k_proj', KV, H, d.qkvBias], ['self_attn.v_proj', KV, H, d.qkvBias],
      ['self_attn.o_proj', H, Q, d.oBias],
    ];
    for (const [name, out, inp, bias] of proj) {
      yield [`${p}.${name}.weight`, [out, inp]];
      if (bias) yield [`${p}.${name}.bias`, [out]];
    }
    yield [`${p}.post_attention_layernorm.weight`, [H]];
    for (const [name, out, inp] of [['mlp.gate_proj', F, H], ['mlp.up_proj', F, H], ['mlp.down_proj', H, F]] as const) {
      yield [`${p}.${name}.weight`, [out, inp]];
      if (d.mlpBias) yield [`${p}.${name}.bias`, [out]];
    }
  }
  yield ['model.norm.weight', [H]];
  if (!d.tieEmbeddings) yield ['lm_head.weight', [d.vocabSize, H]];
}

/** Every tensor a Llama-family checkpoint holds, name -> shape, in model order (for writers and tests: it is as big as the config says). */
export function llamaShapes(config: HfConfig, file = 'config.json'): Map<string, number[]> {
  return new Map(llamaTensors(llamaDims(config, file)));
}

/** What the checks need to know about the stored tensors (a ModelFolder fits). */
export interface ShapeSource {
  readonly tensorNames: readonly string[];
  info(name: string): { dtype: Dtype; shape: readonly number[]; file: string };
}

const FLOAT_DTYPES: ReadonlySet<Dtype> = new Set(['F64', 'F32', 'F16', 'BF16']);

/**
 * A quantized Linear is stored in its quantizer's packed layout, so the float shape check does not
 * apply: bitsandbytes keeps a packed U8 (4-bit) or I8 (8-bit) `.weight` next to quant-state tensors
 * (`.weight.absmax`, `.weight.quant_state.*`, ... or `.SCB`); in a folder with `quantization_config`
 * any non-float weight is the quantizer's (a plugin's layout included).
 */
function isQuantized(name: string, dtype: Dtype, names: ReadonlySet<string>, all: readonly string[], quantizedFolder: boolean): boolean {
  if (FLOAT_DTYPES.has(dtype)) return false;
  if (quantizedFolder) return true;
  if (dtype !== 'U8' && dtype !== 'I8') return false;
  const module = name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : name;
  return names.has(`${module}.SCB`) || all.some((n) => n.startsWith(`${name}.`));
}

const fmtShape = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * The decoder layer a tensor belongs to: `model.layers.N.`, `transformer.h.N.`, `gpt_neox.layers.N.`, `h.N.`.
 * One prefix segment at most, so a vision tower's blocks (`visual.blocks.N`, `vision_model.encoder.layers.N`) do not count.
 */
const LAYER_INDEX = /^(?:[A-Za-z_]+\.)?(?:layers|h)\.(\d+)\./;

function layerOf(name: string): number | undefined {
  const m = LAYER_INDEX.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** "layers 0..3" / "no layers": what the weights hold, for messages. */
function heldLayers(names: readonly string[]): string {
  let top = -1;
  for (const n of names) top = Math.max(top, layerOf(n) ?? -1);
  return top < 0 ? 'no decoder layers' : `layers 0..${top}`;
}

/**
 * Throws for the first disagreement between a Llama-family config.json and the stored tensors, in model
 * order: a tensor the config implies that is missing (E_FORMAT naming it: a config claiming 10^7 layers for
 * a 4-layer model stops at layer 4, after as many steps as there are tensors), a shape that differs (E_SHAPE),
 * a layer beyond num_hidden_layers (E_FORMAT). Other extra tensors are allowed.
 * Call as `checkLlamaShapes(model)` with a ModelFolder, or `checkLlamaShapes(config, source)`.
 */
export function checkLlamaShapes(model: ShapeSource & { readonly config: HfConfig; readonly dir?: string }): void;
export function checkLlamaShapes(config: HfConfig, source: ShapeSource, file?: string): void;
export function checkLlamaShapes(a: HfConfig | (ShapeSource & { config: HfConfig; dir?: string }), b?: ShapeSource, file?: string): void {
  const source = b ?? (a as ShapeSource);
  const config = b ? (a as HfConfig) : (a as { config: HfConfig }).config;
  const dir = b ? undefined : (a as { dir?: string }).dir;
  const cfgFile = file ?? (dir ? join(dir, 'config.json') : 'config.json');
  const d = llamaDims(config, cfgFile);
  const all = source.tensorNames;
  const names = new Set(all);
  const quantizedFolder = config.quantization_config !== undefined && config.quantization_config !== null;
  for (const [name, want] of llamaTensors(d)) {
    if (!names.has(name)) {
      const why = layerOf(name) === undefined ? '' : ` (num_hidden_layers is ${d.numLayers}; the weights hold ${heldLayers(all)})`;
      throw inputError('E_FORMAT', `tensor ${name} is missing${why}`, cfgFile);
    }
    const { dtype, shape, file: where } = source.info(name);
    if (shape.length === want.length && shape.every((s, i) => s === want[i])) continue;
    if (isQuantized(name, dtype, names, all, quantizedFolder)) continue;
    throw inputError('E_SHAPE', `tensor ${name} has shape ${fmtShape(shape)} but config.json implies ${fmtShape(want)}`, where);
  }
  const beyond = all.find((n) => n.startsWith('model.layers.') && (layerOf(n) ?? 0) >= d.numLayers);
  if (beyond) throw inputError('E_FORMAT', `tensor ${beyond} is beyond num_hidden_layers (${d.numLayers})`, cfgFile);
}

/** The keys without which a Llama config implies no shapes (transformers would fill in its own defaults). */
const LLAMA_SHAPE_KEYS = ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'vocab_size'];

/**
 * The one check every command runs on a model before any work (ModelFolder.open calls it): what config.json
 * claims must be what the tensors hold. A Llama-family config that states its shapes is checked tensor by
 * tensor (checkLlamaShapes); any other config (another architecture, or a partial one) by its layer count:
 * every layer up to num_hidden_layers must have tensors (extra layers are allowed there: multi-token
 * prediction heads are stored as layer N). Commands that build the model need the complete config
 * (models/config.ts), so nothing runs on a config that claims more than is there.
 */
export function checkConfigTensors(config: HfConfig, source: ShapeSource, file = 'config.json'): void {
  const llama = LLAMA_FAMILY.includes(config.model_type as LlamaModelType);
  if (llama && LLAMA_SHAPE_KEYS.every((k) => config[k] !== undefined)) return checkLlamaShapes(config, source, file);
  const n = config.num_hidden_layers;
  if (n === undefined || n === null) return;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n <= 0) {
    throw inputError('E_FORMAT', `num_hidden_layers must be a positive integer, got ${JSON.stringify(n)}`, file);
  }
  const present = new Set<number>();
  for (const t of source.tensorNames) {
    const i = layerOf(t);
    if (i !== undefined) present.add(i);
  }
  if (present.size === 0) return; // a naming we do not know: nothing to compare
  for (let i = 0; i < n; i++) {
    if (!present.has(i)) throw inputError('E_FORMAT', `num_hidden_layers is ${n} but no tensor of layer ${i} is present (the weights hold ${heldLayers(source.tensorNames)})`, file);
  }
}
