/**
 * `--adapter DIR` for eval / generate. The adapter folder's adapter_config.json names its
 * `peft_type`; the method a plugin registered for that type (registry kind `method`, matched on its
 * `peftType`, see core plugin/method.ts) applies the adapter to the loaded base model. The CLI knows
 * no method by name.
 */
import type { Config } from '@oclif/core';
import type { ApplyAdapter } from '@peft/core-tensor';
import { join } from 'node:path';
import { loadRegistry } from './registry.js';

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
  const method = registry.list('method').find((m) => m.peftType.toUpperCase() === peftType.toUpperCase());
  if (!method) throw new PeftError('E_INPUT', `no adapter method registered for ${peftType} (adapter ${dir}); install the plugin that provides it`);
  return (model) => method.loadAdapter(model, dir, adapterConfig);
}
