/**
 * The base model's fingerprint for the feature cache: sha256 over the bytes of every file the backbone's
 * forward depends on (config.json, the safetensors shards and their index), in name order. Any change to
 * the base (re-quantized, other weights, another config) gives another fingerprint, and the cached
 * features of the old one are dropped. Data changes need no fingerprint: rows are keyed by their ids.
 * Not here: the cache (feature-cache.ts, feature-file.ts).
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { PeftError } from '@peft/core-tensor';

const FORWARD_FILES = /^(config\.json|.*\.safetensors|model\.safetensors\.index\.json)$/;

export async function baseFingerprint(dir: string): Promise<string> {
  const h = createHash('sha256');
  let names: string[];
  try {
    names = (await fsp.readdir(dir)).filter((n) => FORWARD_FILES.test(n)).sort();
  } catch (e) {
    throw new PeftError('E_IO', `${dir}: cannot list the base model (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  for (const name of names) {
    h.update(`${name}\0`);
    for await (const chunk of createReadStream(join(dir, name))) h.update(chunk as Buffer);
  }
  return h.digest('hex');
}
