/**
 * @peft/plugin-qst: side tuning. `qst` (Quantized Side Tuning, YouAreSpecialToMe/QST, peft_type "QST")
 * and `lst` (Ladder Side Tuning, ylsung/Ladder-Side-Tuning, peft_type "LST") train a small side network
 * on the per-layer hidden states of a frozen backbone that runs forward only (QST: on any base, 4-bit
 * included; LST: on a full-precision one). `register(registry)` adds both; the CLI does that through the
 * oclif hook (hook.ts).
 * Not here: the implementation (options.ts, ladder.ts, modules.ts, head.ts, tap.ts, features.ts,
 * feature-cache.ts, feature-file.ts, fingerprint.ts, attach.ts, format.ts, load.ts).
 */
import type { MethodDef, Registry } from '@peft/core-tensor';
import { attachSide } from './attach.js';
import { loadSideAdapter } from './load.js';
import { LST_OPTIONS, QST_OPTIONS } from './options.js';

export const qstMethod: MethodDef = {
  name: 'qst',
  description: 'Quantized Side Tuning: a side network at hidden/r on a frozen (4-bit or float) backbone\'s layer states; no backprop through the base',
  peftType: 'QST',
  // The side network's tensors keep the QST repo's own module names (format.ts), not PEFT module keys.
  keys: { prefix: 'qst_', parts: {} },
  options: QST_OPTIONS,
  attach: (model, options, ctx) => attachSide('qst', model, options, ctx),
  loadAdapter: (model, dir, config) => loadSideAdapter('qst', model, dir, config),
};

export const lstMethod: MethodDef = {
  name: 'lst',
  description: 'Ladder Side Tuning: a gated side network at hidden/r on a frozen full-precision backbone\'s layer states',
  peftType: 'LST',
  keys: { prefix: 'lst_', parts: {} },
  options: LST_OPTIONS,
  attach: (model, options, ctx) => attachSide('lst', model, options, ctx),
  loadAdapter: (model, dir, config) => loadSideAdapter('lst', model, dir, config),
};

export function register(registry: Registry): void {
  registry.method(qstMethod);
  registry.method(lstMethod);
}

export { attachSide, featureLayout, FEATURE_FILE } from './attach.js';
export { loadSideAdapter } from './load.js';
export { SideNetwork, type LadderInput } from './ladder.js';
export { FeatureCache, rowKeys, type CacheStats, type FeatureLayout } from './feature-cache.js';
export { adapterConfig, PEFT_TYPES } from './format.js';
export { LST_OPTIONS, QST_OPTIONS, settingsOf, sideConfig, type DownsampleKind, type Ladder, type SideSettings } from './options.js';
