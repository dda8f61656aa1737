/**
 * The backbone tap: subclasses of the model's own modules, holding the same weights under the same
 * names, put in their place by attach / loadAdapter, so the ladder gets what the head hook alone does
 * not carry, without touching the core's forward:
 *   TapNorm         the final norm; records its input, the raw output of the last layer (QST's last
 *                   downsample reads h_{L-1} before model.norm, as modeling_llama_qst.py does)
 *   KeyedEmbedding  (cache_features) keys the rows by their ids and asks the feature cache
 *   SkipBlock       (cache_features) on a cache hit the layers and the norm pass their input through:
 *                   the backbone costs nothing but the embedding lookup
 * Not here: the cache (feature-cache.ts), the hook that reads the tap (head.ts).
 */
import { Block, Embedding, ops, PeftError, RMSNorm, type KvCache, type Llama, type RopeInput, type Tensor } from '@peft/core-tensor';
import type { FeatureCache, RowKey } from './feature-cache.js';
import { rowKeys } from './feature-cache.js';

type KernelOptions = ops.KernelOptions;

/** What the tapped modules saw in the current forward (the head reads and clears it). */
export class BackboneTap {
  /** The rows of this forward, when a feature cache keys them. */
  keys: RowKey[] | undefined;
  /** The cache holds every row: the backbone is skipped. */
  hit = false;
  /** The final norm's input in this forward: the raw output of the last layer. */
  last: Tensor | undefined;

  constructor(readonly cache?: FeatureCache) {}

  /** Called by the embedding: keys the rows and decides whether the backbone runs. */
  begin(ids: Int32Array, shape: readonly number[] | undefined): void {
    this.last = undefined;
    const [B, T] = shape?.length === 2 ? shape : [1, ids.length];
    this.keys = this.cache ? rowKeys(ids, B, T) : undefined;
    this.hit = this.keys ? this.cache!.lookup(this.keys) : false;
  }

  /** Hands over and clears this forward's record. */
  take(): { keys?: RowKey[]; hit: boolean; last?: Tensor } {
    const r = { keys: this.keys, hit: this.hit, last: this.last };
    this.keys = undefined;
    this.hit = false;
    this.last = undefined;
    return r;
  }
}

class TapNorm extends RMSNorm {
  constructor(inner: RMSNorm, readonly tap: BackboneTap) {
    super(inner.weight, inner.eps);
  }

  override forward(x: Tensor, opts?: KernelOptions): Tensor {
    if (this.tap.hit) return x;
    this.tap.last = x;
    return super.forward(x, opts);
  }
}

class KeyedEmbedding extends Embedding {
  constructor(inner: Embedding, readonly tap: BackboneTap) {
    super(inner.weight);
  }

  override forward(ids: Int32Array, shape?: readonly number[]): Tensor {
    this.tap.begin(ids, shape);
    return super.forward(ids, shape);
  }
}

class SkipBlock extends Block {
  constructor(inner: Block, readonly tap: BackboneTap) {
    super(inner.index, inner.self_attn, inner.mlp, inner.input_layernorm, inner.post_attention_layernorm);
  }

  override forward(x: Tensor, rot: RopeInput, kv?: KvCache, opts?: KernelOptions, prefix?: { k: Tensor; v: Tensor }): Tensor {
    return this.tap.hit ? x : super.forward(x, rot, kv, opts, prefix);
  }
}

/** The tap's modules can replace the model's: a plain final RMSNorm (and Embedding, Blocks with a cache). */
export function checkTappable(model: Llama, method: string, withCache: boolean): void {
  const what = (m: unknown) => (m as object)?.constructor?.name ?? String(m);
  const bad = (path: string, m: unknown) => new PeftError('E_INPUT', `${method}: ${path} is a ${what(m)}, not the plain module a side network taps (another method applied?)`);
  if (!(model.model.norm instanceof RMSNorm) || model.model.norm instanceof TapNorm) throw bad('model.norm', model.model.norm);
  if (!withCache) return;
  if (!(model.model.embed_tokens instanceof Embedding)) throw bad('model.embed_tokens', model.model.embed_tokens);
  for (const [i, b] of [...model.model.layers].entries()) if (!(b instanceof Block)) throw bad(`model.layers.${i}`, b);
}

/** Puts the tap's modules into `model` (checkTappable first). */
export function installTap(model: Llama, tap: BackboneTap): void {
  model.replace('model.norm', new TapNorm(model.model.norm, tap));
  if (!tap.cache) return;
  model.replace('model.embed_tokens', new KeyedEmbedding(model.model.embed_tokens as Embedding, tap));
  model.model.layers.children().forEach(([name, b]) => model.replace(`model.layers.${name}`, new SkipBlock(b as Block, tap)));
}
