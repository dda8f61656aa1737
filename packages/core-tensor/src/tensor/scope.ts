/**
 * Scopes, as tf.tidy: `tidy(fn)` disposes every tensor created while fn runs except the ones it
 * returns (found in a returned tensor, array or plain object), which move to the enclosing scope.
 * Tensors created outside any scope are the caller's to dispose. Leaves that require grad
 * (parameters) and gradients are never tracked: they outlive the step that made them.
 * Synchronous only: an async fn would let other work create tensors inside the scope.
 */
import { PeftError } from '../errors.js';
import { Tensor } from './tensor.js';

const scopes: Set<Tensor>[] = [];

/** @internal registers a new tensor with the innermost scope. */
export function track(t: Tensor): void {
  if (scopes.length > 0) scopes[scopes.length - 1].add(t);
}

/** @internal forgets a tensor (disposed, or promoted to a parameter). */
export function untrack(t: Tensor): void {
  for (let i = scopes.length - 1; i >= 0; i--) if (scopes[i].delete(t)) return;
}

/** Exempts `t` from every enclosing scope: the caller now owns it. */
export function keep<T extends Tensor>(t: T): T {
  untrack(t);
  return t;
}

function collect(v: unknown, into: Set<Tensor>, depth: number): void {
  if (v instanceof Tensor) into.add(v);
  else if (depth > 8 || v === null || typeof v !== 'object') return;
  else if (Array.isArray(v)) for (const x of v) collect(x, into, depth + 1);
  else if (Object.getPrototypeOf(v) === Object.prototype) for (const x of Object.values(v)) collect(x, into, depth + 1);
}

function disposeAll(set: Set<Tensor>): void {
  for (const t of set) t.dispose();
}

export function tidy<T>(fn: () => T): T {
  const mine = new Set<Tensor>();
  scopes.push(mine);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    disposeAll(mine);
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) {
    disposeAll(mine);
    throw new PeftError('E_RUNTIME', 'tidy()/scope() take a synchronous function (got a Promise)');
  }
  const returned = new Set<Tensor>();
  collect(result, returned, 0);
  for (const t of mine) {
    if (returned.has(t)) track(t);
    else t.dispose();
  }
  return result;
}

/** Same as tidy. */
export const scope = tidy;
