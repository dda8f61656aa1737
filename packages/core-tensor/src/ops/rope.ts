/**
 * rope (fused): HF rotate_half rotary embedding. x [.., heads, hd] (B*T rows of heads x hd),
 * cos / sin tables [maxPos, hd/2] built by the caller (their theta and scaling are model config),
 * pos [rows]: the absolute position of each row. The tables are constants: no gradient flows to them.
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

interface RopeCtx { pos: Int32Array; kernels?: TrainKernels }

function dims(x: Tensor, pos: Int32Array): [number, number, number] {
  if (x.rank < 2) throw new PeftError('E_SHAPE', `rope: x must be [.., heads, hd], got [${x.shape.join(', ')}]`);
  const heads = x.shape[x.rank - 2];
  const hd = x.shape[x.rank - 1];
  const BT = heads * hd === 0 ? 0 : x.size / (heads * hd);
  if (pos.length !== BT) throw new PeftError('E_SHAPE', `rope: ${pos.length} positions for ${BT} rows`);
  return [BT, heads, hd];
}

export function rope(x: Tensor, cos: Tensor, sin: Tensor, pos: Int32Array, opts?: KernelOptions): Tensor {
  const dtype = sameDtype('rope', x, cos, sin);
  const [BT, heads, hd] = dims(x, pos);
  return tidy(() => { // a kernel that throws (e.g. a position past the tables) leaves nothing allocated
    const out = zeros(x.shape, { dtype });
    kernelsFor(dtype, opts?.kernels).ropeForward(out.data, x.data, cos.data, sin.data, pos, BT, heads, hd);
    // pos is copied: callers reuse position buffers between forward and backward.
    if (needsGrad(x)) record('rope', out, [x], [cos, sin], { pos: pos.slice(), kernels: opts?.kernels });
    return out;
  });
}

/** The inverse rotation of g. saved: cos, sin. */
export function ropeBackward(g: Tensor, node: Node<RopeCtx>): Grads {
  const [cos, sin] = node.saved;
  const { pos, kernels } = node.ctx;
  const [BT, heads, hd] = dims(g, pos);
  const dtype = floatDtype('rope', g);
  const dx = zeros(g.shape, { dtype });
  kernelsFor(dtype, kernels).ropeBackward(dx.data, g.data, cos.data, sin.data, pos, BT, heads, hd);
  return [dx];
}
