/** RMSNorm: HF LlamaRMSNorm, `weight` [C] (init ones) and `eps` (config rms_norm_eps). */
import type { KernelOptions } from '../ops/kernels.js';
import { rmsnorm } from '../ops/norm.js';
import { ones } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import type { FloatDtype } from '../tensor/types.js';
import { Module } from './module.js';

export class RMSNorm extends Module {
  constructor(weight: Tensor, readonly eps = 1e-6) {
    super();
    this.addParameter('weight', weight);
  }

  static create(dim: number, opts?: { eps?: number; dtype?: FloatDtype; requiresGrad?: boolean }): RMSNorm {
    return new RMSNorm(ones([dim], { dtype: opts?.dtype, requiresGrad: opts?.requiresGrad ?? true }), opts?.eps);
  }

  get weight(): Tensor {
    return this.parameter('weight')!;
  }

  /** x [.., C] -> [.., C] */
  forward(x: Tensor, opts?: KernelOptions): Tensor {
    return rmsnorm(x, this.weight, this.eps, opts);
  }
}
