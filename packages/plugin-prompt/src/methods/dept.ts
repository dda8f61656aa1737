/**
 * `dept` [PROMPT_TUNING_LORA] (DePT, Shi & Lipani 2024, ZhengxiangShi/DePT peft/tuners/prompt_tuning_lora.py
 * and peft/peft_model.py): a shorter soft prompt P [N, D] plus a position-indexed low-rank update of the
 * input embeddings,
 *     E'[t] = E[t] + (lora_alpha / sqrt r) (A B)[t]        A [max_length, r], B [r, D]
 * then [P; E'] goes in as prompt tuning's virtual tokens. A = kaiming_uniform_(a = sqrt 5) = U(-1/sqrt r,
 * 1/sqrt r) (fan_in r), B = 0, so training starts as plain prompt tuning. Two optimizer groups: "prompt"
 * (P, at prompt_lr) and "lora" (A and B, at lora_lr), as DePT's train.py builds its AdamW groups; each
 * rate is given absolutely and becomes an lrScale of the run's --lr, so warmup and decay apply to both.
 * Deviation from DePT: DePT pads every input to exactly max_length (A B has one row per padded position, a
 * shorter input does not broadcast). Here row t of A B updates the caller's token at position t for t <
 * max_length, and later positions get none, in training and in generation alike (DePT adds nothing to
 * generated tokens, which lie beyond max_length there). With inputs of exactly max_length tokens both agree.
 * Saved as DePT saves it (format.ts keys, peft-config.ts deptConfig), in safetensors instead of its .bin.
 * Not here: the prompt init (init.ts), prompt tuning's hooks (hooks.ts).
 */
import {
  inputError, ops, PeftError, zeros, type AttachedAdapter, type Llama, type MethodContext, type MethodDef, type ModelHooks,
  type ResolvedOptions, type Tensor,
} from '@peft/core-tensor';
import { PromptAdapter } from '../adapter.js';
import { promptDims } from '../dims.js';
import { PREFIX } from '../encoders.js';
import { checkAllTaken, DEPT_A_KEY, DEPT_B_KEY, DEPT_KEYS, f32Entry, PROMPT_KEY, readFolder, take } from '../format.js';
import { prepend } from '../hooks.js';
import { initialTokens } from '../init.js';
import { ParamFactory } from '../nn/layers.js';
import { DEPT_OPTIONS, promptInit, virtualTokens } from '../options.js';
import { baseName, deptConfig, SavedConfig } from '../peft-config.js';
import { activationDtype, constant, install } from './shared.js';

export interface DeptTensors {
  prompt: Tensor; // [N, D]
  A: Tensor; // [max_length, r]
  B: Tensor; // [r, D]
  /** lora_alpha / sqrt r (0 when the update is off: r = 0, or a folder that asks not to load A / B). */
  scale: number;
}

/** embeds [B, T, C] of positions past..past+T-1 plus scale (A B)[past + t] where past + t < max_length. */
export function deptOffset(t: DeptTensors, embeds: Tensor, past: number): Tensor {
  const [, T, C] = embeds.shape;
  const end = Math.min(past + T, t.A.shape[0]);
  if (t.scale === 0 || end <= past) return embeds;
  const rows = ops.mulScalar(ops.linear(t.A.slice(0, past, end), ops.transpose(t.B, 0, 1)), t.scale); // [end - past, C]
  const full = end - past < T ? ops.concat([rows, zeros([T - (end - past), C], { dtype: rows.dtype as 'f32' | 'f64' })], 0) : rows;
  return ops.add(embeds, full.reshape([1, T, C]));
}

export function deptHooks(t: DeptTensors, dispose: () => void): ModelHooks {
  return {
    method: 'dept',
    inputs: {
      tokens: t.prompt.shape[0],
      forward: (embeds, past) => {
        const updated = deptOffset(t, embeds, past);
        return past > 0 ? updated : prepend(t.prompt, updated);
      },
    },
    dispose,
  };
}

/** prompt_lr / lora_lr as multiples of the run's lr (absent: the run's lr). */
function lrScale(what: string, rate: unknown, ctx: MethodContext): number | undefined {
  if (rate === undefined) return undefined;
  if (!(typeof ctx.lr === 'number' && ctx.lr > 0)) throw new PeftError('E_INPUT', `dept: ${what} needs the run's learning rate (MethodContext.lr)`);
  if (!((rate as number) > 0)) throw new PeftError('E_INPUT', `dept: ${what} must be > 0, got ${String(rate)}`);
  return (rate as number) / ctx.lr;
}

async function attach(model: Llama, options: ResolvedOptions, ctx: MethodContext): Promise<AttachedAdapter> {
  const n = virtualTokens('dept', options);
  const init = promptInit('dept', options);
  const [r, alpha, maxLength] = [options.r as number, options.lora_alpha as number, options.max_length as number];
  const groups = [
    { name: 'prompt', params: [`${PREFIX}.embedding.weight`], lrScale: lrScale('prompt_lr', options.prompt_lr, ctx) },
    { name: 'lora', params: [`${PREFIX}.lora_embedding_A`, `${PREFIX}.lora_embedding_B`], lrScale: lrScale('lora_lr', options.lora_lr, ctx) },
  ];
  const dims = promptDims(model.config, false);
  const f = new ParamFactory(ctx.seed, activationDtype(model));
  const t: DeptTensors = {
    prompt: await initialTokens(model, init, n, f, ctx.baseModelDir, groups[0].params[0]),
    A: f.uniform(groups[1].params[0], [maxLength, r], 1 / Math.sqrt(r)),
    B: f.values(new Float32Array(r * dims.tokenDim), [r, dims.tokenDim]),
    scale: alpha / Math.sqrt(r),
  };
  const params: [string, Tensor][] = [[groups[0].params[0], t.prompt], [groups[1].params[0], t.A], [groups[1].params[1], t.B]];
  install(model, deptHooks(t, () => params.forEach(([, p]) => p.dispose())));
  return new PromptAdapter({
    params, groups,
    files: () => ({
      config: deptConfig(n, dims, baseName(ctx.baseModelDir), init, { r, alpha, maxLength }),
      tensors: [f32Entry(PROMPT_KEY, t.prompt), f32Entry(DEPT_A_KEY, t.A), f32Entry(DEPT_B_KEY, t.B)],
    }),
  });
}

/** DePT's set_peft_model_state_dict: A and B only when load_lora_embeddings, B only when load_lora_embedding_B (else they stay 0). */
async function loadAdapter(model: Llama, dir: string, config: Record<string, unknown>): Promise<void> {
  const cfg = new SavedConfig(config, dir);
  cfg.checkDecoderOnly();
  const C = model.config.hiddenSize;
  const folder = await readFolder(dir);
  const prompt = take(folder, PROMPT_KEY, [-1, C]);
  const r = cfg.int('r', 8)!;
  const A = take(folder, DEPT_A_KEY, [cfg.int('max_length', 256)!, r]);
  const B = take(folder, DEPT_B_KEY, [r, C]);
  checkAllTaken(folder, 'PROMPT_TUNING_LORA');
  cfg.virtualTokens(prompt.shape[0]);
  const on = r > 0 && cfg.bool('load_lora_embeddings', true) && cfg.bool('load_lora_embedding_B', true);
  const alpha = cfg.num('lora_alpha', 8);
  if (!(alpha >= 0)) throw inputError('E_FORMAT', `lora_alpha must be >= 0, got ${alpha}`, cfg.file);
  const dtype = activationDtype(model);
  const t: DeptTensors = {
    prompt: constant(prompt.values, prompt.shape, dtype), A: constant(A.values, A.shape, dtype), B: constant(B.values, B.shape, dtype),
    scale: on ? alpha / Math.sqrt(r) : 0,
  };
  install(model, deptHooks(t, () => [t.prompt, t.A, t.B].forEach((x) => x.dispose())));
}

export const deptMethod: MethodDef = {
  name: 'dept',
  description: 'DePT: a short soft prompt plus a position-indexed low-rank update of the input embeddings, two learning rates',
  peftType: 'PROMPT_TUNING_LORA',
  keys: DEPT_KEYS,
  options: DEPT_OPTIONS,
  attach,
  loadAdapter,
};
