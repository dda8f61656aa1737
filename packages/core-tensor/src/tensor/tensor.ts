/**
 * Tensor: a shape, a dtype and a handle on reference-counted contiguous row-major storage (no
 * strides: views exist only where the layout is unchanged, i.e. reshape). Float tensors (f32, f64)
 * compute and may require grad; frozen tensors (bf16, nf4, fp4, int8) only feed `linear`.
 * `grad` is allocated lazily by backward, and only for leaves that require grad.
 * Methods are one-line delegations to the free functions in ops/ and autograd/.
 */
import { backward } from '../autograd/backward.js';
import { PeftError } from '../errors.js';
import * as ops from '../ops/index.js';
import type { Node } from '../ops/node.js';
import { releaseNode } from '../ops/tape.js';
import { track, untrack } from './scope.js';
import { countTensor, type Storage } from './storage.js';
import { isFloatDtype, numelOf, type F, type FrozenData, type TensorDtype } from './types.js';

export class Tensor {
  readonly shape: readonly number[];
  readonly dtype: TensorDtype;
  /** Number of elements. */
  readonly size: number;
  /** @internal the storage this handle holds one reference on */
  readonly storage: Storage;
  /** @internal the recorded op that produced this tensor (undefined for leaves) */
  node: Node | undefined = undefined;
  /** d(loss)/d(this), for leaves that require grad, after backward. */
  grad: Tensor | undefined = undefined;
  #requiresGrad = false;
  #disposed = false;

  /** @internal takes over one reference on `storage`; use the creation functions instead. */
  constructor(storage: Storage, shape: readonly number[], dtype: TensorDtype) {
    this.storage = storage;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.size = numelOf(shape);
    countTensor(1);
    track(this);
  }

  get requiresGrad(): boolean { return this.#requiresGrad; }
  /** Setting true on a leaf makes it a parameter: it leaves every scope (the caller owns it). */
  set requiresGrad(v: boolean) { this.#requiresGrad = checkRequiresGrad(this, v); }
  /** @internal set by the tape on recorded results. */
  markRequiresGrad(): void { this.#requiresGrad = true; }
  get isDisposed(): boolean { return this.#disposed; }
  get rank(): number { return this.shape.length; }
  /** The values (f32 / f64 tensors only); a live view of the storage, not a copy. */
  get data(): F { return floatData(this); }
  /** The packed weight arrays of a frozen tensor. */
  get frozen(): FrozenData { return frozenData(this); }

  /** Releases this handle now (idempotent); storage goes when nothing else needs it. */
  dispose(): void { this.#disposed = disposeHandle(this, this.#disposed); }

  toArray(): number[] { return Array.from(this.data); }
  item(): number { return item(this); }
  backward(grad?: Tensor): void { backward(this, grad); }

  add(b: Tensor): Tensor { return ops.add(this, b); }
  sub(b: Tensor): Tensor { return ops.sub(this, b); }
  mul(b: Tensor): Tensor { return ops.mul(this, b); }
  div(b: Tensor): Tensor { return ops.div(this, b); }
  neg(): Tensor { return ops.neg(this); }
  exp(): Tensor { return ops.exp(this); }
  log(): Tensor { return ops.log(this); }
  sqrt(): Tensor { return ops.sqrt(this); }
  rsqrt(): Tensor { return ops.rsqrt(this); }
  sigmoid(): Tensor { return ops.sigmoid(this); }
  silu(): Tensor { return ops.silu(this); }
  mulScalar(c: number): Tensor { return ops.mulScalar(this, c); }
  addScalar(c: number): Tensor { return ops.addScalar(this, c); }
  sum(axis?: number, keepdim = false): Tensor { return ops.sum(this, axis, keepdim); }
  mean(axis?: number, keepdim = false): Tensor { return ops.mean(this, axis, keepdim); }
  max(axis: number, keepdim = false): Tensor { return ops.max(this, axis, keepdim); }
  softmax(axis = -1): Tensor { return ops.softmax(this, axis); }
  reshape(shape: readonly number[]): Tensor { return ops.reshape(this, shape); }
  view(shape: readonly number[]): Tensor { return ops.reshape(this, shape); }
  transpose(a: number, b: number): Tensor { return ops.transpose(this, a, b); }
  slice(axis: number, start: number, end: number): Tensor { return ops.slice(this, axis, start, end); }
}

function floatData(t: Tensor): F {
  if (!isFloatDtype(t.dtype)) {
    throw new PeftError('E_INPUT', `a ${t.dtype} tensor has no float values (frozen weights feed linear only)`);
  }
  if (t.isDisposed) throw new PeftError('E_RUNTIME', `tensor [${t.shape.join(', ')}] used after dispose()`);
  return t.storage.data as F;
}

function frozenData(t: Tensor): FrozenData {
  if (isFloatDtype(t.dtype)) throw new PeftError('E_INPUT', `a ${t.dtype} tensor is not a frozen weight`);
  if (t.isDisposed) throw new PeftError('E_RUNTIME', `tensor [${t.shape.join(', ')}] used after dispose()`);
  return t.storage.data as FrozenData;
}

function item(t: Tensor): number {
  if (t.size !== 1) throw new PeftError('E_SHAPE', `item() needs a one-element tensor, got [${t.shape.join(', ')}]`);
  return t.data[0];
}

function checkRequiresGrad(t: Tensor, v: boolean): boolean {
  if (v && !isFloatDtype(t.dtype)) throw new PeftError('E_INPUT', `a frozen ${t.dtype} tensor cannot require grad`);
  if (v && !t.node) untrack(t);
  return v;
}

/** Releases t's references (storage, graph node, gradient) unless already done; returns true (disposed). */
function disposeHandle(t: Tensor, already: boolean): true {
  if (already) return true;
  countTensor(-1);
  untrack(t);
  t.storage.release();
  if (t.node) releaseNode(t.node);
  t.grad?.dispose();
  t.grad = undefined;
  return true;
}

/**
 * @internal a second handle on t's storage with another shape of the same size (reshape views,
 * and the tape's private handles on saved tensors). Not tracked by scopes when made for the tape.
 */
export function shareStorage(t: Tensor, shape: readonly number[]): Tensor {
  t.storage.retain();
  return new Tensor(t.storage, shape, t.dtype);
}
