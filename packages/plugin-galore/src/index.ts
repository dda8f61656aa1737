/**
 * @peft/plugin-galore: memory-efficient optimizers for `peft train --optimizer`: `galore` (GaLoreAdamW),
 * `galore-8bit` (GaLoreAdamW8bit), `natural-galore` (Natural GaLore) and `owlore` (OwLore: GaLore on
 * sampled layers). They work on any trainable 2-D parameter (LoRA factors, full weights) and give the
 * rest plain AdamW, as galore-torch's param groups do. `register(registry)` adds them; the CLI does that
 * through the oclif hook (hook.ts).
 * Not here: the implementation (targets.ts, basis.ts, projection.ts, adam.ts, galore.ts, eightbit.ts,
 * natural.ts, woodbury.ts, owlore/, options.ts, optimizers.ts).
 */
import type { Registry } from '@peft/core-tensor';
import { GALORE_OPTIMIZERS } from './optimizers.js';

export function register(registry: Registry): void {
  for (const def of GALORE_OPTIMIZERS) registry.optimizer(def);
}

export { galoreOptimizer, galore8bitOptimizer, naturalGaloreOptimizer, owloreOptimizer, GALORE_OPTIMIZERS } from './optimizers.js';
export { galoreRule, type GaloreSettings } from './galore.js';
export { adam8bitRule, galore8bitRule, momentSlots, STATE_BLOCKSIZE } from './eightbit.js';
export { naturalGaloreRule, type NaturalSettings } from './natural.js';
export { galoreAdamwRule, type AdamSettings } from './adam.js';
export { refreshBasis, svdSeed, type SvdMode } from './basis.js';
export { isProjected, DEFAULT_TARGETS } from './targets.js';
export { SIGNED_DYNAMIC_MAP, UNSIGNED_DYNAMIC_MAP } from './dynamic-maps.js';
export { choiceWithoutReplacement, eventStream } from './owlore/sampling.js';
export { layerOf, outlierRatio, planLayers, PROB_MODES, type ProbMode } from './owlore/layers.js';
export { withLayerSampling } from './owlore/optimizer.js';
