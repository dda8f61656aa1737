/**
 * The Adam update galore-torch uses for every parameter (galore_torch/adamw.py AdamW.step, transformers'
 * AdamW with correct_bias; Natural GaLore's subspace_adamw.py computes the same):
 *   m = β1 m + (1-β1) g;  v = β2 v + (1-β2) g²
 *   N = m / (√v + eps);   p -= lr · √(1-β2ᵗ)/(1-β1ᵗ) · N;   then p -= lr · wd · p   (decoupled, after)
 * eps is added to √v before the bias correction, unlike torch.optim.AdamW. Computed on the run's
 * `adamwStep` kernel (torch.optim.AdamW): with eps' = eps / √(1-β2ᵗ) and weight decay 0 it gives exactly
 * this step (in real arithmetic; f32 rounding may differ in the last bit). `direction` runs it on a zero
 * "parameter" to get -(√(1-β2ᵗ)/(1-β1ᵗ)) · N for a projected gradient, as GaLoreAdamW8bit lets
 * bitsandbytes write its update into a zeroed p.data.
 * Not here: projections (projection.ts), 8-bit states (eightbit.ts).
 */
import { fma32, PeftError, type TrainKernels, type UpdateRule } from '@peft/core-tensor';

export interface AdamSettings {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** The ranges galore-torch's AdamW accepts (E_INPUT otherwise). */
export function checkAdam(owner: string, o: AdamSettings): void {
  const bad = (msg: string) => new PeftError('E_INPUT', `${owner}: ${msg}`);
  if (!(o.beta1 >= 0 && o.beta1 < 1)) throw bad(`beta1 must be in [0, 1), got ${o.beta1}`);
  if (!(o.beta2 >= 0 && o.beta2 < 1)) throw bad(`beta2 must be in [0, 1), got ${o.beta2}`);
  if (!(o.eps >= 0)) throw bad(`eps must be >= 0, got ${o.eps}`);
  if (!(o.weightDecay >= 0)) throw bad(`weight_decay must be >= 0, got ${o.weightDecay}`);
}

export const adamHyper = (o: AdamSettings) => ({ beta1: o.beta1, beta2: o.beta2, eps: o.eps, weight_decay: o.weightDecay });

/** eps' for adamwStep so that its denominator √v/√bc2 + eps' equals (√v + eps)/√bc2. */
const scaledEps = (o: AdamSettings, step: number) => o.eps / Math.sqrt(1 - o.beta2 ** step);

/** Updates m, v from g (n values) and writes dir = -(√bc2/bc1) · m / (√v + eps). */
export function direction(k: TrainKernels, dir: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array,
  o: AdamSettings, step: number): void {
  dir.fill(0);
  k.adamwStep(dir, g, m, v, dir.length, 1, o.beta1, o.beta2, scaledEps(o, step), 0, step);
}

/** p -= lr · wd · p (galore-torch: p.add_(p, alpha=-lr*wd), one fused multiply-add per value in torch). */
export function decoupledDecay(p: Float32Array, lr: number, weightDecay: number): void {
  if (weightDecay === 0) return;
  const a = Math.fround(-lr * weightDecay);
  for (let i = 0; i < p.length; i++) p[i] = fma32(p[i], a, p[i]);
}

/** The rule for the parameters galore-torch does not project: its AdamW, moments shaped like the parameter. */
export function galoreAdamwRule(o: AdamSettings, k: TrainKernels): UpdateRule {
  checkAdam('galore adamw', o);
  return {
    name: 'galore-adamw',
    slotShapes: (shape) => [{ name: 'exp_avg', dtype: 'F32', shape }, { name: 'exp_avg_sq', dtype: 'F32', shape }],
    hyper: adamHyper(o),
    update(p, g, [m, v], lr, step) {
      k.adamwStep(p, g, m as Float32Array, v as Float32Array, p.length, lr, o.beta1, o.beta2, scaledEps(o, step), 0, step);
      decoupledDecay(p, lr, o.weightDecay);
    },
  };
}
