/**
 * @peft/plugin-lora: the `lora` adapter method (LoRA, rsLoRA, DoRA; inits default, gaussian, PiSSA,
 * OLoRA, LoftQ; QLoRA on 4-bit bases) in Hugging Face PEFT's format, peft_type "LORA".
 * `register(registry)` adds it; the CLI does that through the oclif hook (hook.ts).
 * Not here: the implementation (config.ts, targets.ts, keys.ts, layer.ts, variants/, init/, attach.ts,
 * save.ts, load.ts, delta.ts).
 */
import type { MethodDef, Registry } from '@peft/core-tensor';
import { attachLora } from './attach.js';
import { LORA_OPTIONS, loraTargetRules } from './config.js';
import { loraDelta, loraFromDelta } from './delta.js';
import { LORA_KEYS } from './keys.js';
import { loadLoraAdapter } from './load.js';

export const loraMethod: MethodDef = {
  name: 'lora',
  description: 'LoRA / rsLoRA / DoRA adapters (inits: kaiming, gaussian, PiSSA, OLoRA, LoftQ; QLoRA on 4-bit bases), PEFT format',
  peftType: 'LORA',
  keys: LORA_KEYS,
  targets: loraTargetRules,
  options: LORA_OPTIONS,
  attach: attachLora,
  loadAdapter: loadLoraAdapter,
  delta: loraDelta,
  fromDelta: loraFromDelta,
};

export function register(registry: Registry): void {
  registry.method(loraMethod);
}

export { resolveLoraOptions, settingsFromOptions, peftConfig, LORA_OPTIONS, DEFAULT_TARGETS, PEFT_VERSION, type LoraSettings } from './config.js';
export { LoraLinear, dropoutSeedOf, type LoraSpec } from './layer.js';
export { LoraAdapterState, LOFTQ_BASE_FILE } from './save.js';
export { loftq, LOFTQ_BLOCKSIZE, type LoftqStep } from './init/loftq.js';
export { parsePattern, patternValue, moduleRank, selectTargets } from './targets.js';
export { LORA_KEYS, loraKey, type LoraPart } from './keys.js';
