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
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadRegistry } from './registry.js';

interface AdapterMethod {
  name: string;
  peftType?: unknown;
  loadAdapter?: (model: Llama, dir: string, config: Record<string, unknown>) => Promise<void> | void;
}

async function readAdapterConfig(dir: string): Promise<Record<string, unknown>> {
  const { inputError } = await import('@peft/core-tensor');
  const file = join(dir, 'adapter_config.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    throw inputError(missing ? 'E_NOT_FOUND' : 'E_IO', missing ? 'no adapter_config.json: not a PEFT adapter folder' : (e as Error).message, file);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw inputError('E_FORMAT', `not valid JSON (${(e as Error).message.split('\n')[0]})`, file);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw inputError('E_FORMAT', 'not a JSON object', file);
  if (typeof (json as { peft_type?: unknown }).peft_type !== 'string') throw inputError('E_FORMAT', 'peft_type is missing', file);
  return json as Record<string, unknown>;
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
