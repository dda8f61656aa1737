/**
 * The tape: ops call `record` after computing their result, when `needsGrad` says some input
 * requires grad and grad mode is on. In no-grad mode nothing is recorded and nothing is saved.
 * Nodes are reference counted (result handle + consumers), so a graph whose last live tensor is
 * disposed without backward releases its saved activations at once.
 * It lives in ops/ so that ops need nothing above them; autograd/ (backward, the gradient table)
 * reads it.
 */
import { keep } from '../tensor/scope.js';
import { shareStorage, type Tensor } from '../tensor/tensor.js';
import type { OpKind } from './kinds.js';
import type { Node } from './node.js';

let enabled = true;

export function isGradEnabled(): boolean {
  return enabled;
}

/** Runs fn with recording off: results do not require grad and ops save nothing. */
export function noGrad<T>(fn: () => T): T {
  const prev = enabled;
  enabled = false;
  try {
    return fn();
  } finally {
    enabled = prev;
  }
}

/** Whether an op on these inputs must record itself (and so compute what backward needs). */
export function needsGrad(...inputs: readonly (Tensor | undefined)[]): boolean {
  if (!enabled) return false;
  for (const t of inputs) if (t?.requiresGrad) return true;
  return false;
}

/**
 * Attaches a node to `out`. `saved` tensors get private handles (storage retained) so the caller may
 * dispose its own, and so may scopes. Call only when needsGrad(...inputs) is true.
 */
export function record<C>(op: OpKind, out: Tensor, inputs: readonly Tensor[], saved: readonly Tensor[], ctx: C): void {
  const node: Node<C> = {
    op, inputs: [...inputs], saved: saved.map((t) => keep(shareStorage(t, t.shape))), ctx, refs: 1, released: false,
  };
  for (const x of inputs) if (x.node) x.node.refs++;
  out.node = node;
  out.markRequiresGrad();
}

/** Frees what the node saved (backward calls this as soon as the op's gradient has run). */
export function releaseSaved(node: Node): void {
  for (const s of node.saved) s.dispose();
  node.saved = [];
}

/** Drops one reference; at zero, releases the node and, transitively, nodes only it kept alive. */
export function releaseNode(node: Node): void {
  const stack = [node];
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (n.released || --n.refs > 0) continue;
    n.released = true;
    releaseSaved(n);
    for (const x of n.inputs) if (x.node) stack.push(x.node);
    n.inputs = [];
  }
}
