/**
 * How the prompt methods' tensors enter the model: the core's `inputs` and `prefix` hooks (core
 * models/hooks.ts), installed by attach (training) and loadAdapter (inference), so train / eval / generate
 * run them without a branch.
 *
 *   virtual tokens  PeftModelForCausalLM.forward (huggingface/peft peft_model.py) prompt tuning / P-tuning:
 *                   inputs_embeds = cat(prompts [B, N, D], embeds) at the start of a sequence; the core puts
 *                   them at positions 0..N-1 and the caller's tokens at N.., and scores labels[0] from the last
 *                   virtual row (PEFT's -100 label padding). Later KV-cached steps pass through.
 *   prefix          get_prompt: the flat prefix [N, L*2*D] is viewed as [N, 2L, H, hd]; row 2l is layer l's K,
 *                   2l+1 its V, so column ((2l + kv) H + h) hd + j is (layer l, K/V, head h, dim j). H = KV
 *                   heads (dims.ts), so the model's own GQA repeat serves the query groups. Keys are final (no
 *                   RoPE); the caller's tokens sit at positions N.. (the core's prefix positions).
 * The encoder's output is computed once per forward: the prefix at layer 0 (later layers slice the same
 * tensor), the virtual tokens when the sequence starts. Each is a tensor of that forward's scope.
 * Not here: the encoders (encoders.ts), DePT's offset (methods/dept.ts), NTK attention (ntk-attention.ts).
 */
import { ops, type ModelHooks, type Tensor } from '@peft/core-tensor';
import type { PromptDims } from './dims.js';

/** x [1, ...] repeated B times along axis 0 (PEFT's .repeat(batch_size, 1, 1) / expand). */
export function repeatBatch(x: Tensor, B: number): Tensor {
  return B === 1 ? x : ops.concat(new Array<Tensor>(B).fill(x), 0);
}

/** [prompt; embeds]: prompt [N, C] in front of every row of embeds [B, T, C]. */
export function prepend(prompt: Tensor, embeds: Tensor): Tensor {
  const [B, , C] = embeds.shape;
  return ops.concat([repeatBatch(prompt.reshape([1, prompt.shape[0], C]), B), embeds], 1);
}

/** Prompt tuning / P-tuning: `prompt()` [N, C] prepended when a sequence starts. */
export function virtualTokenHooks(method: string, n: number, prompt: () => Tensor, dispose: () => void): ModelHooks {
  return {
    method,
    inputs: { tokens: n, forward: (embeds, past) => (past > 0 ? embeds : prepend(prompt(), embeds)) },
    dispose,
  };
}

/** Layer `layer`'s K and V [1, N, H, hd] in the flat prefix [N, L*2*D] (PEFT's column order). */
export function layerKv(flat: Tensor, layer: number, dims: PromptDims): { k: Tensor; v: Tensor } {
  const { tokenDim: D, numHeads: H } = dims;
  const n = flat.shape[0];
  const part = (kv: number) => flat.slice(1, (2 * layer + kv) * D, (2 * layer + kv + 1) * D).reshape([1, n, H, D / H]);
  return { k: part(0), v: part(1) };
}

/** Prefix tuning: `flat()` [N, L*2*D], evaluated at layer 0 of each forward. */
export function prefixHooks(method: string, n: number, dims: PromptDims, flat: () => Tensor, dispose: () => void): ModelHooks {
  let current: Tensor | undefined;
  return {
    method,
    prefix: {
      length: n,
      kv(layer, batch) {
        if (layer === 0 || !current || current.isDisposed) current = flat();
        const { k, v } = layerKv(current, layer, dims);
        return { k: repeatBatch(k, batch), v: repeatBatch(v, batch) };
      },
    },
    dispose,
  };
}
