/**
 * LoraLinear: a Linear with a low-rank update, PEFT's lora.Linear (huggingface/peft
 * src/peft/tuners/lora/layer.py, Linear.forward) for one adapter:
 *
 *   y = base(x) + B(A(dropout(x))) · scaling          scaling = alpha / r   (rsLoRA: alpha / sqrt r)
 *
 *   x [.., in]; base_layer: the original Linear, W [out, in] (f32, bf16, nf4/fp4 or int8, frozen: the
 *   fused dequant-GEMM runs on the packed weight), bias [out]; lora_A [r, in], lora_B [out, r] f32;
 *   DoRA adds lora_magnitude_vector [out] (variants/dora.ts). Names are PEFT's, so the module tree
 *   reads `model.layers.0.self_attn.q_proj.base_layer.weight`, `...q_proj.lora_A`.
 *
 * Dropout follows PEFT: only the LoRA branch sees it, only in training (and never under noGrad),
 * and its mask is seeded from the step's KernelOptions.dropoutSeed (or a per-module call counter)
 * mixed with the module's index, so every module draws an independent, reproducible mask.
 * Not here: choosing targets (targets.ts), initialising A/B (init/), saving (save.ts).
 */
import { isGradEnabled, Module, ops, tidy, type Linear, type Tensor } from '@peft/core-tensor';
import { doraForward } from './variants/dora.js';

type KernelOptions = ops.KernelOptions;

export interface LoraSpec {
  /** HF module path, e.g. `model.layers.0.self_attn.q_proj`. */
  module: string;
  /** Position among the wrapped modules: seeds its init and dropout. */
  index: number;
  r: number;
  alpha: number;
  scale: number;
  dropout: number;
}

/** 32-bit mix of (step seed, module index): distinct streams per module and per step. */
export function dropoutSeedOf(step: number, index: number): number {
  let h = (Math.imul(step >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0;
  return (h ^ (h >>> 12)) >>> 0;
}

export class LoraLinear extends Module {
  readonly base_layer: Linear;
  #calls = 0;

  /** Wraps `base`; A [r, in], B [out, r] (and magnitude [out] for DoRA) are taken over, not copied. */
  constructor(base: Linear, readonly spec: LoraSpec, A: Tensor, B: Tensor, magnitude?: Tensor) {
    super();
    this.base_layer = this.addModule('base_layer', base);
    this.addParameter('lora_A', A);
    this.addParameter('lora_B', B);
    if (magnitude) this.addParameter('lora_magnitude_vector', magnitude);
  }

  get lora_A(): Tensor {
    return this.parameter('lora_A')!;
  }

  get lora_B(): Tensor {
    return this.parameter('lora_B')!;
  }

  get magnitude(): Tensor | undefined {
    return this.parameter('lora_magnitude_vector');
  }

  get inFeatures(): number {
    return this.base_layer.inFeatures;
  }

  get outFeatures(): number {
    return this.base_layer.outFeatures;
  }

  /**
   * Whether this call drops anything: PEFT's nn.Dropout(p) when p > 0, identity otherwise or in eval.
   * Also off under noGrad(): evaluation and generation here run without switching modules to eval().
   */
  #drops(): boolean {
    return this.training && this.spec.dropout > 0 && isGradEnabled();
  }

  /** x [.., in] -> [.., out] */
  forward(x: Tensor, opts?: KernelOptions): Tensor {
    return tidy(() => {
      const result = this.base_layer.forward(x, opts);
      const drops = this.#drops();
      const seed = dropoutSeedOf(opts?.dropoutSeed ?? this.#calls++, this.spec.index);
      const xd = drops ? ops.dropout(x, this.spec.dropout, { seed }) : x;
      const lora = ops.linear(ops.linear(xd, this.lora_A, undefined, opts), this.lora_B, undefined, opts); // [.., out]
      const m = this.magnitude;
      if (m) return doraForward(this, { x: xd, dropped: drops, result, lora, magnitude: m }, opts);
      return ops.add(result, ops.mulScalar(lora, this.spec.scale));
    });
  }
}
