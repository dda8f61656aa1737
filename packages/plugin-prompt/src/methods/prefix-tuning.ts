/**
 * `prefix-tuning` [PREFIX_TUNING] (Li & Liang 2021, as huggingface/peft implements it: tuners/prefix_tuning,
 * peft_model.py get_prompt): N trainable keys and values in front of every layer's attention, held as one
 * flat [N, L*2*D] tensor (hooks.ts: the column order) with D = head_dim x num_kv_heads (dims.ts: PEFT's GQA
 * rule). prefix_projection=false (PEFT's default) trains that tensor directly (N(0, 1) init);
 * prefix_projection=true trains embedding [N, D] -> Linear(D, h) -> Tanh -> Linear(h, L*2*D) and saves its
 * output. init_weights "zero" zeroes the tensor (or the projection's last Linear), which PEFT documents is
 * not quite a no-op (zero keys still take softmax mass). Keys enter as they are (no RoPE); the caller's
 * tokens take positions N.. (core hooks).
 * Not here: the encoder (encoders.ts), the cache filling (core models/hooks.ts fillPrefix).
 */
import { inputError, type AttachedAdapter, type Llama, type MethodContext, type MethodDef, type ResolvedOptions } from '@peft/core-tensor';
import { PromptAdapter } from '../adapter.js';
import { promptDims, type PromptDims } from '../dims.js';
import { PREFIX, ProjectedPrefixEncoder, TableEncoder, type Encoder } from '../encoders.js';
import { checkAllTaken, f32Entry, PROMPT_KEY, PROMPT_KEYS, readFolder, take } from '../format.js';
import { prefixHooks } from '../hooks.js';
import { ParamFactory } from '../nn/layers.js';
import { PREFIX_TUNING_OPTIONS, virtualTokens } from '../options.js';
import { baseName, prefixTuningConfig, SavedConfig } from '../peft-config.js';
import { activationDtype, constant, disposeAll, install } from './shared.js';

async function attach(model: Llama, options: ResolvedOptions, ctx: MethodContext): Promise<AttachedAdapter> {
  const n = virtualTokens('prefix-tuning', options);
  const dims = promptDims(model.config, true);
  const width = dims.numLayers * 2 * dims.tokenDim;
  const p = {
    hidden: (options.encoder_hidden_size as number | undefined) ?? dims.tokenDim,
    projection: options.prefix_projection === true,
    zero: options.init_weights === 'zero',
  };
  const f = new ParamFactory(ctx.seed, activationDtype(model));
  const name = `${PREFIX}.embedding.weight`;
  const enc: Encoder = p.projection
    ? new ProjectedPrefixEncoder(f, n, dims.tokenDim, p.hidden, width, p.zero)
    : new TableEncoder(p.zero ? f.values(new Float32Array(n * width), [n, width]) : f.normal(name, [n, width]));
  install(model, prefixHooks('prefix-tuning', n, dims, () => enc.output(), disposeAll(enc.named())));
  return new PromptAdapter({
    params: enc.named(),
    files: () => ({ config: prefixTuningConfig(n, dims, baseName(ctx.baseModelDir), p), tensors: [f32Entry(PROMPT_KEY, enc.output())] }),
  });
}

/** The config's dims, where it states them, must be this model's (else the columns would be read as other heads). */
function checkDims(cfg: SavedConfig, dims: PromptDims): void {
  const want: [string, number][] = [['num_layers', dims.numLayers], ['token_dim', dims.tokenDim], ['num_attention_heads', dims.numHeads]];
  for (const [key, v] of want) {
    const got = cfg.int(key);
    if (got !== undefined && got !== v) {
      throw inputError('E_FORMAT', `${key} is ${got}, this model's prefix has ${v} (${key === 'num_layers' ? 'layers' : 'KV width / KV heads'}): the adapter was made for another model`, cfg.file);
    }
  }
}

async function loadAdapter(model: Llama, dir: string, config: Record<string, unknown>): Promise<void> {
  const cfg = new SavedConfig(config, dir);
  cfg.checkDecoderOnly();
  const dims = promptDims(model.config, true);
  checkDims(cfg, dims);
  const folder = await readFolder(dir);
  const { values, shape } = take(folder, PROMPT_KEY, [-1, dims.numLayers * 2 * dims.tokenDim]);
  checkAllTaken(folder, 'PREFIX_TUNING');
  const n = cfg.virtualTokens(shape[0]);
  const flat = constant(values, shape, activationDtype(model));
  install(model, prefixHooks('prefix-tuning', n, dims, () => flat, () => flat.dispose()));
}

export const prefixTuningMethod: MethodDef = {
  name: 'prefix-tuning',
  description: 'Prefix tuning: N trainable keys / values per layer (optionally through a projection MLP), GQA as PEFT, PEFT format',
  peftType: 'PREFIX_TUNING',
  keys: PROMPT_KEYS,
  options: PREFIX_TUNING_OPTIONS,
  attach,
  loadAdapter,
};
