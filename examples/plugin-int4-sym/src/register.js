// @ts-check
/**
 * The oclif hook `peft:register`: peft fires it with `{ registry }` and this plugin adds its
 * quantizer. Library users call `register(createRegistry())` themselves.
 */
import { int4Sym } from './int4-sym.js';

/** @param {import('@peft/core-tensor').Registry} registry */
export function register(registry) {
  registry.quantizer(int4Sym);
}

/** @param {{ registry: import('@peft/core-tensor').Registry }} options */
export default async function hook({ registry }) {
  register(registry);
}
