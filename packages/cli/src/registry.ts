/**
 * The CLI's view of what methods exist: the core's built-ins plus whatever installed plugins
 * register on the `peft:register` hook. Nothing here knows a method by name.
 */
import type { Config } from '@oclif/core';
import type { Registry } from '@peft/core-tensor';

export async function loadRegistry(config: Config): Promise<Registry> {
  const { createRegistry, registerBuiltins, PeftError } = await import('@peft/core-tensor');
  const registry = createRegistry();
  registerBuiltins(registry);
  const result = await config.runHook('peft:register' as never, { registry } as never);
  const failure = result.failures[0];
  if (failure) {
    throw new PeftError('E_RUNTIME', `plugin ${failure.plugin.name} failed to register: ${failure.error.message}`);
  }
  return registry;
}
