/**
 * LlamaConfig: everything the Llama-family forward pass needs from a Hugging Face config.json
 * (llama, mistral, qwen2), with transformers' defaults filled in. Shapes come from
 * io/hf-config.ts llamaDims (GQA, head_dim, biases, tied embeddings); this adds the numerics:
 * rms_norm_eps, rope_theta, rope_scaling, max_position_embeddings, sliding window, special ids.
 * Not here: rotary tables (rope.ts), modules (llama.ts).
 */
import { inputError } from '../errors.js';
import { llamaDims, type HfConfig, type LlamaDims, type LlamaModelType } from '../io/hf-config.js';

/**
 * rope_scaling as transformers' modeling_rope_utils.py reads it ("rope_type", or the legacy "type"):
 * linear divides every inverse frequency by `factor`; llama3 rescales by wavelength band (Llama 3.1);
 * dynamic (NTK) equals the default below max_position_embeddings, the only range we allow it in.
 */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'dynamic'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };

export interface LlamaConfig extends LlamaDims {
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  maxPositionEmbeddings: number;
  /** Attention window (mistral `sliding_window`, qwen2 with `use_sliding_window`); null = full causal. */
  slidingWindow: number | null;
  bosTokenId: number | null;
  /** config.json eos_token_id (an int or a list there). */
  eosTokenIds: number[];
}

/** transformers' per-architecture defaults for the fields config.json may omit. */
const DEFAULTS: Record<LlamaModelType, { maxPos: number; eps: number; theta: number }> = {
  llama: { maxPos: 2048, eps: 1e-6, theta: 10000 },
  mistral: { maxPos: 4096 * 32, eps: 1e-6, theta: 10000 },
  qwen2: { maxPos: 32768, eps: 1e-6, theta: 10000 },
};

function num(config: HfConfig, key: string, file: string, fallback: number, positive = true): number {
  const v = config[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || (positive && v <= 0)) {
    throw inputError('E_FORMAT', `${key} must be a ${positive ? 'positive ' : ''}number, got ${JSON.stringify(config[key])}`, file);
  }
  return v;
}

function tokenIds(v: unknown, key: string, file: string): number[] {
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  if (!list.every((x) => Number.isSafeInteger(x) && x >= 0)) throw inputError('E_FORMAT', `${key} must be a token id or a list of them`, file);
  return list as number[];
}

function ropeScaling(config: HfConfig, file: string): RopeScaling | null {
  const s = config.rope_scaling;
  if (s === undefined || s === null) return null;
  if (typeof s !== 'object' || Array.isArray(s)) throw inputError('E_FORMAT', 'rope_scaling must be an object or null', file);
  const o = s as HfConfig;
  const type = o.rope_type ?? o.type;
  const field = (k: string) => num(o, k, `${file} rope_scaling`, NaN);
  if (type === 'default') return null;
  if (type === 'linear' || type === 'dynamic') return { type, factor: field('factor') };
  if (type === 'llama3') {
    return {
      type, factor: field('factor'), lowFreqFactor: field('low_freq_factor'), highFreqFactor: field('high_freq_factor'),
      originalMaxPositionEmbeddings: field('original_max_position_embeddings'),
    };
  }
  throw inputError('E_FORMAT', `rope_scaling type ${JSON.stringify(type)} is not supported (default, linear, dynamic, llama3)`, file);
}

function slidingWindow(config: HfConfig, type: LlamaModelType, file: string): number | null {
  const w = config.sliding_window;
  // qwen2 only applies its window with use_sliding_window (Qwen2Config); mistral applies any non-null one.
  if (w === undefined || w === null || (type === 'qwen2' && config.use_sliding_window !== true) || type === 'llama') return null;
  return num(config, 'sliding_window', file, NaN);
}

/** The model config of a llama / mistral / qwen2 config.json; `file` names it in errors. */
export function llamaConfig(config: HfConfig, file = 'config.json'): LlamaConfig {
  const dims = llamaDims(config, file);
  const act = config.hidden_act ?? 'silu';
  if (act !== 'silu') throw inputError('E_FORMAT', `hidden_act ${JSON.stringify(act)} is not supported (silu)`, file);
  if (dims.headDim % 2 !== 0) throw inputError('E_FORMAT', `head_dim ${dims.headDim} must be even for rotary embeddings`, file);
  const d = DEFAULTS[dims.modelType];
  const bos = tokenIds(config.bos_token_id, 'bos_token_id', file);
  return {
    ...dims,
    rmsNormEps: num(config, 'rms_norm_eps', file, d.eps),
    ropeTheta: num(config, 'rope_theta', file, d.theta),
    ropeScaling: ropeScaling(config, file),
    maxPositionEmbeddings: num(config, 'max_position_embeddings', file, d.maxPos),
    slidingWindow: slidingWindow(config, dims.modelType, file),
    bosTokenId: bos.length > 0 ? bos[0] : null,
    eosTokenIds: tokenIds(config.eos_token_id, 'eos_token_id', file),
  };
}
