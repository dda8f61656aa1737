/** Reading the small JSON files of model and adapter folders: one clear E_* error naming the file. */
import * as fsp from 'node:fs/promises';
import { inputError } from '../errors.js';
import { fsError } from './safetensors-reader.js';

/** The JSON object in `file`; `notFound` replaces the generic message when the file is missing. */
export async function readJsonObject(file: string, opts: { notFound?: string } = {}): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    if (opts.notFound && (e as NodeJS.ErrnoException).code === 'ENOENT') throw inputError('E_NOT_FOUND', opts.notFound, file);
    throw fsError(e, file, 'reading');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw inputError('E_FORMAT', `not valid JSON (${(e as Error).message.split('\n')[0]})`, file);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw inputError('E_FORMAT', 'not a JSON object', file);
  return json as Record<string, unknown>;
}
