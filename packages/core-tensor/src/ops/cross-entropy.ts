/**
 * crossEntropy (fused): mean token cross-entropy of the LM head's logits, from the hidden states,
 * WITHOUT ever holding the N x V logits. Forward walks the rows in chunks: logits = h W^T (gemm),
 * then crossEntropyRows leaves the chunk's logit gradient in place, which (when grads are needed)
 * is folded at once into dhidden = dlogits W and dW += dlogits^T h. Backward then only scales the
 * stored dhidden / dW by the upstream gradient. Matches F.cross_entropy(h @ W.T, targets,
 * ignore_index, reduction='mean'): NaN when every target is ignored.
 * hidden [.., C] (N rows), weight [V, C] (any weight kind), targets [N].
 */
import type { Grads, Node } from './node.js';
import { needsGrad, record } from './tape.js';
import type { TrainKernels } from '../backend/train-kernels.js';
import { PeftError } from '../errors.js';
import { scalar, zeros } from '../tensor/create.js';
import { tidy } from '../tensor/scope.js';
import { shareStorage, type Tensor } from '../tensor/tensor.js';
import { kernelsFor, type KernelOptions } from './kernels.js';
import { checkLive, floatDtype } from './loops.js';
import { matmulW, matmulWt } from './weights.js';

export interface CrossEntropyOptions extends KernelOptions {
  /** Targets equal to this are skipped (default -100, as torch). */
  ignoreIndex?: number;
  /** Rows per logits chunk; default keeps a chunk near 4M values (16 MB in f32). */
  chunkRows?: number;
}

interface CeCtx { dh: boolean; dw: boolean }

interface Pass {
  k: TrainKernels; hidden: Tensor; weight: Tensor; targets: Int32Array; ignore: number; rows: number;
  gradScale: number; dh?: Tensor; dw?: Tensor;
}

/**
 * One walk over the rows, `rows` at a time: logits chunk [n, V] = h W^T, per-row loss and (in place)
 * gradScale * dlogits, then dh[rows] = dlogits W and dW += dlogits^T h. Returns the summed loss.
 */
function chunkedPass(p: Pass): number {
  const { k, hidden, weight, targets, rows } = p;
  const [V, C] = weight.shape;
  const dtype = floatDtype('crossEntropy', hidden);
  const logits = zeros([rows, V], { dtype });
  const lossRows = zeros([rows], { dtype });
  const h = hidden.data;
  let total = 0;
  for (let r0 = 0; r0 < targets.length; r0 += rows) {
    const n = Math.min(rows, targets.length - r0);
    const chunk = logits.data.subarray(0, n * V);
    const hChunk = h.subarray(r0 * C, (r0 + n) * C);
    matmulWt(k, n, hChunk, weight, 0, chunk);
    k.crossEntropyRows(lossRows.data.subarray(0, n), chunk, targets.subarray(r0, r0 + n), n, V, p.ignore, p.gradScale);
    for (let i = 0; i < n; i++) total += lossRows.data[i];
    if (p.dh) matmulW(k, n, chunk, weight, 0, p.dh.data.subarray(r0 * C, (r0 + n) * C));
    if (p.dw) k.gemm(true, false, V, C, n, 1, chunk, hChunk, 1, p.dw.data);
  }
  return total;
}

export function crossEntropy(hidden: Tensor, weight: Tensor, targets: Int32Array, opts?: CrossEntropyOptions): Tensor {
  const dtype = floatDtype('crossEntropy', hidden);
  checkLive('crossEntropy', weight);
  const [V, C] = weight.shape;
  if (weight.rank !== 2 || hidden.shape[hidden.rank - 1] !== C || targets.length * C !== hidden.size) {
    throw new PeftError('E_SHAPE', `crossEntropy: hidden [${hidden.shape.join(', ')}], weight [${weight.shape.join(', ')}] ` +
      `([V, C]) and ${targets.length} targets do not fit`);
  }
  const ignore = opts?.ignoreIndex ?? -100;
  const rows = Math.max(1, Math.min(targets.length, opts?.chunkRows ?? Math.floor(2 ** 22 / Math.max(V, 1))));
  let count = 0;
  for (const t of targets) if (t !== ignore) count++;
  const grad = needsGrad(hidden, weight);
  return tidy(() => { // scratch and gradients are disposed here; the tape keeps its own handles
    const dh = grad && hidden.requiresGrad ? zeros(hidden.shape, { dtype }) : undefined;
    const dw = grad && weight.requiresGrad ? zeros(weight.shape, { dtype }) : undefined;
    const k = kernelsFor(dtype, opts?.kernels);
    const total = chunkedPass({ k, hidden, weight, targets, ignore, rows, gradScale: count > 0 ? 1 / count : 0, dh, dw });
    const loss = scalar(count > 0 ? total / count : NaN, { dtype });
    if (grad) record('crossEntropy', loss, [hidden, weight], [dh, dw].filter((t) => t !== undefined), { dh: !!dh, dw: !!dw });
    return loss;
  });
}

/** The stored gradients times g (scaled in place: the node is their only owner). saved: dh?, dw?. */
export function crossEntropyBackward(g: Tensor, node: Node<CeCtx>): Grads {
  const scale = g.data[0];
  const [hidden, weight] = node.inputs;
  const out = node.saved.map((t) => {
    if (scale !== 1) {
      const d = t.data;
      for (let i = 0; i < d.length; i++) d[i] *= scale;
    }
    return shareStorage(t, t.shape);
  });
  const dh = node.ctx.dh ? out.shift() : undefined;
  const dw = node.ctx.dw ? out.shift() : undefined;
  return [hidden.requiresGrad ? dh : undefined, weight.requiresGrad ? dw : undefined];
}
