/**
 * Reading the small JSON files of model and adapter folders (config.json, adapter_config.json,
 * the shard index): one clear E_* error naming the file. Only regular files are read (a FIFO
 * would block), and a reserved key (`__proto__`, `constructor`, `prototype`) at any depth is refused.
 */
import { inputError } from '../errors.js';
import { isReservedKey, reservedKeyError } from '../reserved-keys.js';
import { readTextFile } from './regular-file.js';

/** The JSON object in `file`; `notFound` replaces the generic message when the file is missing. */
export async function readJsonObject(file: string, opts: { notFound?: string } = {}): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readTextFile(file);
  } catch (e) {
    if (opts.notFound && (e as { code?: string }).code === 'E_NOT_FOUND') throw inputError('E_NOT_FOUND', opts.notFound, file);
    throw e;
  }
  return parseJsonObject(text, file);
}

/** `text` as a JSON object (E_FORMAT naming `file` otherwise). */
export function parseJsonObject(text: string, file: string): Record<string, unknown> {
  let json: unknown;
  let reserved: string | undefined;
  try {
    // The reviver sees every key once; JSON.parse itself would keep `__proto__` as an own key.
    json = JSON.parse(text, function (this: unknown, key: string, value: unknown) {
      if (reserved === undefined && isReservedKey(key) && !Array.isArray(this)) reserved = key;
      return value;
    });
  } catch (e) {
    throw inputError('E_FORMAT', `not valid JSON (${(e as Error).message.split('\n')[0]})`, file);
  }
  if (reserved !== undefined) throw reservedKeyError(reserved, file);
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw inputError('E_FORMAT', 'not a JSON object', file);
  return json as Record<string, unknown>;
}
