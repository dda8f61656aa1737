/**
 * models/: the Llama family (llama, mistral, qwen2) built from config.json: config, rotary tables,
 * modules with Hugging Face names, KV cache, and the hooks methods change the computation through.
 * Not here: tokenizers (tokenizer/), generation and evaluation loops (tasks/).
 */
export { llamaConfig, type LlamaConfig, type RopeScaling } from './config.js';
export { defaultInvFreq, llama3InvFreq, ropeInvFreq, ropeTables, Rotary } from './rope.js';
export { KvCache, type CacheSlot } from './kv-cache.js';
export { type HeadHook, type HeadOptions, type InputsHook, type ModelHooks, type PrefixHook } from './hooks.js';
export { tokenBatch, type TokenIds } from './tokens.js';
export {
  Attention, Block, Llama, LlamaModel, Mlp, type EmbeddingLike, type ForwardOptions, type LinearLike, type LlamaOutput,
  type RopeInput,
} from './llama.js';
