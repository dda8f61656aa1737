/**
 * `attach`: turns a loaded Llama into a LoRA-trainable one, as PEFT's get_peft_model does for a
 * LoraConfig (LoraModel._create_and_replace + mark_only_lora_as_trainable): freeze every weight,
 * wrap each target Linear in a LoraLinear with its rank / alpha (rank_pattern, alpha_pattern),
 * initialise A and B (seeded: ctx.seed + module index), let the chosen biases train, and hand back
 * the AttachedAdapter the trainer optimizes and saves.
 * Base weights: f32 / bf16 / nf4 / fp4 / int8 all work as they are (QLoRA: a 4-bit base stays
 * packed and never gets a gradient). PiSSA and OLoRA replace the base by its residual, stored in the
 * base's own format (a quantized base is dequantized, factored and re-quantized: PEFT refuses this
 * for PiSSA; we allow it and say so). LoftQ needs an f32 / bf16 base and replaces it by NF4.
 * Everything is checked before the model is touched, so a refused option leaves it as it was.
 * Not here: the layer math (layer.ts), the inits (init/), the files (save.ts).
 */
import {
  frozenTensor, keep, PeftError, replaceWeight, rowNorms, tensor, weightF32, type AttachedAdapter, type Linear, type Llama,
  type MethodContext, type ResolvedOptions, type Tensor,
} from '@peft/core-tensor';
import { settingsFromOptions, type LoraSettings } from './config.js';
import { initialise } from './init/index.js';
import { LoraLinear } from './layer.js';
import { LoraAdapterState, trainableBiases } from './save.js';
import { moduleRank, selectTargets } from './targets.js';

const NEEDS_WEIGHT = new Set(['pissa', 'olora', 'loftq']);

interface Planned { path: string; base: Linear; r: number; alpha: number; scale: number }

function plan(model: Llama, s: LoraSettings): Planned[] {
  return selectTargets(model, s.targets).map((path) => {
    const base = model.getModule(path) as Linear;
    const { r, alpha, scale } = moduleRank(s, path);
    const [out, inF] = base.weight.shape;
    if (NEEDS_WEIGHT.has(s.init) && r > Math.min(out, inF)) {
      throw new PeftError('E_INPUT', `lora: ${s.init} needs r <= min(out, in), but ${path} [${out}, ${inF}] has r = ${r}`);
    }
    if (s.init === 'loftq' && !['f32', 'bf16'].includes(base.weight.dtype)) {
      throw new PeftError('E_INPUT', `lora: loftq quantizes the base itself and needs a full-precision model, but ${path} is ${base.weight.dtype}`);
    }
    return { path, base, r, alpha, scale };
  });
}

/** Wraps one planned module; returns the layer and, for PiSSA/OLoRA, the initial factors. */
function wrap(model: Llama, s: LoraSettings, p: Planned, index: number, seed: number): { layer: LoraLinear; A0?: Float32Array; B0?: Float32Array } {
  const [out, inF] = p.base.weight.shape;
  const init = initialise(s.init, {
    module: p.path, outFeatures: out, inFeatures: inF, r: p.r, scale: p.scale, seed: (seed + index) >>> 0,
    weight: () => weightF32(p.base.weight),
  }, s.loftqIter);
  if (init.residual) replaceWeight(p.base, init.residual);
  if (init.quantized) p.base.setParameter('weight', keep(frozenTensor(init.quantized, [out, inF]))).dispose();
  const A = tensor(init.A, [p.r, inF], { requiresGrad: true });
  const B = tensor(init.B, [out, p.r], { requiresGrad: true });
  // DoraLinearLayer.update_layer: m = ||W + s B A|| with the initial factors (on the residual base, if any).
  const m = s.useDora ? tensor(rowNorms(p.base.weight, init.A, init.B, p.r, p.scale), [out], { requiresGrad: true }) : undefined;
  const spec = { module: p.path, index, r: p.r, alpha: p.alpha, scale: p.scale, dropout: s.dropout };
  const layer = new LoraLinear(p.base, spec, A, B, m);
  model.replace(p.path, layer);
  const keepInit = s.init === 'pissa' || s.init === 'olora';
  return { layer, A0: keepInit ? init.A.slice() : undefined, B0: keepInit ? init.B.slice() : undefined };
}

export async function attachLora(model: Llama, options: ResolvedOptions, ctx: MethodContext): Promise<AttachedAdapter> {
  const s = settingsFromOptions(options);
  const planned = plan(model, s);
  model.requiresGrad(false); // mark_only_lora_as_trainable: nothing but the adapter (and chosen biases) trains
  const layers: LoraLinear[] = [];
  const initial = new Map<string, { A0: Float32Array; B0: Float32Array }>();
  planned.forEach((p, i) => {
    const w = wrap(model, s, p, i, ctx.seed);
    layers.push(w.layer);
    if (w.A0 && w.B0) initial.set(p.path, { A0: w.A0, B0: w.B0 });
    ctx.onProgress?.(`lora ${s.initValue === true ? 'init' : String(s.initValue)}`, i + 1, planned.length);
  });
  const biases: [string, Tensor][] = trainableBiases(model, s.bias, layers);
  for (const [, b] of biases) b.requiresGrad = true;
  return new LoraAdapterState(s, layers, biases, ctx.baseModelDir, initial);
}
