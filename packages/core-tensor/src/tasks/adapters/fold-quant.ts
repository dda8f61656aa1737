/**
 * What folding needs to know about a quantized base (a folder from `peft quantize`, transformers +
 * bitsandbytes, or a plugin quantizer): the quantizer its quantization_config names
 * (registry.quantizerFor), which modules are stored quantized and under which tensor names (the
 * quantizer's layout), the options that re-quantize them with the same settings, and the dtype
 * their weights had before quantization.
 * Not here: streaming and writing (fold.ts), the formats themselves (quant/, plugins).
 */
import { join } from 'node:path';
import type { Dtype, RawTensor } from '../../dtype.js';
import type { ModelFolder } from '../../io/model-folder.js';
import { storedLayout, weightModules } from '../../quant/format.js';
import { resolveOptions, type ResolvedOptions } from '../../plugin/options.js';
import type { QuantizerDef } from '../../plugin/quantizer.js';
import type { Registry } from '../../plugin/registry.js';

export interface QuantModule {
  /** HF module path, e.g. `model.layers.0.mlp.up_proj`. */
  prefix: string;
  /** Every stored tensor of the module (packed weight and statistics). */
  names: string[];
  /** The weight's dtype before quantization, when the format records it (4-bit quant_state). */
  sourceDtype?: Dtype;
}

export interface QuantModules {
  /** The base's quantizer; undefined for a base without quantization_config. */
  quantizer?: QuantizerDef;
  modules: Map<string, QuantModule>;
  /** The module owning each stored tensor name. */
  owner: Map<string, string>;
}

/** Quantized modules by prefix, and the module owning each of their tensor names. */
export async function findQuantModules(base: ModelFolder, registry: Registry): Promise<QuantModules> {
  const modules = new Map<string, QuantModule>();
  const owner = new Map<string, string>();
  const qc = (base.config as Record<string, unknown>).quantization_config;
  if (qc === undefined || qc === null) return { modules, owner };
  const quantizer = registry.quantizerFor(qc, join(base.dir, 'config.json'));
  for (const prefix of weightModules(base.tensorNames)) {
    const layout = await storedLayout(quantizer, prefix, base);
    if (!layout) continue;
    modules.set(prefix, { prefix, names: layout.parts, sourceDtype: layout.sourceDtype });
    for (const n of layout.parts) owner.set(n, prefix);
  }
  return { quantizer, modules, owner };
}

/** The dtype a dequantized weight is written in by default: the format's record of it (4-bit quant_state), else BF16. */
export function originalDtype(m: QuantModule): Dtype {
  return m.sourceDtype ?? 'BF16';
}

/**
 * The options that reproduce module `m`'s settings: the quantizer's optionsFromConfig, or by default
 * every option of its schema that quantization_config names (a plugin writes its options there).
 */
export function requantizeOptions(
  q: QuantizerDef, m: QuantModule, get: (n: string) => RawTensor | undefined, qc: Record<string, unknown>,
): ResolvedOptions {
  const given = q.optionsFromConfig
    ? q.optionsFromConfig(qc, m.prefix, get)
    : Object.fromEntries(Object.keys(q.options).filter((k) => qc[k] !== undefined && qc[k] !== null).map((k) => [k, qc[k]]));
  return resolveOptions(q.name, q.options, given);
}
