/**
 * `attach` for `qst` and `lst` (training): checks the base and the options before touching the model
 * (r against the base's sizes and heads, lst on a full-precision base, room for cached features), then
 * freezes every base weight, builds the side network with fresh parameters (seeded), puts the tap into
 * the backbone and installs the head hook. The handle it returns trains, saves and sums up exactly the
 * side network's tensors.
 * QST runs on any base peft loads (NF4 / FP4 / int8 from `peft quantize`, bf16, f32): the backbone only
 * runs forward, through the same Linear modules as any other method.
 * Not here: the network (ladder.ts), the hook (head.ts), the folder (format.ts), the cache (feature-cache.ts).
 */
import { statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  full, PeftError, uniform, type AdapterSummary, type AttachedAdapter, type Llama, type LlamaConfig, type MethodContext, type ResolvedOptions,
  type Tensor,
} from '@peft/core-tensor';
import { FeatureCache, featuresPerToken, type FeatureLayout } from './feature-cache.js';
import { FeatureFile } from './feature-file.js';
import { baseFingerprint } from './fingerprint.js';
import { adapterConfig, writeSideAdapter } from './format.js';
import { sideHooks } from './head.js';
import { SideNetwork } from './ladder.js';
import type { ParamSource } from './modules.js';
import { GRADIENT_FREE, settingsOf, sideConfig, type Ladder, type SideSettings } from './options.js';
import { BackboneTap, checkTappable, installTap } from './tap.js';

/** The feature cache's file under OUT. */
export const FEATURE_FILE = 'feature-cache.bin';
const QUANTIZED = new Set(['nf4', 'fp4', 'int8']);
const MIB = 2 ** 20;

/** Fresh trainable tensors: torch's default init, each tensor its own seed. */
function initSource(seed: number): ParamSource {
  let n = 0;
  return (_name, shape, init) => {
    const o = { requiresGrad: true };
    if (init.kind === 'full') return full(shape, init.value, o);
    return uniform(shape, -init.bound, init.bound, { ...o, seed: (seed + 7919 * ++n) >>> 0 });
  };
}

/** What the cache keeps per token: L rungs (pooled or full width) and, for QST with a pool, the final state. */
export function featureLayout(s: SideSettings, base: LlamaConfig, side: LlamaConfig): FeatureLayout {
  const pooled = GRADIENT_FREE.has(s.downsample);
  return { rungs: base.numLayers, width: pooled ? side.hiddenSize : base.hiddenSize, final: pooled && s.method === 'qst' ? base.hiddenSize : 0 };
}

/** Free bytes on the file system that holds `dir` (or the closest folder above it that exists). */
async function freeBytes(dir: string): Promise<number> {
  for (let d = dir; ; d = dirname(d)) {
    const st = await statfs(d).catch(() => undefined);
    if (st) return st.bavail * st.bsize;
    if (dirname(d) === d) return 0;
  }
}

/** The cache, after checking that the data's features fit in RAM + the free disk under OUT (exit 2 if not). */
async function openCache(s: SideSettings, layout: FeatureLayout, ctx: MethodContext): Promise<FeatureCache> {
  const perToken = featuresPerToken(layout);
  const budget = s.cacheMaxMb * MIB;
  if (ctx.dataTokens !== undefined) {
    const need = ctx.dataTokens * perToken * 2;
    const disk = ctx.outDir ? await freeBytes(ctx.outDir) : 0;
    if (need > budget + disk) {
      const what = GRADIENT_FREE.has(s.downsample) ? 'pooled' : `full-width (downsample=${s.downsample} trains, so it needs the states)`;
      throw new PeftError('E_INPUT', `${s.method}: cache_features needs ${(need / MIB).toFixed(0)} MiB of ${what} features for ${ctx.dataTokens} tokens; ` +
        `cache_max_mb ${s.cacheMaxMb} + ${(disk / MIB).toFixed(0)} MiB free under ${ctx.outDir ?? 'no --out'} is not enough ` +
        '(use downsample=maxpool or avgpool, raise cache_max_mb, or drop cache_features)');
    }
  }
  if (!ctx.outDir) return new FeatureCache(layout, budget);
  const fingerprint = `${s.method} ${s.r} ${s.downsample} ${await baseFingerprint(ctx.baseModelDir)}`;
  return new FeatureCache(layout, budget, () => FeatureFile.open(join(ctx.outDir!, FEATURE_FILE), fingerprint, perToken));
}

class SideAdapterState implements AttachedAdapter {
  constructor(readonly net: SideNetwork, readonly config: Record<string, unknown>) {}

  parameters(): [string, Tensor][] {
    return this.net.namedParameters();
  }

  async save(dir: string): Promise<void> {
    await writeSideAdapter(dir, this.config, this.parameters());
  }

  summary(): AdapterSummary {
    const layers = this.net.settings.method === 'qst' ? 'qst_layers' : 'side_block';
    return { trainableParams: this.parameters().reduce((n, [, t]) => n + t.size, 0), modules: this.net.layers.map((_, i) => `model.${layers}.${i}`) };
  }
}

export async function attachSide(method: Ladder, model: Llama, options: ResolvedOptions, ctx: MethodContext): Promise<AttachedAdapter> {
  const s = settingsOf(method, options);
  const side = sideConfig(model.config, s);
  if (model.hooks) throw new PeftError('E_INPUT', `${method} cannot be applied: the model already runs ${model.hooks.method}'s hooks`);
  if (method === 'lst') {
    const q = model.namedParameters().find(([, t]) => QUANTIZED.has(t.dtype));
    if (q) throw new PeftError('E_INPUT', `lst trains on a full-precision base, but ${q[0]} is ${q[1].dtype}: use qst for a quantized one`);
  }
  checkTappable(model, method, s.cacheFeatures);
  const cache = s.cacheFeatures ? await openCache(s, featureLayout(s, model.config, side), ctx) : undefined;
  model.requiresGrad(false); // the backbone is frozen: embeddings, layers, norm and LM head
  const net = new SideNetwork(s, model.config, side, initSource(ctx.seed));
  const tap = new BackboneTap(cache);
  installTap(model, tap);
  model.setHooks(sideHooks(net, tap, model.model.norm, cache));
  return new SideAdapterState(net, adapterConfig(s, model.config, side, ctx.baseModelDir));
}
