/**
 * @peft/plugin-merge: merges for `peft merge` (mergekit's methods, registered as `merger` entries)
 * and compression for `peft compress`. `register` adds every entry to a registry.
 */
import type { Registry } from '@peft/core-tensor';
import { registerMergeMethods } from './methods/index.js';
import { registerCompressors } from './compress/index.js';

export function register(registry: Registry): void {
  registerMergeMethods(registry);
  registerCompressors(registry);
}

export * from './methods/index.js';
