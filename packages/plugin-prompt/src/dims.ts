/**
 * The dimensions PEFT fills into a prompt-learning config from the base model's config.json
 * (huggingface/peft src/peft/utils/other.py `_prepare_prompt_learning_config`): num_layers, token_dim
 * (hidden_size), num_attention_heads, and for PREFIX_TUNING on a config with num_key_value_heads (every
 * Llama-family config.json has it, MHA included, so the rule always applies here) the GQA rewrite
 * token_dim = head_dim x num_key_value_heads, num_attention_heads = num_key_value_heads, with head_dim
 * from config.json (our LlamaConfig.headDim: head_dim, else hidden_size / num_attention_heads).
 * encoder_hidden_size defaults to token_dim after that rewrite. num_transformer_submodules is 1 (decoder-only).
 * Not here: the options (options.ts), what the config file holds (peft-config.ts).
 */
import type { LlamaConfig } from '@peft/core-tensor';

export interface PromptDims {
  numLayers: number;
  /** D: the width of one virtual token (hidden_size), or of one layer's K (or V) for a prefix. */
  tokenDim: number;
  /** H: attention heads as the config stores them (KV heads for a prefix). */
  numHeads: number;
}

export function promptDims(c: LlamaConfig, prefix: boolean): PromptDims {
  if (!prefix) return { numLayers: c.numLayers, tokenDim: c.hiddenSize, numHeads: c.numHeads };
  return { numLayers: c.numLayers, tokenDim: c.headDim * c.numKvHeads, numHeads: c.numKvHeads };
}
