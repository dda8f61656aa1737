/**
 * Where the ladder's inputs come from in one forward: the backbone's states as the model hands them to
 * the head hook (plus the last layer's raw output from the tap), or the feature cache. With a cache, a
 * miss stores what the backbone just computed, rounded to bf16, and the forward goes on with the rounded
 * values; a hit reads them back. Either way the ladder sees the same numbers in every epoch.
 * Not here: the cache's storage (feature-cache.ts), the ladder (ladder.ts).
 */
import { noGrad, ops, zeros, type RMSNorm, type Tensor } from '@peft/core-tensor';
import type { FeatureCache, RowKey } from './feature-cache.js';
import { roundBf16 } from './feature-cache.js';
import type { LadderInput } from './ladder.js';
import { pool } from './modules.js';

export interface RungSpec {
  /** The downsample when it is gradient-free: rungs are stored pooled. */
  pool?: 'maxpool' | 'avgpool';
  r: number;
  /** The base's final norm (QST with a trainable downsample recomputes norm(h_L) from the cached last rung). */
  finalNorm: RMSNorm;
}

/** states (numLayers + 1, as output_hidden_states) and the last layer's raw output -> the ladder's input. */
export function statesInput(states: readonly Tensor[], last: Tensor, spec: RungSpec): LadderInput {
  const L = states.length - 1;
  const h = (i: number) => (i < L - 1 ? states[i + 1] : last);
  return {
    embeds: states[0],
    rung: (i) => (spec.pool ? pool(h(i), spec.pool, spec.r) : h(i)),
    final: () => states[L],
  };
}

/**
 * The ladder's input through `cache`: a hit reads the rows; a miss takes them from `states` / `last`,
 * rounds them to bf16 and stores them. `embeds` is always the embedding lookup (states[0]).
 */
export function cachedInput(cache: FeatureCache, keys: readonly RowKey[], hit: boolean, states: readonly Tensor[], last: Tensor | undefined,
  spec: RungSpec): LadderInput {
  const { rungs: L, width: w, final: f } = cache.layout;
  const [B, T] = states[0].shape;
  const rungs = Array.from({ length: L }, () => zeros([B, T, w]));
  const final = f > 0 ? zeros([B, T, f]) : undefined;
  const data = (t: Tensor) => t.data as Float32Array;
  if (hit) cache.read(keys, T, rungs.map(data), final && data(final));
  else {
    const live = statesInput(states, last!, spec);
    rungs.forEach((t, i) => {
      data(t).set(live.rung(i).data);
      roundBf16(data(t));
    });
    if (final) {
      data(final).set(live.final().data);
      roundBf16(data(final));
    }
    cache.write(keys, T, rungs.map(data), final && data(final));
  }
  const { weight, eps } = spec.finalNorm;
  return {
    embeds: states[0],
    rung: (i) => rungs[i],
    final: () => final ?? noGrad(() => ops.rmsnorm(rungs[L - 1], weight, eps)),
  };
}
