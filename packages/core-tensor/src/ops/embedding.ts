/**
 * Row gathers: embedding lookup (backward scatter-adds into the table) and dropout (seeded, with
 * its scaled keep-mask saved for backward).
 */
import type { Grads, Node } from './node.js';
import { needsGrad, record } from './tape.js';
import { PeftError } from '../errors.js';
import { Xoshiro128 } from '../random/rng.js';
import { zeros } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import { floatDtype, map2 } from './loops.js';
import { reshape } from './movement.js';

/**
 * weight [V, C], ids [...shape] (flattened, shape defaults to [ids.length]) -> [...shape, C].
 * torch.nn.functional.embedding without padding_idx / max_norm.
 */
export function embedding(weight: Tensor, ids: Int32Array, shape: readonly number[] = [ids.length]): Tensor {
  const dtype = floatDtype('embedding', weight);
  if (weight.rank !== 2) throw new PeftError('E_SHAPE', `embedding: weight must be [V, C], got [${weight.shape.join(', ')}]`);
  if (shape.reduce((n, s) => n * s, 1) !== ids.length) {
    throw new PeftError('E_SHAPE', `embedding: ${ids.length} ids do not fill shape [${shape.join(', ')}]`);
  }
  const [V, C] = weight.shape;
  for (const id of ids) if (id < 0 || id >= V) throw new PeftError('E_INPUT', `embedding: token id ${id} out of range [0, ${V})`);
  const out = zeros([...shape, C], { dtype });
  const o = out.data;
  const w = weight.data;
  for (let i = 0; i < ids.length; i++) o.set(w.subarray(ids[i] * C, (ids[i] + 1) * C), i * C);
  // ids are copied: callers reuse batch buffers between forward and backward.
  if (needsGrad(weight)) record('embedding', out, [weight], [], ids.slice());
  return out;
}

/** dW[id] += g[i] for every position i holding id. */
export function embeddingBackward(g: Tensor, node: Node<Int32Array>): Grads {
  const weight = node.inputs[0];
  const C = weight.shape[1];
  const ids = node.ctx;
  const dw = zeros(weight.shape, { dtype: floatDtype('embedding', g) });
  const o = dw.data;
  const d = g.data;
  for (let i = 0; i < ids.length; i++) {
    const row = ids[i] * C;
    for (let c = 0; c < C; c++) o[row + c] += d[i * C + c];
  }
  return [dw];
}

export interface DropoutOptions {
  /** Seed of the mask's random stream (xoshiro128**): same seed, same mask. */
  seed: number;
  /** false (eval) passes x through. Default true. */
  training?: boolean;
}

/** Zeroes each element with probability p and scales the rest by 1/(1-p) (inverted dropout). */
export function dropout(x: Tensor, p: number, opts: DropoutOptions): Tensor {
  const dtype = floatDtype('dropout', x);
  if (!(p >= 0 && p <= 1)) throw new PeftError('E_INPUT', `dropout: p must be in [0, 1], got ${p}`);
  if (opts.training === false || p === 0) return reshape(x, x.shape);
  const mask = zeros(x.shape, { dtype });
  const m = mask.data;
  const scale = p < 1 ? 1 / (1 - p) : 0;
  const rng = new Xoshiro128(opts.seed);
  for (let i = 0; i < m.length; i++) m[i] = rng.nextFloat() >= p ? scale : 0;
  const out = map2('dropout', x, mask, (v, k) => v * k);
  if (needsGrad(x)) record('dropout', out, [x], [mask], undefined);
  mask.dispose();
  return out;
}

export function dropoutBackward(g: Tensor, node: Node<undefined>): Grads {
  return [map2('dropout', g, node.saved[0], (d, k) => d * k)];
}
