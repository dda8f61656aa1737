/**
 * Which trainable parameters get a low-rank projected state, as galore-torch splits its param groups
 * (torchrun_main.py: the `.weight` of every nn.Linear whose module name contains "attn" or "mlp"):
 * a parameter is projected when it is 2-D, its name contains one of `target_modules` (substrings,
 * default attn, mlp; `*` matches every name) and its smaller side exceeds the rank. Everything else — norms and biases (1-D),
 * embeddings and the LM head (names without attn / mlp), excluded names — is updated by plain AdamW,
 * galore-torch's group without "rank". Works on any trainable 2-D parameter: LoRA's A / B factors
 * (PEFT names `...self_attn.q_proj.lora_A.weight`) as much as full weights.
 * Deliberate difference: galore-torch also "projects" a matrix whose smaller side is <= rank, onto its
 * whole space (a rotation that saves nothing and changes Adam's result); here such a matrix gets AdamW.
 * Not here: the projection itself (projection.ts), the optimizers (optimizers.ts).
 */
import type { Tensor } from '@peft/core-tensor';

export const DEFAULT_TARGETS: readonly string[] = ['attn', 'mlp'];

export function isProjected(name: string, shape: readonly number[], targets: readonly string[], rank: number): boolean {
  return shape.length === 2 && Math.min(shape[0], shape[1]) > rank && targets.some((t) => t === '*' || name.includes(t));
}

/** The parameters of one group, split into those the projection targets and the rest (order kept). */
export function splitByProjection(params: readonly [string, Tensor][], targets: readonly string[], rank: number) {
  const projected: [string, Tensor][] = [];
  const rest: [string, Tensor][] = [];
  for (const p of params) (isProjected(p[0], p[1].shape, targets, rank) ? projected : rest).push(p);
  return { projected, rest };
}
