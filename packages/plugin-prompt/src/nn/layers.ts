/**
 * The small trainable pieces the prompt encoders are built from, out of core ops (no kernel of their own):
 * torch.nn.Linear with its default init, ReLU and Tanh as compositions, and the seeded parameter factory
 * every encoder uses. Parameters are leaves that require grad, named as torch names them inside their
 * module ("0.weight", "0.bias"), in the activations' dtype (f32; f64 in gradient checks).
 * Not here: the LSTM (lstm.ts), the encoders (encoders.ts).
 */
import { ops, randn, tensor, uniform, type Tensor, type TensorFloatDtype } from '@peft/core-tensor';

/** FNV-1a of `name` mixed into `seed`: every parameter draws from its own stream, whatever the creation order. */
export function seedFor(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** Creates the parameters of one encoder: seeded by (seed, full name), trainable, in `dtype`. */
export class ParamFactory {
  constructor(readonly seed: number, readonly dtype: TensorFloatDtype) {}

  /** torch.nn.init.uniform_(-bound, bound). */
  uniform(name: string, shape: number[], bound: number): Tensor {
    return uniform(shape, -bound, bound, { seed: seedFor(this.seed, name), dtype: this.dtype, requiresGrad: true });
  }

  /** nn.Embedding's default init N(0, 1) (std other than 1 for NTK's randn / 10000). */
  normal(name: string, shape: number[], std = 1): Tensor {
    return randn(shape, { seed: seedFor(this.seed, name), std, dtype: this.dtype, requiresGrad: true });
  }

  /** Given values (an init from the vocabulary, zeros). */
  values(v: ArrayLike<number>, shape: number[]): Tensor {
    return tensor(v, shape, { dtype: this.dtype, requiresGrad: true });
  }
}

/** torch.nn.Linear(in, out): weight [out, in] = kaiming_uniform_(a = sqrt 5) = U(-1/sqrt in, 1/sqrt in), bias the same bound. */
export class TrainLinear {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(f: ParamFactory, readonly name: string, inF: number, out: number) {
    const bound = 1 / Math.sqrt(inF);
    this.weight = f.uniform(`${name}.weight`, [out, inF], bound);
    this.bias = f.uniform(`${name}.bias`, [out], bound);
  }

  forward(x: Tensor): Tensor {
    return ops.linear(x, this.weight, this.bias);
  }

  named(): [string, Tensor][] {
    return [[`${this.name}.weight`, this.weight], [`${this.name}.bias`, this.bias]];
  }
}

/** A constant tensor like x holding f(x_i) (a mask, a sign): it carries no gradient. */
function constantLike(x: Tensor, f: (v: number) => number): Tensor {
  const d = x.data;
  const out = x.dtype === 'f64' ? new Float64Array(d.length) : new Float32Array(d.length);
  for (let i = 0; i < d.length; i++) out[i] = f(d[i]);
  return tensor(out, x.shape, { dtype: x.dtype as TensorFloatDtype });
}

/** max(x, 0) = x * [x > 0]: torch's gradient (0 at x = 0 included). */
export function relu(x: Tensor): Tensor {
  return ops.mul(x, constantLike(x, (v) => (v > 0 ? 1 : 0)));
}

/** tanh x = 2 sigmoid(2x) - 1. */
export function tanh(x: Tensor): Tensor {
  return ops.addScalar(ops.mulScalar(ops.sigmoid(ops.mulScalar(x, 2)), 2), -1);
}

/** ELU(x) + 1 = x [x > 0] + exp(x [x <= 0]): ELU's value and gradient (1, or e^x), positive everywhere. */
export function eluPlusOne(x: Tensor): Tensor {
  const pos = constantLike(x, (v) => (v > 0 ? 1 : 0));
  const neg = constantLike(x, (v) => (v > 0 ? 0 : 1));
  return ops.add(ops.mul(x, pos), ops.exp(ops.mul(x, neg)));
}

/** |x| = x sign(x) (gradient sign(x), 0 at 0 as torch's abs). */
export function abs(x: Tensor): Tensor {
  return ops.mul(x, constantLike(x, Math.sign));
}
