/**
 * Linear: y = x W^T + b with W [out, in] under the name `weight` (and `bias`), as torch.nn.Linear.
 * W may be a trainable f32 / f64 tensor or a frozen base-model weight (bf16, nf4, fp4, int8):
 * the same module serves a full-precision and a quantized model, so adapters wrap one type.
 */
import { PeftError } from '../errors.js';
import { linear } from '../ops/linear.js';
import type { KernelOptions } from '../ops/kernels.js';
import { uniform } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import type { FloatDtype } from '../tensor/types.js';
import { Module } from './module.js';

export interface LinearInit {
  bias?: boolean;
  dtype?: FloatDtype;
  seed?: number;
  /** Default true: a freshly initialized layer is there to be trained. */
  requiresGrad?: boolean;
}

export class Linear extends Module {
  /** Wraps existing tensors: weight [out, in] (any weight kind), bias [out]. */
  constructor(weight: Tensor, bias?: Tensor) {
    super();
    if (weight.rank !== 2) throw new PeftError('E_SHAPE', `Linear weight must be [out, in], got [${weight.shape.join(', ')}]`);
    this.addParameter('weight', weight);
    if (bias) this.addParameter('bias', bias);
  }

  /** torch's default init: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias. */
  static create(inFeatures: number, outFeatures: number, opts?: LinearInit): Linear {
    const bound = 1 / Math.sqrt(inFeatures);
    const o = { dtype: opts?.dtype, requiresGrad: opts?.requiresGrad ?? true };
    const seed = opts?.seed ?? 0;
    const w = uniform([outFeatures, inFeatures], -bound, bound, { ...o, seed });
    const b = opts?.bias === false ? undefined : uniform([outFeatures], -bound, bound, { ...o, seed: seed + 1 });
    return new Linear(w, b);
  }

  get weight(): Tensor {
    return this.parameter('weight')!;
  }

  get bias(): Tensor | undefined {
    return this.parameter('bias');
  }

  get inFeatures(): number {
    return this.weight.shape[1];
  }

  get outFeatures(): number {
    return this.weight.shape[0];
  }

  /** x [.., in] -> [.., out] */
  forward(x: Tensor, opts?: KernelOptions): Tensor {
    return linear(x, this.weight, this.bias, opts);
  }
}

/**
 * Linear's brand: a registry symbol (`Symbol.for`), the same in every copy of the core, so a plugin
 * that resolves its own copy of @peft/core-tensor still recognizes the model's layers (its
 * `instanceof Linear` would compare against another class object and say no).
 */
const LINEAR = Symbol.for('peft.Linear');
Object.defineProperty(Linear.prototype, LINEAR, { value: true });

/** Whether `x` is a Linear layer, from this or any other copy of the core. */
export function isLinear(x: unknown): x is Linear {
  return typeof x === 'object' && x !== null && (x as { [LINEAR]?: unknown })[LINEAR] === true;
}
