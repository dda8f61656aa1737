/**
 * Small model hooks for the hook tests (the mechanism, not the plugins): fixed virtual tokens, a fixed
 * per-layer prefix, a side head that reads the backbone's states (and keeps the last row of one in
 * its KV-cache slot, so cached steps need hook state), an f64 twin of a fixture for gradient checks,
 * and greedy decoding written out by hand for the independent side of generation tests.
 */
import { noGrad } from '../src/ops/tape.js';
import { toF32 } from '../src/backend/index.js';
import { referenceBackend } from '../src/backend/reference.js';
import { llamaShapes } from '../src/io/hf-config.js';
import { openModelFolder } from '../src/io/model-folder.js';
import { VarBuilder } from '../src/io/var-builder.js';
import { llamaConfig } from '../src/models/config.js';
import type { HeadHook, HeadOptions, ModelHooks } from '../src/models/hooks.js';
import type { KvCache } from '../src/models/kv-cache.js';
import { Llama } from '../src/models/llama.js';
import { add } from '../src/ops/elementwise.js';
import { linear } from '../src/ops/linear.js';
import { concat } from '../src/ops/movement.js';
import { copyOf, randn, tensor, zeros } from '../src/tensor/create.js';
import { keep, tidy } from '../src/tensor/scope.js';
import type { Tensor } from '../src/tensor/tensor.js';
import type { FloatDtype } from '../src/tensor/types.js';
import { argmax } from '../src/tasks/generate.js';

export interface HookOptions {
  seed?: number;
  dtype?: FloatDtype;
  /** The hook's tensors train (require grad). */
  trainable?: boolean;
}

/** x [1, ...] repeated B times along axis 0 (x itself when B = 1). */
export function repeatBatch(x: Tensor, B: number): Tensor {
  return B === 1 ? x : concat(new Array<Tensor>(B).fill(x), 0);
}

/** P virtual tokens [P, C], N(0, 1) as PEFT's RANDOM init; `calls` records each forward's past. */
export function promptHook(P: number, C: number, o: HookOptions = {}): { hooks: ModelHooks; tokens: Tensor; calls: number[] } {
  const tokens = randn([P, C], { seed: o.seed ?? 1, dtype: o.dtype, requiresGrad: o.trainable });
  const calls: number[] = [];
  const hooks: ModelHooks = {
    method: 'test-prompt',
    inputs: {
      tokens: P,
      forward(embeds, past) {
        calls.push(past);
        if (past > 0) return embeds;
        return concat([repeatBatch(tokens.reshape([1, P, C]), embeds.shape[0]), embeds], 1);
      },
    },
    dispose: () => tokens.dispose(),
  };
  return { hooks, tokens, calls };
}

/** Per layer, k / v [1, P, nkv, hd] (N(0, 1)), returned as they are for a batch of one. */
export function prefixHook(model: Llama, P: number, o: HookOptions = {}): { hooks: ModelHooks; kv: { k: Tensor; v: Tensor }[] } {
  const { numLayers, numKvHeads: nkv, headDim: hd } = model.config;
  const seed = o.seed ?? 2;
  const kv = Array.from({ length: numLayers }, (_, l) => ({
    k: randn([1, P, nkv, hd], { seed: seed + 2 * l, dtype: o.dtype, requiresGrad: o.trainable }),
    v: randn([1, P, nkv, hd], { seed: seed + 2 * l + 1, dtype: o.dtype, requiresGrad: o.trainable }),
  }));
  const hooks: ModelHooks = {
    method: 'test-prefix',
    prefix: { length: P, kv: (layer, B) => ({ k: repeatBatch(kv[layer].k, B), v: repeatBatch(kv[layer].v, B) }) },
    dispose: () => kv.forEach((t) => { t.k.dispose(); t.v.dispose(); }),
  };
  return { hooks, kv };
}

/** The head's per-sequence state: the last row of states[1] seen so far. */
class LastRow {
  row: Tensor | undefined;
  disposed = 0;
  set(t: Tensor): void {
    this.row?.dispose();
    this.row = keep(copyOf(t));
  }
  dispose(): void {
    this.row?.dispose();
    this.row = undefined;
    this.disposed++;
  }
}

/**
 * out[t] = states[L][t] + W states[1][t - 1] (states[1][-1] = 0): a head that needs the previous
 * position, so generation through the cache works only if its slot carries the last row.
 */
export function sideHead(C: number, o: HookOptions & { frozenBackbone?: boolean } = {}) {
  const W = randn([C, C], { seed: o.seed ?? 3, std: 0.3, dtype: o.dtype, requiresGrad: o.trainable });
  const seen: { states: Tensor[]; opts: HeadOptions }[] = [];
  const slots: LastRow[] = [];
  const head: HeadHook = {
    frozenBackbone: o.frozenBackbone ?? true,
    forward(states, opts) {
      seen.push({ states: [...states], opts });
      const s1 = states[1];
      const [B, T] = s1.shape;
      const slot = opts.kvCache?.slot('test-head', () => { const s = new LastRow(); slots.push(s); return s; });
      const prev = slot?.row ?? zeros([B, 1, C], { dtype: s1.dtype as FloatDtype });
      const shifted = T > 1 ? concat([prev, s1.slice(1, 0, T - 1)], 1) : prev;
      const out = add(states[states.length - 1], linear(shifted, W));
      slot?.set(s1.slice(1, T - 1, T)); // after prev's last use: set() frees it
      return out;
    },
  };
  const hooks: ModelHooks = { method: 'test-head', head, dispose: () => W.dispose() };
  return { hooks, W, seen, slots };
}

/** The side head's function written out on plain arrays: states [L+1] of [B, T, C] values -> [B, T, C]. */
export function sideHeadByHand(states: Float32Array[] | number[][], W: ArrayLike<number>, B: number, T: number, C: number): Float64Array {
  const final = states[states.length - 1];
  const s1 = states[1];
  const out = new Float64Array(B * T * C);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < C; i++) {
        let acc = final[(b * T + t) * C + i];
        if (t > 0) for (let j = 0; j < C; j++) acc += W[i * C + j] * s1[(b * T + t - 1) * C + j];
        out[(b * T + t) * C + i] = acc;
      }
    }
  }
  return out;
}

/** A model of the fixture's config whose weights are its f32 values widened to f64 (for gradcheck). */
export async function f64Twin(dir: string): Promise<Llama> {
  const folder = await openModelFolder(dir);
  const tensors = new Map<string, Tensor>();
  for (const [name, shape] of llamaShapes(folder.config)) {
    tensors.set(name, tensor(toF32(referenceBackend, await folder.read(name)), shape, { dtype: 'f64' }));
  }
  const cfg = llamaConfig(folder.config);
  await folder.close();
  return Llama.load(VarBuilder.fromTensors(tensors), cfg);
}

/** 0..n-1 */
export const range = (n: number, from = 0): number[] => Array.from({ length: n }, (_, i) => from + i);

/**
 * Greedy decoding written out: `first` runs the prompt through a cache (however the test fills it),
 * then one token per step; returns the tokens and each step's logits.
 */
export function greedyByHand(model: Llama, cache: KvCache, first: () => Tensor, steps: number): { tokens: number[]; logits: number[][] } {
  const tokens: number[] = [];
  const logits: number[][] = [];
  noGrad(() => {
    let h = tidy(() => keep(first()));
    for (let s = 0; s < steps; s++) {
      const T = h.shape[1];
      const row = tidy(() => model.logits(h.slice(1, T - 1, T)).toArray());
      h.dispose();
      logits.push(row);
      tokens.push(argmax(row));
      if (s + 1 < steps) h = tidy(() => keep(model.forward(Int32Array.of(tokens[s]), { kvCache: cache }).hidden));
    }
  });
  return { tokens, logits };
}
