/**
 * KV cache for generation: per layer, the rotated keys and the values of every position seen so
 * far, [B, S, nkv, hd] (the layout the attention op takes, so a step needs no transpose). A forward
 * with a cache runs only the new positions: their keys / values are appended, the queries attend to
 * all S, and positions continue from `length`. Every row of the batch has the same length (no
 * ragged batches). Inference only: tensors that carry gradients are refused, so a cache never
 * keeps a graph alive.
 * Model hooks (hooks.ts) keep their per-sequence state here too: the first `virtual` positions are the
 * hooks' (a prefix, virtual tokens), and a hook's own state (a side network's cache) lives in a slot
 * that reset() and dispose() free with the rest.
 * Appending copies the cache (concat); per step that is O(S) like the attention itself.
 */
import { PeftError } from '../errors.js';
import { concat } from '../ops/movement.js';
import { keep } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

/** What a hook keeps in a slot. */
export interface CacheSlot { dispose(): void }

export class KvCache {
  readonly #layers: ({ k: Tensor; v: Tensor } | undefined)[];
  readonly #slots = new Map<string, CacheSlot>();
  /** Positions cached so far (the next token's position). */
  length = 0;
  /** Of those, the positions the model's hooks put in front of the caller's tokens (prefix entries, virtual tokens). */
  virtual = 0;

  constructor(readonly numLayers: number) {
    this.#layers = new Array(numLayers).fill(undefined);
  }

  /**
   * Appends k / v [B, T, nkv, hd] of `layer` and returns the cached [B, length + T, nkv, hd]. The cache
   * owns what it returns (valid until the next append or dispose); the model calls `advance` once per forward.
   */
  append(layer: number, k: Tensor, v: Tensor): [Tensor, Tensor] {
    if (k.requiresGrad || v.requiresGrad) {
      throw new PeftError('E_INPUT', 'the KV cache is for inference: run the forward pass under noGrad()');
    }
    if (layer < 0 || layer >= this.numLayers) throw new PeftError('E_INPUT', `KV cache has no layer ${layer}`);
    const old = this.#layers[layer];
    if (old && (old.k.shape[0] !== k.shape[0] || old.k.shape[1] !== this.length)) {
      throw new PeftError('E_SHAPE', `KV cache layer ${layer} holds [${old.k.shape.join(', ')}], cannot append [${k.shape.join(', ')}]`);
    }
    const next = old ? { k: keep(concat([old.k, k], 1)), v: keep(concat([old.v, v], 1)) } : { k: keep(k), v: keep(v) };
    old?.k.dispose();
    old?.v.dispose();
    this.#layers[layer] = next;
    return [next.k, next.v];
  }

  /** Moves the position counter past the T positions the last forward appended, the first `virtual` of them the hooks'. */
  advance(T: number, virtual = 0): void {
    this.length += T;
    this.virtual += virtual;
  }

  /** The state a hook keeps under `key` for this sequence, made by `create` on first use. */
  slot<S extends CacheSlot>(key: string, create: () => S): S {
    let s = this.#slots.get(key);
    if (!s) this.#slots.set(key, s = create());
    return s as S;
  }

  /** Drops every cached tensor and slot; the cache starts over at position 0. */
  reset(): void {
    for (const l of this.#layers) {
      l?.k.dispose();
      l?.v.dispose();
    }
    this.#layers.fill(undefined);
    for (const s of this.#slots.values()) s.dispose();
    this.#slots.clear();
    this.length = 0;
    this.virtual = 0;
  }

  dispose(): void {
    this.reset();
  }
}
