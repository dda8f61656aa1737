/**
 * `--adapter DIR` for eval and generate: the folder's adapter_config.json names its `peft_type`, and
 * the method registered for it (registry.methodFor, the one lookup) applies the adapter to the loaded
 * base model. The method is found before any model loads, so a bad folder fails fast. Applying returns
 * one warning line per kind of tensor PEFT would not apply (see MethodDef's AdapterLoadReport).
 * Not here: what applying means (the method's loadAdapter), folding into weights (fold.ts).
 */
import { join } from 'node:path';
import { inputError } from '../../errors.js';
import { readJsonObject } from '../../io/json-file.js';
import { ADAPTER_CONFIG } from '../../io/peft-adapter.js';
import type { Llama } from '../../models/llama.js';
import type { AdapterLoadReport, MethodDef } from '../../plugin/method.js';
import type { Registry } from '../../plugin/registry.js';
import { adapterWarnings } from './deltas.js';

export interface InferenceAdapter {
  dir: string;
  method: MethodDef;
  config: Record<string, unknown>;
  /** Applies the adapter to `model`; the warning lines (empty when everything in the file applied). */
  apply(model: Llama): Promise<string[]>;
}

/** The warning lines of a load report: tensors not applied, and targeted modules the file has nothing for. */
export function loadWarnings(dir: string, report: AdapterLoadReport | void): string[] {
  return report ? adapterWarnings(dir, report) : [];
}

/** Reads the adapter's config and finds its method; nothing is applied until `apply`. */
export async function resolveAdapter(dir: string, registry: Registry): Promise<InferenceAdapter> {
  const file = join(dir, ADAPTER_CONFIG);
  const config = await readJsonObject(file, { notFound: 'no adapter_config.json: not a PEFT adapter folder' });
  if (typeof config.peft_type !== 'string') throw inputError('E_FORMAT', 'peft_type is missing', file);
  const method = registry.methodFor(config.peft_type, file);
  return { dir, method, config, apply: async (model) => loadWarnings(dir, await method.loadAdapter(model, dir, config)) };
}
