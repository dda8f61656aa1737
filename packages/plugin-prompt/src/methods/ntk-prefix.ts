/**
 * `ntk-prefix` [NTK_PREFIX] (NTK-attention, arXiv 2406.14036; ntk-attention.ts has the formula): every
 * layer's self_attn becomes an NtkAttention with trainable k [nh, hd] and Z [nh, hd, hd] per query head,
 * N(0, init_std^2) (ntk_glm.py: randn / 10000), the base frozen, all layers (as ntk_glm.py's make_model).
 * Trainable: L * nh * (hd^2 + hd), e.g. 16.9M for a Llama-2-7B shape. No positions are taken (the prefix
 * term is position-free), so nothing shifts the caller's tokens, and a KV cache holds real tokens only.
 * Not a PEFT type: the peft_type, config (peft-config.ts ntkConfig) and keys (format.ts ntkKey) are ours.
 * Not here: the attention (ntk-attention.ts).
 */
import {
  Attention, inputError, type AttachedAdapter, type Llama, type MethodContext, type MethodDef, type ResolvedOptions, type Tensor,
} from '@peft/core-tensor';
import { PromptAdapter } from '../adapter.js';
import { checkAllTaken, f32Entry, NTK_KEYS, ntkKey, readFolder, take } from '../format.js';
import { ParamFactory } from '../nn/layers.js';
import { NTK_PREFIX_OPTIONS } from '../options.js';
import { baseName, ntkConfig, SavedConfig } from '../peft-config.js';
import { NtkAttention } from '../ntk-attention.js';
import { activationDtype, constant } from './shared.js';

const attnPath = (layer: number) => `model.layers.${layer}.self_attn`;

/** Each layer's plain Attention, refused when one is already replaced (a second ntk-prefix, another wrapper). */
function attentions(model: Llama, where?: string): Attention[] {
  return Array.from({ length: model.config.numLayers }, (_, l) => {
    const m = model.getModule(attnPath(l));
    if (!(m instanceof Attention) || m instanceof NtkAttention) {
      throw inputError('E_INPUT', `ntk-prefix: ${attnPath(l)} is ${m?.constructor.name ?? 'missing'}, not a plain attention module`, where);
    }
    return m;
  });
}

/** Replaces every layer's attention by an NtkAttention over the given tensors. */
function replaceAll(model: Llama, bases: Attention[], tensors: { k: Tensor; z: Tensor }[]): NtkAttention[] {
  return bases.map((base, l) => {
    const m = new NtkAttention(base, tensors[l].k, tensors[l].z);
    model.replace(attnPath(l), m);
    return m;
  });
}

async function attach(model: Llama, options: ResolvedOptions, ctx: MethodContext): Promise<AttachedAdapter> {
  const bases = attentions(model);
  const { numLayers: L, numHeads: nh, headDim: hd } = model.config;
  const std = options.init_std as number;
  const f = new ParamFactory(ctx.seed, activationDtype(model));
  model.requiresGrad(false);
  const tensors = bases.map((_, l) => ({
    k: f.normal(ntkKey(l, 'ntk_phi_k'), [nh, hd], std), z: f.normal(ntkKey(l, 'ntk_phi_kv'), [nh, hd, hd], std),
  }));
  const layers = replaceAll(model, bases, tensors);
  const params = tensors.flatMap((t, l): [string, Tensor][] => [[ntkKey(l, 'ntk_phi_k'), t.k], [ntkKey(l, 'ntk_phi_kv'), t.z]]);
  return new PromptAdapter({
    params,
    modules: layers.map((_, l) => attnPath(l)),
    files: () => ({
      config: ntkConfig({ numLayers: L, numHeads: nh, headDim: hd }, baseName(ctx.baseModelDir), std),
      tensors: params.map(([key, t]) => f32Entry(key, t)),
    }),
  });
}

async function loadAdapter(model: Llama, dir: string, config: Record<string, unknown>): Promise<void> {
  const cfg = new SavedConfig(config, dir);
  cfg.checkDecoderOnly();
  const { numLayers: L, numHeads: nh, headDim: hd } = model.config;
  for (const [key, v] of [['num_layers', L], ['num_attention_heads', nh], ['head_dim', hd]] as const) {
    const got = cfg.int(key);
    if (got !== undefined && got !== v) throw inputError('E_FORMAT', `${key} is ${got}, this model has ${v}: the adapter was made for another model`, cfg.file);
  }
  const bases = attentions(model, dir);
  const folder = await readFolder(dir);
  const dtype = activationDtype(model);
  const values = bases.map((_, l) => ({ k: take(folder, ntkKey(l, 'ntk_phi_k'), [nh, hd]), z: take(folder, ntkKey(l, 'ntk_phi_kv'), [nh, hd, hd]) }));
  checkAllTaken(folder, 'NTK_PREFIX');
  replaceAll(model, bases, values.map((v) => ({ k: constant(v.k.values, v.k.shape, dtype), z: constant(v.z.values, v.z.shape, dtype) })));
}

export const ntkPrefixMethod: MethodDef = {
  name: 'ntk-prefix',
  description: 'NTK-attention: per layer and head, k and Z standing for an unbounded prefix (arXiv 2406.14036); own format',
  peftType: 'NTK_PREFIX',
  keys: NTK_KEYS,
  options: NTK_PREFIX_OPTIONS,
  attach,
  loadAdapter,
};
