/**
 * The Llama family (llama, mistral, qwen2) as transformers' modeling_llama.py / modeling_qwen2.py
 * compute it, built from config.json and loaded through a VarBuilder. Module and field names are the
 * checkpoint's (`model.layers.0.self_attn.q_proj`), so adapters find and replace modules by HF path.
 *
 *   Llama                     LlamaForCausalLM: `model` + `lm_head` (absent when tied: the head reads
 *                             model.embed_tokens.weight, and no parameter is listed twice)
 *   LlamaModel                embed_tokens -> layers -> norm
 *   Block                     LlamaDecoderLayer: x + attn(input_layernorm(x)), then h + mlp(post_attention_layernorm(h))
 *   Attention                 q/k/v/o projections (q/k/v biases for qwen2 or attention_bias), RoPE, causal GQA
 *   Mlp                       down(silu(gate x) * up x)
 *
 * Shapes: B batch, T new positions, S cached + new positions, C hidden, nh / nkv heads, hd head dim,
 * V vocab, I intermediate. Activations are f32 [B, T, C]; weights may be frozen bf16 / nf4 / fp4 / int8
 * (linear runs the fused dequant-GEMM) or a plugin quantizer's packed form (its own product).
 * Weights loaded from a folder never require grad.
 * A method's hooks (hooks.ts: virtual tokens, per-layer prefixes, a side-network head) run inside
 * forward / loss, so callers never branch on the method.
 * Not here: tokenization, generation loops (tasks/), adapters (plugins).
 */
import { join } from 'node:path';
import { PeftError } from '../errors.js';
import { openModelFolder } from '../io/model-folder.js';
import { VarBuilder, type FolderOptions } from '../io/var-builder.js';
import { Embedding } from '../nn/embedding.js';
import { Linear } from '../nn/linear.js';
import { Module, ModuleList } from '../nn/module.js';
import { RMSNorm } from '../nn/rmsnorm.js';
import { noGrad } from '../ops/tape.js';
import { attention } from '../ops/attention.js';
import { crossEntropy } from '../ops/cross-entropy.js';
import { add } from '../ops/elementwise.js';
import type { KernelOptions } from '../ops/kernels.js';
import { linear } from '../ops/linear.js';
import { floatDtype } from '../ops/loops.js';
import { concat } from '../ops/movement.js';
import { rope } from '../ops/rope.js';
import { swiglu } from '../ops/swiglu.js';
import { copyOf } from '../tensor/create.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { llamaConfig, type LlamaConfig } from './config.js';
import { applyInputs, checkHeadOutput, checkHooks, fillPrefix, prefixKv, virtualTokens, type ModelHooks } from './hooks.js';
import { KvCache } from './kv-cache.js';
import { Rotary } from './rope.js';
import { positionsFor, tokenBatch, type TokenIds } from './tokens.js';

/** A Linear, or whatever an adapter wrapped it in: the same call. */
export type LinearLike = Module & { forward(x: Tensor, opts?: KernelOptions): Tensor };
/** An Embedding, or an adapter around it: ids [B*T] -> [B, T, C]. */
export type EmbeddingLike = Module & { forward(ids: Int32Array, shape?: readonly number[]): Tensor };

/** The rotary tables of this forward and the position of each of the B*T rows. */
export interface RopeInput { cos: Tensor; sin: Tensor; pos: Int32Array }

export interface ForwardOptions extends KernelOptions {
  /**
   * Position of each token: [T] (every row) or [B*T]; default past..past+T-1 (past = cached length).
   * With hooks these are the caller's positions: the model adds virtualTokens().
   */
  positions?: ArrayLike<number>;
  /** Generation: attend to (and extend) this cache; needs noGrad(). */
  kvCache?: KvCache;
  /** Also return transformers' output_hidden_states: the embeddings, each layer's output, the final normed state. */
  outputHiddenStates?: boolean;
}

export interface LlamaOutput {
  /** Final hidden states after model.norm, [B, T, C]. */
  hidden: Tensor;
  /** numLayers + 1 tensors [B, T, C] when asked (the last one is `hidden`), as transformers returns them. */
  hiddenStates?: Tensor[];
}

async function loadLinear(vb: VarBuilder, out: number, inF: number, bias: boolean): Promise<Linear> {
  const w = await vb.getWeight('weight', [out, inF]);
  return new Linear(w, bias ? await vb.get('bias', [out], 'zeros') : undefined);
}

export class Attention extends Module {
  q_proj: LinearLike;
  k_proj: LinearLike;
  v_proj: LinearLike;
  o_proj: LinearLike;

  constructor(readonly config: LlamaConfig, q: LinearLike, k: LinearLike, v: LinearLike, o: LinearLike) {
    super();
    this.q_proj = this.addModule('q_proj', q);
    this.k_proj = this.addModule('k_proj', k);
    this.v_proj = this.addModule('v_proj', v);
    this.o_proj = this.addModule('o_proj', o);
  }

  static async load(vb: VarBuilder, cfg: LlamaConfig): Promise<Attention> {
    const { hiddenSize: C, numHeads: nh, numKvHeads: nkv, headDim: hd, qkvBias, oBias } = cfg;
    return new Attention(cfg,
      await loadLinear(vb.pp('q_proj'), nh * hd, C, qkvBias), await loadLinear(vb.pp('k_proj'), nkv * hd, C, qkvBias),
      await loadLinear(vb.pp('v_proj'), nkv * hd, C, qkvBias), await loadLinear(vb.pp('o_proj'), C, nh * hd, oBias));
  }

  /**
   * x [B, T, C] -> [B, T, C]. With a cache, keys / values of earlier positions come from it; without,
   * a hook's prefix k / v [B, P, nkv, hd] goes in front of the rotated keys (gradients flow into it).
   */
  forward(x: Tensor, rot: RopeInput, cache?: { kv: KvCache; layer: number }, opts?: KernelOptions, prefix?: { k: Tensor; v: Tensor }): Tensor {
    const [B, T] = x.shape;
    const { numHeads: nh, numKvHeads: nkv, headDim: hd } = this.config;
    return tidy(() => {
      const q = rope(this.q_proj.forward(x, opts).reshape([B, T, nh, hd]), rot.cos, rot.sin, rot.pos, opts);
      let k = rope(this.k_proj.forward(x, opts).reshape([B, T, nkv, hd]), rot.cos, rot.sin, rot.pos, opts);
      let v = this.v_proj.forward(x, opts).reshape([B, T, nkv, hd]);
      if (cache) [k, v] = cache.kv.append(cache.layer, k, v); // [B, S, nkv, hd]
      else if (prefix) [k, v] = [concat([prefix.k, k], 1), concat([prefix.v, v], 1)]; // [B, P + T, nkv, hd]
      const out = attention(q, k, v, opts); // [B, T, nh, hd], scale hd^-0.5, causal over the last T of S
      return this.o_proj.forward(out.reshape([B, T, nh * hd]), opts);
    });
  }
}

export class Mlp extends Module {
  gate_proj: LinearLike;
  up_proj: LinearLike;
  down_proj: LinearLike;

  constructor(gate: LinearLike, up: LinearLike, down: LinearLike) {
    super();
    this.gate_proj = this.addModule('gate_proj', gate);
    this.up_proj = this.addModule('up_proj', up);
    this.down_proj = this.addModule('down_proj', down);
  }

  static async load(vb: VarBuilder, cfg: LlamaConfig): Promise<Mlp> {
    const { hiddenSize: C, intermediateSize: I, mlpBias } = cfg;
    return new Mlp(await loadLinear(vb.pp('gate_proj'), I, C, mlpBias), await loadLinear(vb.pp('up_proj'), I, C, mlpBias),
      await loadLinear(vb.pp('down_proj'), C, I, mlpBias));
  }

  /** x [B, T, C] -> [B, T, C] through [B, T, I]. */
  forward(x: Tensor, opts?: KernelOptions): Tensor {
    return tidy(() => this.down_proj.forward(swiglu(this.gate_proj.forward(x, opts), this.up_proj.forward(x, opts), opts), opts));
  }
}

export class Block extends Module {
  self_attn: Attention;
  mlp: Mlp;
  input_layernorm: RMSNorm;
  post_attention_layernorm: RMSNorm;

  constructor(readonly index: number, attn: Attention, mlp: Mlp, inputNorm: RMSNorm, postNorm: RMSNorm) {
    super();
    this.self_attn = this.addModule('self_attn', attn);
    this.mlp = this.addModule('mlp', mlp);
    this.input_layernorm = this.addModule('input_layernorm', inputNorm);
    this.post_attention_layernorm = this.addModule('post_attention_layernorm', postNorm);
  }

  static async load(vb: VarBuilder, cfg: LlamaConfig, index: number): Promise<Block> {
    const norm = async (name: string) => new RMSNorm(await vb.pp(name).get('weight', [cfg.hiddenSize], 'ones'), cfg.rmsNormEps);
    return new Block(index, await Attention.load(vb.pp('self_attn'), cfg), await Mlp.load(vb.pp('mlp'), cfg),
      await norm('input_layernorm'), await norm('post_attention_layernorm'));
  }

  /** Pre-norm residual block, x [B, T, C] -> [B, T, C]. */
  forward(x: Tensor, rot: RopeInput, kv?: KvCache, opts?: KernelOptions, prefix?: { k: Tensor; v: Tensor }): Tensor {
    return tidy(() => {
      const cache = kv && { kv, layer: this.index };
      const h = add(x, this.self_attn.forward(this.input_layernorm.forward(x, opts), rot, cache, opts, prefix));
      return add(h, this.mlp.forward(this.post_attention_layernorm.forward(h, opts), opts));
    });
  }
}

/** transformers' LlamaModel: the `model.` prefix. */
export class LlamaModel extends Module {
  embed_tokens: EmbeddingLike;
  layers: ModuleList<Block>;
  norm: RMSNorm;

  constructor(embed: EmbeddingLike, layers: ModuleList<Block>, norm: RMSNorm) {
    super();
    this.embed_tokens = this.addModule('embed_tokens', embed);
    this.layers = this.addModule('layers', layers);
    this.norm = this.addModule('norm', norm);
  }

  static async load(vb: VarBuilder, cfg: LlamaConfig): Promise<LlamaModel> {
    const embed = new Embedding(await vb.pp('embed_tokens').get('weight', [cfg.vocabSize, cfg.hiddenSize]));
    const layers = new ModuleList<Block>();
    for (let i = 0; i < cfg.numLayers; i++) layers.push(await Block.load(vb.pp('layers').pp(i), cfg, i));
    return new LlamaModel(embed, layers, new RMSNorm(await vb.pp('norm').get('weight', [cfg.hiddenSize], 'ones'), cfg.rmsNormEps));
  }
}

/** One run of the stack: hidden [B, added + T, C] over every row (virtual ones first), and their positions. */
interface Run { hidden: Tensor; states?: Tensor[]; added: number; pos: Int32Array }

/** The output over the caller's rows (the virtual rows in front dropped). */
function callerRows(run: Run): LlamaOutput {
  const mine = (t: Tensor) => (run.added > 0 ? t.slice(1, run.added, t.shape[1]) : t);
  return { hidden: mine(run.hidden), hiddenStates: run.states?.map(mine) };
}

/** x without its tape history (a copy only when it has one). */
const detached = (x: Tensor): Tensor => (x.requiresGrad ? copyOf(x) : x);

export class Llama extends Module {
  model: LlamaModel;
  lm_head: LinearLike | undefined;
  readonly rotary: Rotary;
  #hooks: ModelHooks | undefined;

  constructor(readonly config: LlamaConfig, model: LlamaModel, lmHead?: LinearLike) {
    super();
    if (!lmHead && !config.tieEmbeddings) throw new PeftError('E_INPUT', 'an untied Llama needs an lm_head');
    this.model = this.addModule('model', model);
    this.lm_head = lmHead ? this.addModule('lm_head', lmHead) : undefined;
    this.rotary = new Rotary(config);
  }

  static async load(vb: VarBuilder, cfg: LlamaConfig): Promise<Llama> {
    const model = await LlamaModel.load(vb.pp('model'), cfg);
    const head = cfg.tieEmbeddings ? undefined : await loadLinear(vb.pp('lm_head'), cfg.vocabSize, cfg.hiddenSize, false);
    return new Llama(cfg, model, head);
  }

  /**
   * Opens a Hugging Face folder, loads every weight (4-bit stays packed, BF16 Linear stays bf16), closes it.
   * A quantized folder is read by the quantizer its quantization_config names: pass `opts.quantizers`
   * (a Registry) for plugin quantizers; without it the built-in bitsandbytes ones are known.
   */
  static async fromFolder(dir: string, opts?: FolderOptions): Promise<Llama> {
    const folder = await openModelFolder(dir);
    try {
      return await Llama.load(VarBuilder.fromFolder(folder, opts), llamaConfig(folder.config, join(dir, 'config.json')));
    } finally {
      await folder.close();
    }
  }

  /** A cache for generation with this model; with a prefix hook, its first forward starts it with the prefix. */
  newCache(): KvCache {
    return new KvCache(this.config.numLayers);
  }

  /** The installed method hooks (hooks.ts), if any. */
  get hooks(): ModelHooks | undefined {
    return this.#hooks;
  }

  /** Installs one method's hooks (its attach / loadAdapter does); disposed with the model. A second method's are refused. */
  setHooks(hooks: ModelHooks): void {
    if (this.#hooks) {
      throw new PeftError('E_INPUT', `${hooks.method} cannot be applied: the model already runs ${this.#hooks.method}'s hooks ` +
        '(one hooked method at a time, as PEFT does not mix prompt learning with other adapters)');
    }
    checkHooks(hooks);
    this.#hooks = hooks;
  }

  /** Positions the hooks take in front of the caller's tokens (prefix + virtual tokens): sequence limits add them. */
  virtualTokens(): number {
    return virtualTokens(this.#hooks);
  }

  /** Token embeddings [B, T, C] (what forwardEmbeds and the inputs hook take). */
  embed(inputIds: TokenIds): Tensor {
    const { data, B, T } = tokenBatch(inputIds);
    return this.model.embed_tokens.forward(data, [B, T]);
  }

  forward(inputIds: TokenIds, opts: ForwardOptions = {}): LlamaOutput {
    return tidy(() => callerRows(this.#run(() => this.embed(inputIds), opts)));
  }

  /** The decoder stack (and the hooks) on embeddings x [B, T, C]; outputs cover these T positions. */
  forwardEmbeds(x: Tensor, opts: ForwardOptions = {}): LlamaOutput {
    return tidy(() => callerRows(this.#run(() => x, opts)));
  }

  /**
   * Embeddings, the backbone, then the head hook when there is one (a frozen backbone, embedding lookup
   * included, runs under noGrad on a detached input). A failure resets the cache: it no longer describes one sequence.
   */
  #run(input: () => Tensor, opts: ForwardOptions): Run {
    const hooks = this.#hooks;
    const head = hooks?.head;
    try {
      if (!head) return this.#backbone(input(), opts, !!opts.outputHiddenStates);
      const back = head.frozenBackbone
        ? noGrad(() => this.#backbone(detached(input()), opts, true))
        : this.#backbone(input(), opts, true);
      const hidden = checkHeadOutput(hooks, head.forward(back.states!, { ...opts, positions: back.pos }), back.hidden);
      return { ...back, hidden, states: opts.outputHiddenStates ? back.states : undefined };
    } catch (e) {
      opts.kvCache?.reset();
      throw e;
    }
  }

  /** Inputs hook, prefix (in the cache, or per layer without one), the layers and the final norm. */
  #backbone(x: Tensor, opts: ForwardOptions, wantStates: boolean): Run {
    const [B, T] = x.shape;
    const { numKvHeads: nkv, headDim: hd, slidingWindow: window } = this.config;
    const hooks = this.#hooks;
    const cache = opts.kvCache;
    const dtype = floatDtype('forward', x);
    if (cache && cache.length === 0 && hooks) fillPrefix(cache, hooks, B, nkv, hd, dtype);
    const { x: first, added } = applyInputs(hooks, x, cache ? cache.length - cache.virtual : 0);
    const rows = added + T;
    const start = cache ? cache.length : hooks?.prefix?.length ?? 0; // the position of the first row
    if (window !== null && start + rows > window) {
      throw new PeftError('E_INPUT', `${start + rows} positions exceed sliding_window ${window}; sliding-window attention is not supported`);
    }
    const pos = positionsFor(B, rows, start, opts.positions, added, this.virtualTokens());
    const rot = { ...this.rotary.tables(pos.reduce((m, p) => Math.max(m, p), 0) + 1, dtype), pos };
    const states: Tensor[] = [];
    let h = first;
    for (const layer of this.model.layers) {
      if (wantStates) states.push(h);
      const prefix = hooks?.prefix && !cache ? prefixKv(hooks, layer.index, B, nkv, hd, dtype) : undefined;
      h = layer.forward(h, rot, cache, opts, prefix);
    }
    const hidden = this.model.norm.forward(h, opts);
    cache?.advance(rows, added);
    return { hidden, states: wantStates ? [...states, hidden] : undefined, added, pos };
  }

  /** The LM head weight [V, C] (model.embed_tokens.weight when tied). */
  get lmHeadWeight(): Tensor {
    const head = this.lm_head ?? this.model.embed_tokens;
    const w = head instanceof Linear || head instanceof Embedding ? head.weight : undefined;
    if (!w || (head instanceof Linear && head.bias)) {
      throw new PeftError('E_INPUT', `the LM head (${head.constructor.name}) is not a plain bias-free weight; loss() needs one`);
    }
    return w;
  }

  /** logits [B, T, V] of hidden [B, T, C]: for small uses (generation); loss() never builds them. */
  logits(hidden: Tensor, opts?: KernelOptions): Tensor {
    return this.lm_head ? this.lm_head.forward(hidden, opts) : linear(hidden, this.lmHeadWeight, undefined, opts);
  }

  /**
   * Mean causal-LM cross-entropy (transformers' ForCausalLMLoss): position t predicts labels[t+1];
   * labels -100 are ignored. Chunked over the vocabulary: the N x V logits never exist. With virtual
   * tokens in front, the last of them predicts labels[0], as in PEFT (its labels get N x -100 in front).
   */
  loss(inputIds: TokenIds, labels: TokenIds, opts: ForwardOptions = {}): Tensor {
    return tidy(() => {
      const run = this.#run(() => this.embed(inputIds), opts);
      const lead = run.added > 0 ? 1 : 0;
      const hidden = lead ? run.hidden.slice(1, run.added - 1, run.hidden.shape[1]) : run.hidden;
      return this.#loss(hidden, labels, lead, opts);
    });
  }

  /** How many labels loss() scores (its mean's denominator): labels[1..T-1] that are not -100, and labels[0] too with virtual tokens in front. */
  scoredLabels(labels: TokenIds): number {
    const l = tokenBatch(labels);
    const from = (this.#hooks?.inputs?.tokens ?? 0) > 0 ? 0 : 1;
    let n = 0;
    for (let b = 0; b < l.B; b++) for (let t = from; t < l.T; t++) if (l.data[b * l.T + t] !== -100) n++;
    return n;
  }

  /** The same loss from final hidden states [B, T, C]. */
  lossFromHidden(hidden: Tensor, labels: TokenIds, opts?: KernelOptions): Tensor {
    return this.#loss(hidden, labels, 0, opts);
  }

  /** hidden [B, lead + T, C] for labels [B, T]: row r predicts labels[r + 1 - lead]. */
  #loss(hidden: Tensor, labels: TokenIds, lead: 0 | 1, opts?: KernelOptions): Tensor {
    const [B, R] = hidden.shape;
    const l = tokenBatch(labels);
    if (l.B !== B || l.T + lead !== R) {
      throw new PeftError('E_SHAPE', `labels [${l.B}, ${l.T}] do not match hidden [${hidden.shape.join(', ')}]${lead ? ' (one virtual row in front)' : ''}`);
    }
    const targets = new Int32Array(B * R).fill(-100);
    for (let b = 0; b < B; b++) targets.set(l.data.subarray(b * l.T + 1 - lead, (b + 1) * l.T), b * R);
    return crossEntropy(hidden, this.lmHeadWeight, targets, { kernels: opts?.kernels, ignoreIndex: -100 });
  }

  override dispose(): void {
    super.dispose();
    this.rotary.dispose();
    this.#hooks?.dispose?.();
    this.#hooks = undefined;
  }
}
