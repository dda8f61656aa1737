/** Embedding: a [V, C] table under `weight`, looked up by token id (torch.nn.Embedding). */
import { PeftError } from '../errors.js';
import { embedding } from '../ops/embedding.js';
import { randn } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import type { FloatDtype } from '../tensor/types.js';
import { Module } from './module.js';

export class Embedding extends Module {
  constructor(weight: Tensor) {
    super();
    if (weight.rank !== 2) throw new PeftError('E_SHAPE', `Embedding weight must be [V, C], got [${weight.shape.join(', ')}]`);
    this.addParameter('weight', weight);
  }

  /** torch's default init: N(0, 1). */
  static create(num: number, dim: number, opts?: { dtype?: FloatDtype; seed?: number; requiresGrad?: boolean }): Embedding {
    return new Embedding(randn([num, dim], { dtype: opts?.dtype, seed: opts?.seed, requiresGrad: opts?.requiresGrad ?? true }));
  }

  get weight(): Tensor {
    return this.parameter('weight')!;
  }

  /** ids [...shape] -> [...shape, C] */
  forward(ids: Int32Array, shape?: readonly number[]): Tensor {
    return embedding(this.weight, ids, shape);
  }
}
