/**
 * `prompt-tuning` [PROMPT_TUNING] (Lester et al. 2021, as huggingface/peft implements it: tuners/prompt_tuning,
 * peft_model.py): N trainable virtual tokens [N, D] prepended to the input embeddings, initialised RANDOM,
 * SAMPLE_VOCAB or TEXT (init.ts). The saved `prompt_embeddings` is the table itself. Loading (this and
 * P_TUNING, whose saved file is the same kind of table) installs the table as fixed virtual tokens.
 * Not here: P-tuning's encoder (p-tuning.ts), how tokens enter the model (hooks.ts).
 */
import type { AttachedAdapter, Llama, MethodContext, MethodDef, ResolvedOptions } from '@peft/core-tensor';
import { PromptAdapter } from '../adapter.js';
import { promptDims } from '../dims.js';
import { PREFIX, TableEncoder } from '../encoders.js';
import { checkAllTaken, f32Entry, PROMPT_KEY, PROMPT_KEYS, readFolder, take } from '../format.js';
import { virtualTokenHooks } from '../hooks.js';
import { initialTokens } from '../init.js';
import { ParamFactory } from '../nn/layers.js';
import { PROMPT_TUNING_OPTIONS, promptInit, virtualTokens } from '../options.js';
import { baseName, promptTuningConfig, SavedConfig } from '../peft-config.js';
import { activationDtype, constant, disposeAll, install } from './shared.js';

async function attach(model: Llama, options: ResolvedOptions, ctx: MethodContext): Promise<AttachedAdapter> {
  const n = virtualTokens('prompt-tuning', options);
  const init = promptInit('prompt-tuning', options);
  const dims = promptDims(model.config, false);
  const f = new ParamFactory(ctx.seed, activationDtype(model));
  const enc = new TableEncoder(await initialTokens(model, init, n, f, ctx.baseModelDir, `${PREFIX}.embedding.weight`));
  install(model, virtualTokenHooks('prompt-tuning', n, () => enc.output(), disposeAll(enc.named())));
  return new PromptAdapter({
    params: enc.named(),
    files: () => ({ config: promptTuningConfig(n, dims, baseName(ctx.baseModelDir), init), tensors: [f32Entry(PROMPT_KEY, enc.output())] }),
  });
}

/** A saved PROMPT_TUNING or P_TUNING folder: prompt_embeddings [N, hidden_size] as fixed virtual tokens. */
export function loadVirtualTokens(method: string, peftType: string) {
  return async (model: Llama, dir: string, config: Record<string, unknown>): Promise<void> => {
    const cfg = new SavedConfig(config, dir);
    cfg.checkDecoderOnly();
    const folder = await readFolder(dir);
    const { values, shape } = take(folder, PROMPT_KEY, [-1, model.config.hiddenSize]);
    checkAllTaken(folder, peftType);
    const n = cfg.virtualTokens(shape[0]);
    const table = constant(values, shape, activationDtype(model));
    install(model, virtualTokenHooks(method, n, () => table, () => table.dispose()));
  };
}

export const promptTuningMethod: MethodDef = {
  name: 'prompt-tuning',
  description: 'Prompt tuning: N trainable virtual tokens in front of the input (init RANDOM | SAMPLE_VOCAB | TEXT), PEFT format',
  peftType: 'PROMPT_TUNING',
  keys: PROMPT_KEYS,
  options: PROMPT_TUNING_OPTIONS,
  attach,
  loadAdapter: loadVirtualTokens('prompt-tuning', 'PROMPT_TUNING'),
};
