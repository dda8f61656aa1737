/**
 * Creating tensors. Values are copied into allocator storage (zeroed), so every float tensor is
 * contiguous and owned. `requiresGrad: true` makes a parameter: a leaf that no scope disposes.
 * Random init is seeded (xoshiro128**), so a seed gives the same values on every machine.
 */
import { PeftError } from '../errors.js';
import { Xoshiro128 } from '../random/rng.js';
import { Storage } from './storage.js';
import { Tensor } from './tensor.js';
import { numelOf, type FloatDtype, type FrozenData, type PackedData } from './types.js';

export interface CreateOptions {
  dtype?: FloatDtype;
  requiresGrad?: boolean;
}

export interface RandomOptions extends CreateOptions {
  seed?: number;
}

function checkShape(shape: readonly number[]): void {
  for (const s of shape) {
    if (!Number.isSafeInteger(s) || s < 0) throw new PeftError('E_SHAPE', `bad tensor shape [${shape.join(', ')}]`);
  }
}

function leaf(t: Tensor, opts: CreateOptions | undefined): Tensor {
  if (opts?.requiresGrad) t.requiresGrad = true;
  return t;
}

/** A zeroed tensor (the building block of every op's output). */
export function zeros(shape: readonly number[], opts?: CreateOptions): Tensor {
  checkShape(shape);
  const dtype = opts?.dtype ?? 'f32';
  return leaf(new Tensor(Storage.float(dtype, numelOf(shape)), shape, dtype), opts);
}

export function full(shape: readonly number[], value: number, opts?: CreateOptions): Tensor {
  const t = zeros(shape, opts);
  if (value !== 0) t.data.fill(value);
  return t;
}

export function ones(shape: readonly number[], opts?: CreateOptions): Tensor {
  return full(shape, 1, opts);
}

export function zerosLike(t: Tensor): Tensor {
  return zeros(t.shape, { dtype: t.dtype === 'f64' ? 'f64' : 'f32' });
}

/** A tensor holding a copy of `values` (shape defaults to [values.length]). */
export function tensor(values: ArrayLike<number>, shape?: readonly number[], opts?: CreateOptions): Tensor {
  const s = shape ?? [values.length];
  if (numelOf(s) !== values.length) {
    throw new PeftError('E_SHAPE', `${values.length} values do not fill shape [${s.join(', ')}]`);
  }
  const t = zeros(s, { dtype: opts?.dtype });
  t.data.set(values);
  return leaf(t, opts);
}

export function scalar(value: number, opts?: CreateOptions): Tensor {
  return tensor([value], [], opts);
}

/** Normal(mean, std) samples by Box-Muller. */
export function randn(shape: readonly number[], opts?: RandomOptions & { mean?: number; std?: number }): Tensor {
  const t = zeros(shape, { dtype: opts?.dtype });
  const rng = new Xoshiro128(opts?.seed ?? 0);
  const d = t.data;
  const mean = opts?.mean ?? 0;
  const std = opts?.std ?? 1;
  for (let i = 0; i < d.length; i += 2) {
    const r = std * Math.sqrt(-2 * Math.log(1 - rng.nextFloat()));
    const a = 2 * Math.PI * rng.nextFloat();
    d[i] = mean + r * Math.cos(a);
    if (i + 1 < d.length) d[i + 1] = mean + r * Math.sin(a);
  }
  return leaf(t, opts);
}

/** Uniform samples in [low, high). */
export function uniform(shape: readonly number[], low: number, high: number, opts?: RandomOptions): Tensor {
  const t = zeros(shape, { dtype: opts?.dtype });
  const rng = new Xoshiro128(opts?.seed ?? 0);
  const d = t.data;
  for (let i = 0; i < d.length; i++) d[i] = low + (high - low) * rng.nextFloat();
  return leaf(t, opts);
}

function expectLength(what: string, got: number, want: number): void {
  if (got !== want) throw new PeftError('E_SHAPE', `frozen weight: ${what} has ${got} elements, expected ${want}`);
}

/** A packed weight is 2-D ([out, in]: its rows are what readRows reads) and brings the functions it claims. */
function checkPacked(d: PackedData, shape: readonly number[]): void {
  const what = `frozen ${String(d.format)} weight`;
  if (shape.length !== 2) throw new PeftError('E_SHAPE', `a ${what} must be 2-D, got [${shape.join(', ')}]`);
  if (typeof d.dequantize !== 'function') throw new PeftError('E_RUNTIME', `${what}: dequantize is not a function`);
  for (const f of ['readRows', 'gemm'] as const) {
    if (d[f] !== undefined && typeof d[f] !== 'function') throw new PeftError('E_RUNTIME', `${what}: ${f} is not a function`);
  }
  const step = d.rowStep ?? 1;
  if (!Number.isSafeInteger(step) || step <= 0) throw new PeftError('E_RUNTIME', `${what}: bad rowStep ${step}`);
}

/**
 * A frozen weight of logical `shape` ([out, in] for linear) wrapping the given arrays (not copied).
 * int8 and packed weights need a 2-D shape (one scale per row; rows are what a packed format reads).
 */
export function frozenTensor(data: FrozenData, shape: readonly number[]): Tensor {
  checkShape(shape);
  const n = numelOf(shape);
  if (data.kind === 'bf16') expectLength('bits', data.bits.length, n);
  else if (data.kind === 'packed') checkPacked(data, shape);
  else if (data.kind === 'int8') {
    if (shape.length !== 2) throw new PeftError('E_SHAPE', `an int8 weight must be 2-D, got [${shape.join(', ')}]`);
    expectLength('cb', data.cb.length, n);
    expectLength('scb', data.scb.length, shape[0]);
  } else {
    if (data.kind !== 'nf4' && data.kind !== 'fp4') throw new PeftError('E_RUNTIME', `frozen weight: unknown kind ${JSON.stringify((data as { kind: unknown }).kind)}`);
    if (!Number.isSafeInteger(data.blocksize) || data.blocksize <= 0) {
      throw new PeftError('E_SHAPE', `frozen weight: bad blocksize ${data.blocksize}`);
    }
    expectLength('packed', data.packed.length, Math.ceil(n / 2));
    expectLength('absmax', data.absmax.length, Math.ceil(n / data.blocksize));
  }
  return new Tensor(Storage.frozen(data), shape, data.kind);
}

/** A detached copy: same shape, dtype and values, no autograd history. */
export function copyOf(t: Tensor): Tensor {
  const c = zeros(t.shape, { dtype: t.dtype === 'f64' ? 'f64' : 'f32' });
  c.data.set(t.data);
  return c;
}
