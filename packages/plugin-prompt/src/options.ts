/**
 * The options of the five methods (what `peft methods` prints and `--set key=value` / recipes are checked
 * against) and the typed settings each method works with. Names and defaults are PEFT's config fields
 * (huggingface/peft v0.20.0 src/peft/config.py PromptLearningConfig, tuners/prompt_tuning/config.py,
 * tuners/p_tuning/config.py, tuners/prefix_tuning/config.py), DePT's (ZhengxiangShi/DePT
 * peft/tuners/prompt_tuning_lora.py PromptTuningLoRAConfig) and NTK-attention's (ntk-prefix.md: ntk_glm.py).
 * num_virtual_tokens has no default, as in PEFT: it is required. Dimensions PEFT fills from config.json
 * (token_dim, num_layers, num_attention_heads) are not options: dims.ts derives them from the model.
 * Not here: the dims (dims.ts), adapter_config.json (peft-config.ts).
 */
import { PeftError, type OptionsSchema, type ResolvedOptions } from '@peft/core-tensor';

const N = { type: 'integer', min: 1, max: 4096, description: 'Number of virtual tokens N (required, as in PEFT)' } as const;
const INIT = {
  type: 'enum', choices: ['RANDOM', 'SAMPLE_VOCAB', 'TEXT'], default: 'RANDOM',
  description: 'RANDOM: N(0, 1); SAMPLE_VOCAB: rows of the embedding at uniformly drawn ids; TEXT: rows of the init text\'s ids (BOS included, repeated and cut to N)',
} as const;
const INIT_TEXT = { type: 'string', description: 'The text TEXT init tokenizes (with the base model\'s tokenizer)' } as const;
const HIDDEN = { type: 'integer', min: 1, description: 'Hidden size of the reparameterisation (default: token_dim, as PEFT fills it)' } as const;

export const PROMPT_TUNING_OPTIONS = {
  num_virtual_tokens: N,
  prompt_tuning_init: INIT,
  prompt_tuning_init_text: INIT_TEXT,
} as const satisfies OptionsSchema;

export const P_TUNING_OPTIONS = {
  num_virtual_tokens: N,
  encoder_reparameterization_type: { type: 'enum', choices: ['MLP', 'LSTM'], default: 'MLP', description: 'MLP: 3 Linear layers with ReLU; LSTM: a bidirectional LSTM, then 2 Linear layers' },
  encoder_hidden_size: HIDDEN,
  encoder_num_layers: { type: 'integer', min: 1, max: 16, default: 2, description: 'LSTM layers (ignored for MLP, as in PEFT)' },
  encoder_dropout: { type: 'number', min: 0, max: 0.99, default: 0, description: 'Dropout between LSTM layers (unused by MLP, as in PEFT)' },
} as const satisfies OptionsSchema;

export const PREFIX_TUNING_OPTIONS = {
  num_virtual_tokens: N,
  prefix_projection: { type: 'boolean', default: false, description: 'Train the prefix through embedding -> Linear -> Tanh -> Linear (saved as its output)' },
  encoder_hidden_size: HIDDEN,
  init_weights: { type: 'enum', choices: ['random', 'zero'], default: 'random', description: 'zero: an all-zero prefix (the projection\'s last Linear with prefix_projection); saved as init_weights "zero"' },
} as const satisfies OptionsSchema;

export const DEPT_OPTIONS = {
  num_virtual_tokens: N,
  prompt_tuning_init: INIT,
  prompt_tuning_init_text: INIT_TEXT,
  r: { type: 'integer', min: 1, default: 8, description: 'Rank of the position-indexed update A B of the input embeddings' },
  lora_alpha: { type: 'number', min: 0, default: 8, description: 'Scale: the update is (lora_alpha / sqrt r) A B' },
  max_length: { type: 'integer', min: 1, max: 1_000_000, default: 256, description: 'Rows of A: input positions 0..max_length-1 get an update, later ones none' },
  prompt_lr: { type: 'number', min: 0, description: 'Learning rate of the soft prompt (default: --lr)' },
  lora_lr: { type: 'number', min: 0, description: 'Learning rate of A and B (default: --lr)' },
} as const satisfies OptionsSchema;

export const NTK_PREFIX_OPTIONS = {
  init_std: { type: 'number', min: 0, default: 1e-4, description: 'k and Z start as N(0, init_std^2) (randn / 10000 in ntk_glm.py)' },
} as const satisfies OptionsSchema;

export type PromptInit = 'RANDOM' | 'SAMPLE_VOCAB' | 'TEXT';

/** num_virtual_tokens, which every prompt-learning method requires. */
export function virtualTokens(method: string, o: ResolvedOptions): number {
  const n = o.num_virtual_tokens;
  if (typeof n !== 'number') throw new PeftError('E_INPUT', `${method}: num_virtual_tokens is required (--set num_virtual_tokens=N)`);
  return n;
}

export interface PromptInitSettings {
  init: PromptInit;
  text: string | undefined;
}

/** prompt_tuning_init and its text, checked as PromptTuningConfig.__post_init__ does (a text with another init is kept, unused). */
export function promptInit(method: string, o: ResolvedOptions): PromptInitSettings {
  const init = (o.prompt_tuning_init ?? 'RANDOM') as PromptInit;
  const text = o.prompt_tuning_init_text as string | undefined;
  if (init === 'TEXT' && (text === undefined || text === '')) {
    throw new PeftError('E_INPUT', `${method}: prompt_tuning_init TEXT needs prompt_tuning_init_text`);
  }
  return { init, text };
}
