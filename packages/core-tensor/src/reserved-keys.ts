/**
 * Key names that no settings file may use: `__proto__`, `constructor` and `prototype` reach an
 * object's prototype when a reader assigns or looks them up (`out[key] = v`, `SCHEMA[key]`),
 * so a recipe, `--set`, config.json or adapter_config.json holding one is refused by name with one
 * clear line instead of a confusing message or a silently dropped setting.
 * Not here: reading files (io/json-file.ts, io/yaml-file.ts), option schemas (plugin/options.ts).
 */
import { inputError } from './errors.js';

export const RESERVED_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

export function isReservedKey(key: string): boolean {
  return RESERVED_KEYS.has(key);
}

/** E_INPUT for a reserved key; `where` names the file (or file:line, or --set). */
export function reservedKeyError(key: string, where: string) {
  return inputError('E_INPUT', `key ${JSON.stringify(key)} is not allowed (a reserved name: ${[...RESERVED_KEYS].join(', ')})`, where);
}

/** Throws for the first reserved key of `obj` (own keys only; callers walk nested objects). */
export function refuseReservedKeys(obj: object, where: string): void {
  for (const k of Object.keys(obj)) if (RESERVED_KEYS.has(k)) throw reservedKeyError(k, where);
}
