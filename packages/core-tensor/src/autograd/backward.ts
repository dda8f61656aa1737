/**
 * Reverse-mode backward: topologically order the recorded graph above `root`, then run each node's
 * gradient (from the table in gradients.ts) from the root down, with grad mode off. Gradients of
 * intermediate tensors live only until their node has run; a node's saved activations are released
 * right after its gradient ran; leaves that require grad accumulate into `.grad` (+=).
 * The graph is consumed: a second backward through it throws.
 */
import { PeftError } from '../errors.js';
import type { Grads, Node } from '../ops/node.js';
import { noGrad, releaseSaved } from '../ops/tape.js';
import { copyOf, ones } from '../tensor/create.js';
import { keep, tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { gradients } from './gradients.js';

const shapeText = (s: readonly number[]): string => `[${s.join(', ')}]`;

function consumed(): PeftError {
  return new PeftError('E_RUNTIME',
    'backward through a graph that was already consumed (by backward, or disposed); run the forward again');
}

/** Tensors with nodes reachable from root, inputs before their users (iterative DFS). */
function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Node>([root.node!]);
  const stack: [Tensor, number][] = [[root, 0]];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const inputs = top[0].node!.inputs;
    if (top[1] < inputs.length) {
      const x = inputs[top[1]++];
      if (!x.node || !x.requiresGrad || seen.has(x.node)) continue;
      if (x.node.released) throw consumed();
      seen.add(x.node);
      stack.push([x, 0]);
    } else {
      stack.pop();
      order.push(top[0]);
    }
  }
  return order;
}

/** target + g, in place unless target's storage is shared (then a fresh tensor). Disposes g. */
function accumulate(target: Tensor, g: Tensor): Tensor {
  let out = target;
  if (target.storage.refs > 1) {
    out = copyOf(target);
    target.dispose();
  }
  const o = out.data;
  const d = g.data;
  for (let i = 0; i < o.length; i++) o[i] += d[i];
  g.dispose();
  return out;
}

function deliver(x: Tensor, g: Tensor, grads: Map<Tensor, Tensor>): void {
  if (!x.node) {
    x.grad = x.grad ? keep(accumulate(x.grad, g)) : keep(g);
    return;
  }
  const prev = grads.get(x);
  grads.set(x, prev ? accumulate(prev, g) : g);
}

/**
 * Hands each input its gradient. A tensor returned twice, or `g` itself (the node's upstream
 * gradient, e.g. add passing it through), is handed over once and copied for the others: deliver
 * may add into what it receives, so no tensor may reach two places. Copies are made before any
 * delivery, since delivering disposes what it accumulates.
 */
function distribute(node: Node, gs: Grads, g: Tensor, grads: Map<Tensor, Tensor>): void {
  const taken = new Set<Tensor>();
  const plan: [Tensor, Tensor][] = [];
  node.inputs.forEach((x, k) => {
    const gk = gs[k];
    if (gk === undefined || !x.requiresGrad) return;
    if (gk.shape.length !== x.shape.length || gk.shape.some((s, i) => s !== x.shape[i])) {
      throw new PeftError('E_RUNTIME',
        `gradient of ${node.op} input ${k} is ${shapeText(gk.shape)}, input is ${shapeText(x.shape)}`);
    }
    plan.push([x, taken.has(gk) ? copyOf(gk) : gk]);
    taken.add(gk);
  });
  for (const gk of gs) if (gk && !taken.has(gk) && gk !== g) gk.dispose();
  if (!taken.has(g)) g.dispose();
  for (const [x, gk] of plan) deliver(x, gk, grads);
}

function run(root: Tensor, seed: Tensor): void {
  if (!root.node) {
    deliver(root, seed, new Map());
    return;
  }
  if (root.node.released) throw consumed();
  const order = topoOrder(root);
  const grads = new Map<Tensor, Tensor>([[root, seed]]);
  for (let i = order.length - 1; i >= 0; i--) {
    const node = order[i].node!;
    const g = grads.get(order[i]);
    grads.delete(order[i]);
    // A node no gradient reached (its output fed only non-differentiable paths) just lets go.
    const gs = g === undefined ? undefined : tidy(() => gradients[node.op](g, node as Node<never>));
    releaseSaved(node); // before distributing: activations go as early as possible
    if (gs !== undefined) distribute(node, gs, g!, grads);
    node.released = true;
    node.inputs = [];
  }
}

/**
 * Accumulates d(root)/d(leaf) into leaf.grad for every leaf that requires grad. `grad` is the
 * upstream gradient (defaults to ones, i.e. root is treated as summed); it is not consumed.
 */
export function backward(root: Tensor, grad?: Tensor): void {
  if (!root.requiresGrad) throw new PeftError('E_INPUT', 'backward() on a tensor that does not require grad');
  if (grad && (grad.dtype !== root.dtype || shapeText(grad.shape) !== shapeText(root.shape))) {
    throw new PeftError('E_SHAPE',
      `backward(): grad ${grad.dtype} ${shapeText(grad.shape)} does not match ${root.dtype} ${shapeText(root.shape)}`);
  }
  noGrad(() => tidy(() => {
    const dtype = root.dtype === 'f64' ? 'f64' : 'f32';
    run(root, grad ? copyOf(grad) : ones(root.shape, { dtype }));
  }));
}
