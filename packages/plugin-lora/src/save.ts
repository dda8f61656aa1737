/**
 * The attached adapter's handle (AttachedAdapter: parameters, summary, save) and what it writes: a
 * PEFT adapter folder that transformers + PEFT load as is (core io/peft-adapter.ts writes it):
 *
 *   base_model.model.<module>.lora_A.weight          F32 [r, in]
 *   base_model.model.<module>.lora_B.weight          F32 [out, r]
 *   base_model.model.<module>.lora_magnitude_vector  F32 [out]           (DoRA)
 *   base_model.model.<module>.base_layer.bias        F32 [out]           (bias=lora_only|all, wrapped modules)
 *   base_model.model.<module>.bias                   F32 [out]           (bias=all, other modules)
 * Bias keys are the PEFT model's own state-dict names (what get_peft_model_state_dict keeps for
 * bias="all"; PEFT's lora_only branch looked for `<module>.bias` and dropped these, huggingface/peft#3306).
 *
 * PiSSA / OLoRA train on a residual base W_res = W - s·B0·A0. Saved as they are, they would only be
 * right on W_res, so save() always converts them as PEFT's save_pretrained(...,
 * path_initial_model_for_weight_conversion=...) does (peft_model.py; LoraModel.subtract_mutated_init):
 * ΔW = s(B A - B0 A0) = s [B | -B0] [A ; A0], a rank-2r LoRA on the ORIGINAL base, with r doubled,
 * lora_alpha doubled (rsLoRA: times sqrt 2, keeping the scaling) and init_lora_weights true. PEFT
 * multiplies alpha_pattern by 2 even under rsLoRA, which changes those modules' scaling; we use
 * sqrt 2 there too. With a re-quantized base (PiSSA/OLoRA on 4-bit) the conversion is exact up to
 * the residual's re-quantization error, as PEFT warns.
 * LoftQ adapters are only right on the LoftQ base: save() also writes loftq_base.safetensors (the
 * wrapped modules' NF4 weights, bitsandbytes layout, no double quant, HF names); loadAdapter applies it.
 * Not here: reading (load.ts), the config fields (config.ts).
 */
import { promises as fsp } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import {
  bytesOf, encodeQuantState, quantMap, writePeftAdapterFiles, writeSafetensors,
  type AdapterSummary, type AttachedAdapter, type Llama, type NamedRawTensor, type Tensor,
} from '@peft/core-tensor';
import { peftConfig, type LoraSettings } from './config.js';
import type { LoraLinear } from './layer.js';
import { loraKey } from './keys.js';
import { targetsForConfig } from './targets.js';

export const LOFTQ_BASE_FILE = 'loftq_base.safetensors';

/** The biases that train under PEFT's `bias` option, keyed as saved. */
export function trainableBiases(model: Llama, bias: LoraSettings['bias'], layers: readonly LoraLinear[]): [string, Tensor][] {
  if (bias === 'none') return [];
  if (bias === 'lora_only') {
    return layers.filter((l) => l.base_layer.bias).map((l) => [`base_model.model.${l.spec.module}.base_layer.bias`, l.base_layer.bias!]);
  }
  return model.namedParameters().filter(([n, t]) => /(^|\.)bias$/.test(n) && t.dtype === 'f32').map(([n, t]) => [`base_model.model.${n}`, t]);
}

const f32 = (name: string, shape: number[], data: Float32Array): NamedRawTensor => ({ name, dtype: 'F32', shape, data: bytesOf(data) });

/** [A; A0] (rows) and [B | -B0] (columns): the rank-2r LoRA of s(B A - B0 A0). */
function converted(A: Float32Array, B: Float32Array, A0: Float32Array, B0: Float32Array, r: number, out: number): { A: Float32Array; B: Float32Array } {
  const A2 = new Float32Array(A.length * 2);
  A2.set(A);
  A2.set(A0, A.length);
  const B2 = new Float32Array(B.length * 2);
  for (let o = 0; o < out; o++) {
    for (let k = 0; k < r; k++) {
      B2[o * 2 * r + k] = B[o * r + k];
      B2[o * 2 * r + r + k] = -B0[o * r + k];
    }
  }
  return { A: A2, B: B2 };
}

/** The settings as saved after the PiSSA/OLoRA conversion (peft_model.py save_pretrained). */
function convertedSettings(s: LoraSettings): LoraSettings {
  const alphaFactor = s.useRslora ? Math.SQRT2 : 2;
  const scaled = (p: Record<string, number>, f: number) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, v * f]));
  return {
    ...s, r: s.r * 2, loraAlpha: s.loraAlpha * alphaFactor, rankPattern: scaled(s.rankPattern, 2),
    alphaPattern: scaled(s.alphaPattern, alphaFactor), init: 'default', initValue: true,
  };
}

export class LoraAdapterState implements AttachedAdapter {
  constructor(
    readonly settings: LoraSettings,
    readonly layers: readonly LoraLinear[],
    readonly biases: readonly [string, Tensor][],
    readonly baseModelDir: string,
    /** PiSSA / OLoRA: each module's initial factors, for the conversion on save. */
    readonly initial: ReadonlyMap<string, { A0: Float32Array; B0: Float32Array }>,
  ) {}

  parameters(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const l of this.layers) {
      out.push([loraKey(l.spec.module, 'lora_A'), l.lora_A], [loraKey(l.spec.module, 'lora_B'), l.lora_B]);
      if (l.magnitude) out.push([loraKey(l.spec.module, 'lora_magnitude_vector'), l.magnitude]);
    }
    return [...out, ...this.biases];
  }

  summary(): AdapterSummary {
    return { trainableParams: this.parameters().reduce((n, [, t]) => n + t.size, 0), modules: this.layers.map((l) => l.spec.module) };
  }

  /** The config and tensors save() writes (exposed for tests and in-memory use). */
  adapterFiles(): { config: Record<string, unknown>; tensors: NamedRawTensor[] } {
    const tensors: NamedRawTensor[] = [];
    for (const l of this.layers) {
      const { module, r } = l.spec;
      const [out, inF] = l.base_layer.weight.shape;
      const init = this.initial.get(module);
      const ab = init ? converted(Float32Array.from(l.lora_A.data), Float32Array.from(l.lora_B.data), init.A0, init.B0, r, out)
        : { A: Float32Array.from(l.lora_A.data), B: Float32Array.from(l.lora_B.data) };
      const rr = init ? 2 * r : r;
      tensors.push(f32(loraKey(module, 'lora_A'), [rr, inF], ab.A), f32(loraKey(module, 'lora_B'), [out, rr], ab.B));
      if (l.magnitude) tensors.push(f32(loraKey(module, 'lora_magnitude_vector'), [out], Float32Array.from(l.magnitude.data)));
    }
    for (const [key, t] of this.biases) tensors.push(f32(key, [...t.shape], Float32Array.from(t.data)));
    const s = this.initial.size > 0 ? convertedSettings(this.settings) : this.settings;
    const modules = this.layers.map((l) => l.spec.module);
    const config = peftConfig(s, { targetModules: targetsForConfig(s.targets, modules), baseModelName: basename(resolve(this.baseModelDir)) });
    return { config, tensors };
  }

  /** The LoftQ base weights in bitsandbytes' NF4 layout (no double quant), HF names. */
  loftqBase(): NamedRawTensor[] {
    const out: NamedRawTensor[] = [];
    for (const l of this.layers) {
      const w = l.base_layer.weight;
      const d = w.frozen;
      if (d.kind !== 'nf4') continue;
      const P = `${l.spec.module}.weight`;
      const state = encodeQuantState({ quant_type: 'nf4', blocksize: d.blocksize, dtype: 'float32', shape: [...w.shape] });
      out.push(
        { name: P, dtype: 'U8', shape: [d.packed.length, 1], data: d.packed },
        f32(`${P}.absmax`, [d.absmax.length], d.absmax),
        f32(`${P}.quant_map`, [16], quantMap('nf4')),
        { name: `${P}.quant_state.bitsandbytes__nf4`, dtype: 'U8', shape: [state.length], data: state },
      );
    }
    return out;
  }

  /**
   * Writes adapter_config.json + adapter_model.safetensors (and loftq_base.safetensors) INTO `dir`,
   * leaving anything else there alone (the trainer adds its checkpoint files next to them). Atomicity is
   * the caller's: the trainer passes a temp folder of core's AtomicFolder and renames it into place.
   */
  async save(dir: string): Promise<void> {
    const { config, tensors } = this.adapterFiles();
    await fsp.mkdir(dir, { recursive: true });
    await writePeftAdapterFiles(dir, { config, tensors });
    if (this.settings.init === 'loftq') await writeSafetensors(join(dir, LOFTQ_BASE_FILE), this.loftqBase(), { format: 'pt' });
  }
}
