/**
 * linear (fused): y = x W^T + b, as torch.nn.functional.linear. x [.., in], W [out, in] (f32 / f64,
 * or a frozen bf16 / nf4 / fp4 / int8 weight), b [out]. A frozen W only ever gets dx: its
 * gradient is never computed, and no gradient buffer exists for it.
 */
import type { Grads, Node } from './node.js';
import { needsGrad, record } from './tape.js';
import type { TrainKernels } from '../backend/train-kernels.js';
import { PeftError } from '../errors.js';
import { zeros } from '../tensor/create.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { kernelsFor, type KernelOptions } from './kernels.js';
import { checkLive, floatDtype } from './loops.js';
import { matmulW, matmulWt } from './weights.js';

interface LinearCtx { kernels?: TrainKernels; saveX: boolean; saveW: boolean }

function checkShapes(x: Tensor, w: Tensor, bias: Tensor | undefined): void {
  const text = (t: Tensor): string => `[${t.shape.join(', ')}]`;
  checkLive('linear', w);
  if (w.rank !== 2 || x.rank < 1 || x.shape[x.rank - 1] !== w.shape[1]) {
    throw new PeftError('E_SHAPE', `linear: x ${text(x)} does not fit weight ${text(w)} ([out, in])`);
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== w.shape[0] || bias.dtype !== x.dtype)) {
    throw new PeftError('E_SHAPE', `linear: bias ${bias.dtype} ${text(bias)} does not fit weight ${text(w)} for ${x.dtype} x`);
  }
}

export function linear(x: Tensor, weight: Tensor, bias?: Tensor, opts?: KernelOptions): Tensor {
  const dtype = floatDtype('linear', x);
  checkShapes(x, weight, bias);
  const [out, inF] = weight.shape;
  const m = x.size / inF;
  return tidy(() => { // a kernel that throws leaves nothing allocated
    const y = zeros([...x.shape.slice(0, -1), out], { dtype });
    matmulWt(kernelsFor(dtype, opts?.kernels), m, x.data, weight, 0, y.data);
    if (bias) {
      const yd = y.data;
      const b = bias.data;
      for (let r = 0; r < m; r++) for (let j = 0; j < out; j++) yd[r * out + j] += b[j];
    }
    if (needsGrad(x, weight, bias)) {
      // dx needs W, dW needs x: keep only what some gradient reads.
      const ctx: LinearCtx = { kernels: opts?.kernels, saveX: weight.requiresGrad, saveW: x.requiresGrad };
      const saved = [...(ctx.saveX ? [x] : []), ...(ctx.saveW ? [weight] : [])];
      record('linear', y, bias ? [x, weight, bias] : [x, weight], saved, ctx);
    }
    return y;
  });
}

/** dx = dy W; dW = dy^T x; db = column sums of dy. saved: x (if dW), W (if dx). */
export function linearBackward(g: Tensor, node: Node<LinearCtx>): Grads {
  const [x, weight, bias] = node.inputs;
  const { saveX, saveW } = node.ctx;
  const sx = saveX ? node.saved[0] : undefined;
  const sw = saveW ? node.saved[saveX ? 1 : 0] : undefined;
  const dtype = floatDtype('linear', g);
  const k = kernelsFor(dtype, node.ctx.kernels);
  const [out, inF] = weight.shape;
  const m = g.size / out;
  let dx: Tensor | undefined;
  let dw: Tensor | undefined;
  let db: Tensor | undefined;
  if (sw && x.requiresGrad) {
    dx = zeros(x.shape, { dtype });
    matmulW(k, m, g.data, sw, 0, dx.data);
  }
  if (sx && weight.requiresGrad) {
    dw = zeros(weight.shape, { dtype });
    k.gemm(true, false, out, inF, m, 1, g.data, sx.data, 0, dw.data);
  }
  if (bias?.requiresGrad) {
    db = zeros([out], { dtype });
    const d = db.data;
    const gd = g.data;
    for (let r = 0; r < m; r++) for (let j = 0; j < out; j++) d[j] += gd[r * out + j];
  }
  return [dx, dw, db];
}
