/**
 * Model hooks: how a method changes what the Llama computes without a branch in train / eval / generate
 * (DESIGN.md "Extension points"). A method's `attach` (training) or `loadAdapter` (inference) installs
 * one ModelHooks with `model.setHooks()`; every forward, loss and KV-cached step then goes through them.
 *
 *   inputs  prompt tuning, P-tuning, DePT   virtual tokens prepended to the input embeddings
 *   prefix  prefix tuning, NTK prefix       per layer, keys / values in front of the real ones
 *   head    QST, LST                        a side network: backbone hidden states -> the LM head's input
 *
 * Positions follow PEFT (shared/references/prompt-peft.md §6.2, §8): the prefix holds positions 0..Pk-1,
 * virtual tokens Pk..Pk+Pv-1, and the caller's tokens start at V = Pk + Pv (`model.virtualTokens()`, what
 * sequence-length limits add); positions a caller passes are in its own coordinates and shifted by V.
 * Outputs (hidden, hiddenStates, logits) cover the caller's T positions only. `loss()` also scores the
 * last virtual token's prediction of labels[0], as PEFT's -100 label padding in front makes it count.
 * Ownership: a tensor a hook creates during a call belongs to the forward's scope (freed when the
 * forward ends; the tape keeps what backward needs); a tensor it returns that it made earlier (a
 * parameter, a loaded prefix) stays the hook's, and the KV cache stores a detached copy of it.
 * Not here: any method (plugins), the forward itself (llama.ts), the cache (kv-cache.ts).
 */
import { noGrad } from '../ops/tape.js';
import { PeftError } from '../errors.js';
import { copyOf } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import type { FloatDtype } from '../tensor/types.js';
import type { KvCache } from './kv-cache.js';
import type { ForwardOptions } from './llama.js';

/** Prompt tuning, P-tuning, DePT: [B, T, C] -> [B, P + T, C] at the start of a sequence. */
export interface InputsHook {
  /** P, the virtual tokens prepended at the start of every sequence (> 0). */
  readonly tokens: number;
  /**
   * embeds [B, T, C] of the caller's tokens, `past` of the caller's tokens before them in this sequence
   * (0 in training and eval; > 0 on KV-cached generation steps) -> [B, P + T, C] when past is 0 (the
   * virtual tokens first), else [B, T, C] (DePT still updates these by position past + t).
   */
  forward(embeds: Tensor, past: number): Tensor;
}

/** Prefix tuning, NTK prefix: P keys / values per layer that every real token attends to. */
export interface PrefixHook {
  /** P, the prefix entries of every layer (> 0). */
  readonly length: number;
  /**
   * k, v [batch, P, nkv, hd] of `layer`: final keys (no RoPE is applied to them) and values, in the
   * activations' dtype. May require grad: training back-propagates through attention into them.
   */
  kv(layer: number, batch: number): { k: Tensor; v: Tensor };
}

/** What head.forward gets: the caller's options, with the position of every row the backbone ran. */
export interface HeadOptions extends ForwardOptions {
  /** [B * T'] (T' = the rows the backbone ran, virtual tokens included). */
  positions: Int32Array;
}

/** QST, LST: the backbone runs (under noGrad when frozen) and the head owns the forward from its states. */
export interface HeadHook {
  /** Run the backbone (and the inputs / prefix hooks) under noGrad: no backbone tensor gets a gradient or a tape. */
  readonly frozenBackbone: boolean;
  /**
   * states: numLayers + 1 tensors [B, T', C] as transformers' output_hidden_states (the embeddings, the
   * output of layers 0..L-2, the final normed state); valid during this call, freed by the model when the
   * forward ends unless the head's graph saved them. Returns [B, T', C] for the LM head and the loss.
   * For generation the head keeps its own per-sequence state in `o.kvCache?.slot(...)`.
   */
  forward(states: Tensor[], o: HeadOptions): Tensor;
}

/** One method's hooks (at most one installed per model). */
export interface ModelHooks {
  /** The method that installed them (named when another method tries to install its own). */
  readonly method: string;
  inputs?: InputsHook;
  prefix?: PrefixHook;
  head?: HeadHook;
  /** Frees what the hooks own; called by model.dispose(). */
  dispose?(): void;
}

const text = (t: Tensor): string => `[${t.shape.join(', ')}]`;

/** Refuses a hooks object the model cannot run (before it is installed). */
export function checkHooks(h: ModelHooks): void {
  if (typeof h.method !== 'string' || h.method === '') throw new PeftError('E_INPUT', 'model hooks must name their method');
  if (!h.inputs && !h.prefix && !h.head) throw new PeftError('E_INPUT', `${h.method}: model hooks with no inputs, prefix or head`);
  const count = (n: unknown, what: string) => {
    if (!Number.isSafeInteger(n) || (n as number) < 1) throw new PeftError('E_INPUT', `${h.method}: ${what} must be a positive integer, got ${String(n)}`);
  };
  if (h.inputs) count(h.inputs.tokens, 'inputs.tokens');
  if (h.prefix) count(h.prefix.length, 'prefix.length');
}

/** V: the positions the hooks occupy in front of the caller's tokens. */
export function virtualTokens(h: ModelHooks | undefined): number {
  return (h?.inputs?.tokens ?? 0) + (h?.prefix?.length ?? 0);
}

/** x [B, T, C] through the inputs hook; `added` = the virtual rows now in front (P at past 0, else 0). */
export function applyInputs(h: ModelHooks | undefined, x: Tensor, past: number): { x: Tensor; added: number } {
  if (!h?.inputs) return { x, added: 0 };
  const [B, T, C] = x.shape;
  const added = past === 0 ? h.inputs.tokens : 0;
  const out = h.inputs.forward(x, past);
  if (out.rank !== 3 || out.shape[0] !== B || out.shape[1] !== added + T || out.shape[2] !== C || out.dtype !== x.dtype) {
    throw new PeftError('E_RUNTIME', `${h.method}: the inputs hook returned ${out.dtype} ${text(out)} for ${x.dtype} ${text(x)} ` +
      `at past ${past} (expected [${B}, ${added + T}, ${C}])`);
  }
  return { x: out, added };
}

/** Layer `layer`'s prefix [B, P, nkv, hd], checked. */
export function prefixKv(h: ModelHooks, layer: number, B: number, nkv: number, hd: number, dtype: FloatDtype): { k: Tensor; v: Tensor } {
  const p = h.prefix!;
  const kv = p.kv(layer, B);
  for (const t of [kv.k, kv.v]) {
    const ok = t.rank === 4 && t.shape[0] === B && t.shape[1] === p.length && t.shape[2] === nkv && t.shape[3] === hd && t.dtype === dtype;
    if (!ok) {
      throw new PeftError('E_RUNTIME', `${h.method}: the prefix of layer ${layer} is ${t.dtype} ${text(t)}, ` +
        `expected ${dtype} [${B}, ${p.length}, ${nkv}, ${hd}]`);
    }
  }
  return kv;
}

/** Starts a sequence in an empty cache: every layer's prefix (detached copies), marked as the hooks' positions. */
export function fillPrefix(cache: KvCache, h: ModelHooks, B: number, nkv: number, hd: number, dtype: FloatDtype): void {
  if (!h.prefix) return;
  noGrad(() => {
    for (let layer = 0; layer < cache.numLayers; layer++) {
      const { k, v } = prefixKv(h, layer, B, nkv, hd, dtype);
      cache.append(layer, copyOf(k), copyOf(v));
    }
  });
  cache.advance(h.prefix.length, h.prefix.length);
}

/** The head's output, checked to be [B, T', C] like the backbone's. */
export function checkHeadOutput(h: ModelHooks, out: Tensor, like: Tensor): Tensor {
  if (out.rank !== 3 || out.shape.some((d, i) => d !== like.shape[i]) || out.dtype !== like.dtype) {
    throw new PeftError('E_RUNTIME', `${h.method}: the head returned ${out.dtype} ${text(out)}, expected ${like.dtype} ${text(like)}`);
  }
  return out;
}
