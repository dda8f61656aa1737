/**
 * The model hooks a side method installs (core models/hooks.ts, `head`): the backbone runs under noGrad,
 * then the ladder turns its states (or the cached features) into the LM head's input. Generation keeps
 * the side layers' keys and values in their own KvCache, a slot of the model's cache (freed with it).
 * With cache_features the hooks serve training and evaluation forwards (positions 0..T-1, no KV cache);
 * a generation with them is refused: generate with the saved adapter instead.
 * Not here: the ladder (ladder.ts), where its inputs come from (features.ts), the tap (tap.ts).
 */
import { KvCache, PeftError, Rotary, type HeadHook, type ModelHooks, type RMSNorm, type Tensor } from '@peft/core-tensor';
import type { FeatureCache } from './feature-cache.js';
import { cachedInput, statesInput, type RungSpec } from './features.js';
import type { SideNetwork } from './ladder.js';
import { GRADIENT_FREE } from './options.js';
import type { BackboneTap } from './tap.js';

/** The KV-cache slot of the side layers. */
export const SIDE_SLOT = 'side-network';

/** positions [B * T] are 0..T-1 in every row (what a cached row was computed at). */
function defaultPositions(pos: Int32Array, B: number, T: number): boolean {
  for (let i = 0; i < B * T; i++) if (pos[i] !== i % T) return false;
  return true;
}

function maxOf(pos: Int32Array): number {
  let m = 0;
  for (const p of pos) if (p > m) m = p;
  return m;
}

export interface SideHooks extends ModelHooks {
  readonly head: HeadHook;
}

/** The hooks of `net` on a model whose final norm (and, with `cache`, embedding and layers) `tap` replaced. */
export function sideHooks(net: SideNetwork, tap: BackboneTap, finalNorm: RMSNorm, cache?: FeatureCache): SideHooks {
  const method = net.settings.method;
  const rotary = new Rotary(net.side);
  const kind = net.settings.downsample;
  const spec: RungSpec = { pool: GRADIENT_FREE.has(kind) ? (kind as RungSpec['pool']) : undefined, r: net.settings.r, finalNorm };
  const L = net.layers.length;
  const head: HeadHook = {
    frozenBackbone: true,
    forward(states, o) {
      const { keys, hit, last } = tap.take();
      const [B, T] = states[0].shape;
      if (cache && o.kvCache) {
        throw new PeftError('E_INPUT', `${method}: a model with cache_features is for training; generate with the saved adapter`);
      }
      const cached = !!cache && !!keys && defaultPositions(o.positions, B, T);
      if (hit && !cached) throw new PeftError('E_RUNTIME', `${method}: the feature cache answered a forward at other positions than 0..T-1`);
      if (!cached && !last) throw new PeftError('E_RUNTIME', `${method}: the final norm did not see the last layer's output`);
      const input = cached ? cachedInput(cache!, keys!, hit, states, last, spec) : statesInput(states, last as Tensor, spec);
      const kv = o.kvCache?.slot(SIDE_SLOT, () => new KvCache(L));
      const rot = { ...rotary.tables(maxOf(o.positions) + 1, 'f32'), pos: o.positions };
      const out = net.forward(input, rot, kv, o);
      kv?.advance(T);
      return out;
    },
  };
  return {
    method, head,
    dispose: () => {
      net.dispose();
      rotary.dispose();
      cache?.dispose();
    },
  };
}
