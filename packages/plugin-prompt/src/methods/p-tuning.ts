/**
 * `p-tuning` [P_TUNING] (Liu et al. 2021, as huggingface/peft implements it: tuners/p_tuning): N virtual
 * tokens produced by an encoder over a trainable embedding, MLP (default) or bidirectional LSTM
 * (encoders.ts), prepended like prompt tuning. encoder_num_layers only shapes the LSTM and encoder_dropout
 * only acts between LSTM layers (PEFT ignores both for MLP). The saved `prompt_embeddings` is the encoder's
 * output; the encoder itself is not saved (PEFT's get_prompt_embedding_to_save), so loading is prompt
 * tuning's.
 * Not here: the encoder (encoders.ts, nn/lstm.ts), loading (prompt-tuning.ts loadVirtualTokens).
 */
import type { AttachedAdapter, Llama, MethodContext, MethodDef, ResolvedOptions } from '@peft/core-tensor';
import { PromptAdapter } from '../adapter.js';
import { promptDims } from '../dims.js';
import { PTuningEncoder } from '../encoders.js';
import { f32Entry, PROMPT_KEY, PROMPT_KEYS } from '../format.js';
import { virtualTokenHooks } from '../hooks.js';
import { ParamFactory } from '../nn/layers.js';
import { P_TUNING_OPTIONS, virtualTokens } from '../options.js';
import { baseName, pTuningConfig } from '../peft-config.js';
import { loadVirtualTokens } from './prompt-tuning.js';
import { activationDtype, disposeAll, install } from './shared.js';

async function attach(model: Llama, options: ResolvedOptions, ctx: MethodContext): Promise<AttachedAdapter> {
  const n = virtualTokens('p-tuning', options);
  const dims = promptDims(model.config, false);
  const p = {
    hidden: (options.encoder_hidden_size as number | undefined) ?? dims.tokenDim,
    kind: options.encoder_reparameterization_type as 'MLP' | 'LSTM',
    numLayers: options.encoder_num_layers as number,
    dropout: options.encoder_dropout as number,
  };
  const enc = new PTuningEncoder(new ParamFactory(ctx.seed, activationDtype(model)), { n, tokenDim: dims.tokenDim, ...p });
  install(model, virtualTokenHooks('p-tuning', n, () => enc.output(), disposeAll(enc.named())));
  return new PromptAdapter({
    params: enc.named(),
    files: () => ({ config: pTuningConfig(n, dims, baseName(ctx.baseModelDir), p), tensors: [f32Entry(PROMPT_KEY, enc.output())] }),
  });
}

export const pTuningMethod: MethodDef = {
  name: 'p-tuning',
  description: 'P-tuning: virtual tokens from an MLP or bidirectional-LSTM encoder (saved as its output), PEFT format',
  peftType: 'P_TUNING',
  keys: PROMPT_KEYS,
  options: P_TUNING_OPTIONS,
  attach,
  loadAdapter: loadVirtualTokens('p-tuning', 'P_TUNING'),
};
