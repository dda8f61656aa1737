/**
 * One recorded op: the graph edge from a result tensor back to its inputs. `saved` holds private
 * handles on what backward needs (activations, masks, statistics); they are released right after
 * the op's gradient ran, or when no live tensor can reach the node any more. `ctx` carries small
 * non-tensor facts (axis, indices, sizes).
 */
import type { Tensor } from '../tensor/tensor.js';
import type { OpKind } from './kinds.js';

export interface Node<C = unknown> {
  readonly op: OpKind;
  /** The op's tensor inputs (graph edges only: these handles do not keep storage alive). */
  inputs: readonly Tensor[];
  /** Private handles on saved tensors (storage retained until released). */
  saved: Tensor[];
  readonly ctx: C;
  /** Live references: the result tensor's handle plus every node that uses the result. */
  refs: number;
  /** Saved tensors released and inputs dropped: by backward, or when nothing live reaches the node. */
  released: boolean;
}

/** One gradient per input (undefined where that input needs none), each shaped like the input. */
export type Grads = readonly (Tensor | undefined)[];

/** d(loss)/d(inputs) from d(loss)/d(output) `g`. Runs with grad mode off. */
export type GradFn = (g: Tensor, node: Node<never>) => Grads;
