/** The oclif `peft:register` hook: adds this plugin's entries to the CLI's registry. */
import type { Registry } from '@peft/core-tensor';
import { register } from './index.js';

export default async function hook(opts: { registry: Registry }): Promise<void> {
  register(opts.registry);
}
