/**
 * swiglu (fused), the Llama MLP's gate: out = silu(gate) * up, elementwise. gate, up: [.., H].
 */
import type { Grads, Node } from './node.js';
import { needsGrad, record } from './tape.js';
import type { TrainKernels } from '../backend/train-kernels.js';
import { PeftError } from '../errors.js';
import { zeros } from '../tensor/create.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { kernelsFor, type KernelOptions } from './kernels.js';
import { floatDtype, sameDtype, sameShape } from './loops.js';

export function swiglu(gate: Tensor, up: Tensor, opts?: KernelOptions): Tensor {
  const dtype = sameDtype('swiglu', gate, up);
  if (!sameShape(gate.shape, up.shape)) {
    throw new PeftError('E_SHAPE', `swiglu: gate [${gate.shape.join(', ')}] and up [${up.shape.join(', ')}] differ`);
  }
  return tidy(() => { // a kernel that throws leaves nothing allocated
    const out = zeros(gate.shape, { dtype });
    kernelsFor(dtype, opts?.kernels).swigluForward(out.data, gate.data, up.data, gate.size);
    if (needsGrad(gate, up)) record('swiglu', out, [gate, up], [gate, up], opts?.kernels);
    return out;
  });
}

export function swigluBackward(g: Tensor, node: Node<TrainKernels | undefined>): Grads {
  const [gate, up] = node.saved;
  const dtype = floatDtype('swiglu', g);
  const dgate = zeros(gate.shape, { dtype });
  const dup = zeros(up.shape, { dtype });
  kernelsFor(dtype, node.ctx).swigluBackward(dgate.data, dup.data, g.data, gate.data, up.data, gate.size);
  return [node.inputs[0].requiresGrad ? dgate : undefined, node.inputs[1].requiresGrad ? dup : undefined];
}
