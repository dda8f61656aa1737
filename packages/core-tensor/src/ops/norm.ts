/**
 * rmsnorm (fused), HF LlamaRMSNorm: out = x / sqrt(mean(x^2) + eps) * weight over the last dim.
 * x [.., C], weight [C]. Saves x, weight and the per-row rstd [N] (N = x.size / C) for backward.
 */
import type { Grads, Node } from './node.js';
import { needsGrad, record } from './tape.js';
import type { TrainKernels } from '../backend/train-kernels.js';
import { PeftError } from '../errors.js';
import { zeros } from '../tensor/create.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { kernelsFor, type KernelOptions } from './kernels.js';
import { floatDtype, sameDtype } from './loops.js';

export function rmsnorm(x: Tensor, weight: Tensor, eps = 1e-6, opts?: KernelOptions): Tensor {
  const dtype = sameDtype('rmsnorm', x, weight);
  const C = x.shape[x.rank - 1];
  if (weight.rank !== 1 || weight.shape[0] !== C) {
    throw new PeftError('E_SHAPE', `rmsnorm: weight [${weight.shape.join(', ')}] does not fit x [${x.shape.join(', ')}]`);
  }
  const N = x.size / C;
  return tidy(() => { // a kernel that throws leaves nothing allocated
    const out = zeros(x.shape, { dtype });
    const rstd = zeros([N], { dtype });
    kernelsFor(dtype, opts?.kernels).rmsnormForward(out.data, rstd.data, x.data, weight.data, N, C, eps);
    if (needsGrad(x, weight)) record('rmsnorm', out, [x, weight], [x, weight, rstd], opts?.kernels);
    return out;
  });
}

export function rmsnormBackward(g: Tensor, node: Node<TrainKernels | undefined>): Grads {
  const [x, weight, rstd] = node.saved;
  const C = weight.size;
  const dtype = floatDtype('rmsnorm', g);
  const dx = zeros(x.shape, { dtype });
  const dw = zeros(weight.shape, { dtype }); // the kernel accumulates into it
  kernelsFor(dtype, node.ctx).rmsnormBackward(dx.data, dw.data, g.data, x.data, weight.data, rstd.data, x.size / C, C);
  return [node.inputs[0].requiresGrad ? dx : undefined, node.inputs[1].requiresGrad ? dw : undefined];
}
