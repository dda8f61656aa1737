/**
 * adapter_config.json of each method, both ways.
 *
 * Writing: every field the config dataclass has, as save_pretrained writes it (huggingface/peft v0.20.0,
 * commit 167fcb0f2: config.py PeftConfigMixin / PeftConfig / PromptLearningConfig, tuners/prompt_tuning,
 * p_tuning, prefix_tuning config.py; sorting and inference_mode true are core's writePeftAdapter). DePT's is
 * PromptTuningLoRAConfig as ZhengxiangShi/DePT writes it (checkpoints/<task>/adapter_config.json, peft_type
 * PROMPT_TUNING_LORA, token_dim also as hidden_size); NTK_PREFIX's is ours (PeftConfig's fields + its dims).
 *
 * Reading (loadAdapter): PEFT's from_peft_type keeps only known fields and needs only peft_type, so configs of
 * older releases (v0.6.0 had no peft_version, modules_to_save, tokenizer_kwargs, init_weights) and newer ones
 * (fields we do not know) load; inference_mode false (a config saved before training) is fine. What cannot
 * be applied to a decoder-only model (another task type, two transformer submodules) is refused.
 * Not here: file I/O (format.ts), dims (dims.ts).
 */
import { basename, join, resolve } from 'node:path';
import { inputError } from '@peft/core-tensor';
import type { PromptDims } from './dims.js';
import type { PromptInitSettings } from './options.js';

/** The PEFT release whose adapter_config.json layout is written. */
export const PEFT_VERSION = '0.20.0';

/** base_model_name_or_path as written: the base folder's name (core also strips absolute paths). */
export const baseName = (baseModelDir: string): string => basename(resolve(baseModelDir));

/** PeftConfigMixin + PeftConfig + PromptLearningConfig fields. */
function promptLearning(peftType: string, n: number, d: PromptDims, base: string): Record<string, unknown> {
  return {
    auto_mapping: null, base_model_name_or_path: base, inference_mode: true, modules_to_save: null,
    num_attention_heads: d.numHeads, num_layers: d.numLayers, num_transformer_submodules: 1, num_virtual_tokens: n,
    peft_type: peftType, peft_version: PEFT_VERSION, revision: null, task_type: 'CAUSAL_LM', token_dim: d.tokenDim,
  };
}

/** PromptTuningConfig: tokenizer_name_or_path is the base folder for TEXT (its tokenizer is what we used), else null. */
export function promptTuningConfig(n: number, d: PromptDims, base: string, s: PromptInitSettings): Record<string, unknown> {
  return {
    ...promptLearning('PROMPT_TUNING', n, d, base), prompt_tuning_init: s.init, prompt_tuning_init_text: s.text ?? null,
    tokenizer_kwargs: null, tokenizer_name_or_path: s.init === 'TEXT' ? base : null,
  };
}

export interface PTuningFields { hidden: number; kind: 'MLP' | 'LSTM'; numLayers: number; dropout: number }

/** PromptEncoderConfig. */
export function pTuningConfig(n: number, d: PromptDims, base: string, p: PTuningFields): Record<string, unknown> {
  return {
    ...promptLearning('P_TUNING', n, d, base), encoder_dropout: p.dropout, encoder_hidden_size: p.hidden,
    encoder_num_layers: p.numLayers, encoder_reparameterization_type: p.kind,
  };
}

/** PrefixTuningConfig (d after the GQA rewrite). */
export function prefixTuningConfig(n: number, d: PromptDims, base: string, p: { hidden: number; projection: boolean; zero: boolean }): Record<string, unknown> {
  return {
    ...promptLearning('PREFIX_TUNING', n, d, base), encoder_hidden_size: p.hidden, init_weights: p.zero ? 'zero' : null,
    prefix_projection: p.projection,
  };
}

export interface DeptFields { r: number; alpha: number; maxLength: number }

/** DePT's PromptTuningLoRAConfig, every field (bias, init_lora_weights and the save/load flags at their defaults). */
export function deptConfig(n: number, d: PromptDims, base: string, s: PromptInitSettings, p: DeptFields): Record<string, unknown> {
  return {
    base_model_name_or_path: base, bias: 'none', hidden_size: d.tokenDim, inference_mode: true, init_lora_weights: true,
    load_lora_embedding_B: true, load_lora_embeddings: true, lora_alpha: p.alpha, max_length: p.maxLength,
    num_attention_heads: d.numHeads, num_layers: d.numLayers, num_transformer_submodules: 1, num_virtual_tokens: n,
    peft_type: 'PROMPT_TUNING_LORA', prompt_tuning_init: s.init, prompt_tuning_init_text: s.text ?? null, r: p.r,
    revision: null, save_lora_embeddings: true, task_type: 'CAUSAL_LM', token_dim: d.tokenDim,
    tokenizer_name_or_path: s.init === 'TEXT' ? base : null,
  };
}

/** NTK_PREFIX (ours): the model dims the tensors were made for, and the init. */
export function ntkConfig(c: { numLayers: number; numHeads: number; headDim: number }, base: string, initStd: number): Record<string, unknown> {
  return {
    auto_mapping: null, base_model_name_or_path: base, head_dim: c.headDim, inference_mode: true, init_std: initStd,
    num_attention_heads: c.numHeads, num_layers: c.numLayers, peft_type: 'NTK_PREFIX', revision: null, task_type: 'CAUSAL_LM',
  };
}

/** Reads saved configs for loading: what is missing takes PEFT's default, unknown fields are ignored. */
export class SavedConfig {
  readonly file: string;
  constructor(readonly c: Record<string, unknown>, dir: string) {
    this.file = join(dir, 'adapter_config.json');
  }

  #bad(msg: string): Error {
    return inputError('E_FORMAT', msg, this.file);
  }

  /** A non-negative integer field, or `fallback` when absent / null. */
  int(key: string, fallback?: number): number | undefined {
    const v = this.c[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw this.#bad(`${key} must be a non-negative integer, got ${JSON.stringify(v)}`);
    return v;
  }

  num(key: string, fallback: number): number {
    const v = this.c[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.#bad(`${key} must be a number, got ${JSON.stringify(v)}`);
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.c[key] ?? fallback;
    if (typeof v !== 'boolean') throw this.#bad(`${key} must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  /** Refuses configs made for something other than one decoder-only model (PeftModelForCausalLM). */
  checkDecoderOnly(): void {
    const task = this.c.task_type;
    if (task !== undefined && task !== null && task !== 'CAUSAL_LM') {
      throw this.#bad(`task_type ${JSON.stringify(task)}: only CAUSAL_LM prompt adapters apply to a decoder-only model`);
    }
    const s = this.int('num_transformer_submodules', 1);
    if (s !== 1) throw this.#bad(`num_transformer_submodules ${s}: an encoder-decoder adapter (decoder-only models have 1)`);
  }

  /** num_virtual_tokens, checked against the rows the tensor has (absent: the rows). */
  virtualTokens(rows: number): number {
    const n = this.int('num_virtual_tokens', rows)!;
    if (n !== rows || n < 1) throw this.#bad(`num_virtual_tokens is ${n} but prompt_embeddings has ${rows} rows`);
    return n;
  }
}
