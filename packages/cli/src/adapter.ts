/**
 * `--adapter DIR` for eval / generate. The adapter folder's adapter_config.json names its
 * `peft_type`; the method a plugin registered for that type (registry kind `method`, matched on its
 * `peftType`) applies the adapter to the loaded base model. The CLI knows no method by name.
 *
 * The contract a method entry is expected to offer (until the plugin contract types it):
 *   peftType: string                                            e.g. "LORA"
 *   loadAdapter(model, dir, adapterConfig): Promise<void> | void   wraps / loads into the model in place
 */
import type { Config } from '@oclif/core';
import type { ApplyAdapter, Llama } from '@peft/core-tensor';
import { join } from 'node:path';
import { loadRegistry } from './registry.js';

interface AdapterMethod {
  name: string;
  peftType?: unknown;
  loadAdapter?: (model: Llama, dir: string, config: Record<string, unknown>) => Promise<void> | void;
}

async function readAdapterConfig(dir: string): Promise<Record<string, unknown>> {
  const { inputError, readJsonObject } = await import('@peft/core-tensor');
  const file = join(dir, 'adapter_config.json');
  const json = await readJsonObject(file, { notFound: 'no adapter_config.json: not a PEFT adapter folder' });
  if (typeof json.peft_type !== 'string') throw inputError('E_FORMAT', 'peft_type is missing', file);
  return json;
}

/** Checks the adapter and finds its method before any model is loaded; the returned function applies it. */
export async function resolveAdapter(config: Config, dir: string): Promise<ApplyAdapter> {
  const { PeftError } = await import('@peft/core-tensor');
  const adapterConfig = await readAdapterConfig(dir);
  const peftType = adapterConfig.peft_type as string;
  const registry = await loadRegistry(config);
  const methods = registry.list('method') as AdapterMethod[];
  const method = methods.find((m) => typeof m.peftType === 'string' && m.peftType.toUpperCase() === peftType.toUpperCase());
  if (!method) throw new PeftError('E_INPUT', `no adapter method registered for ${peftType} (adapter ${dir}); install the plugin that provides it`);
  const load = method.loadAdapter;
  if (typeof load !== 'function') {
    throw new PeftError('E_INPUT', `method "${method.name}" (peft_type ${peftType}) cannot apply an adapter for inference (no loadAdapter)`);
  }
  return (model) => load.call(method, model, dir, adapterConfig);
}
