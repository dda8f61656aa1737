/**
 * rmsnorm (fused), HF LlamaRMSNorm: out = x / sqrt(mean(x^2) + eps) * weight over the last dim.
 * x [.., C], weight [C]. Saves x, weight and the per-row rstd [N] (N = x.size / C) for backward.
 * layernorm (fused, computed here in TS: no TrainKernels entry), torch.nn.LayerNorm with its affine
 * weight and bias: out = (x - mean) / sqrt(var + eps) * weight + bias, var the biased variance, as
 * F.layer_norm. For small widths (QST's side downsample ends in one); saves x, weight, mean, rstd.
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

function checkAffine(op: string, x: Tensor, ...ts: Tensor[]): void {
  const C = x.shape[x.rank - 1];
  for (const t of ts) {
    if (t.rank !== 1 || t.shape[0] !== C) throw new PeftError('E_SHAPE', `${op}: weight / bias [${t.shape.join(', ')}] does not fit x [${x.shape.join(', ')}]`);
  }
}

export function layernorm(x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  const dtype = sameDtype('layernorm', x, weight, bias);
  checkAffine('layernorm', x, weight, bias);
  const C = x.shape[x.rank - 1];
  const N = x.size / C;
  return tidy(() => {
    const out = zeros(x.shape, { dtype });
    const mean = zeros([N], { dtype });
    const rstd = zeros([N], { dtype });
    const [xs, w, b, o] = [x.data, weight.data, bias.data, out.data];
    for (let n = 0; n < N; n++) {
      let m = 0;
      for (let c = 0; c < C; c++) m += xs[n * C + c];
      m /= C;
      let v = 0;
      for (let c = 0; c < C; c++) v += (xs[n * C + c] - m) ** 2;
      const r = 1 / Math.sqrt(v / C + eps);
      for (let c = 0; c < C; c++) o[n * C + c] = (xs[n * C + c] - m) * r * w[c] + b[c];
      mean.data[n] = m;
      rstd.data[n] = r;
    }
    if (needsGrad(x, weight, bias)) record('layernorm', out, [x, weight, bias], [x, weight, mean, rstd], undefined);
    return out;
  });
}

/**
 * With xhat = (x - mean) rstd and dxhat = g w: dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)),
 * dweight = sum over rows of g xhat, dbias = sum of g. saved: x, weight, mean, rstd.
 */
export function layernormBackward(g: Tensor, node: Node<undefined>): Grads {
  const [x, weight, mean, rstd] = node.saved;
  const C = weight.size;
  const N = x.size / C;
  const dtype = floatDtype('layernorm', g);
  const [dx, dw, db] = [zeros(x.shape, { dtype }), zeros([C], { dtype }), zeros([C], { dtype })];
  const [xs, w, gs] = [x.data, weight.data, g.data];
  const xhat = new Float64Array(C);
  for (let n = 0; n < N; n++) {
    const [m, r] = [mean.data[n], rstd.data[n]];
    let sumD = 0;
    let sumDX = 0;
    for (let c = 0; c < C; c++) {
      const i = n * C + c;
      xhat[c] = (xs[i] - m) * r;
      const d = gs[i] * w[c];
      sumD += d;
      sumDX += d * xhat[c];
      dw.data[c] += gs[i] * xhat[c];
      db.data[c] += gs[i];
    }
    for (let c = 0; c < C; c++) dx.data[n * C + c] = r * (gs[n * C + c] * w[c] - sumD / C - (xhat[c] * sumDX) / C);
  }
  const [needX, needW, needB] = node.inputs.map((t) => t.requiresGrad);
  if (!needX) dx.dispose();
  if (!needW) dw.dispose();
  if (!needB) db.dispose();
  return [needX ? dx : undefined, needW ? dw : undefined, needB ? db : undefined];
}
