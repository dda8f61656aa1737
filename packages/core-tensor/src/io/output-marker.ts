/**
 * The mark a peft output carries, `OUT/.peft-output.json`, written inside the folder before it is
 * renamed into place (so it is there exactly when the output is complete):
 *
 *   {"format": "peft-output", "version": 1, "command": "quantize", "peft": "0.1.0",
 *    "created": "2025-01-01T10:00:00.000Z"}
 *
 * `--force` replaces only a folder whose marker names the same command (or an empty folder): a folder
 * peft did not write, or wrote for another command, is never deleted. Hidden, so transformers, PEFT
 * and the hub ignore it; a copy of an output keeps it (it is still that command's output).
 * Not here: the replacement itself (atomic.ts), the other checks on --out (output-guard.ts).
 */
import { readFileSync } from 'node:fs';
import { promises as fsp } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inputError } from '../errors.js';
import { fsError } from './safetensors-reader.js';

export const OUTPUT_MARKER = '.peft-output.json';
const FORMAT = 'peft-output';

export interface OutputMarker {
  format: typeof FORMAT;
  version: 1;
  /** The peft command that wrote the folder: quantize, merge, compress, compress --decompress, train, ... */
  command: string;
  /** Version of @peft/core-tensor that wrote it. */
  peft: string;
  created: string;
}

let version: string | undefined;

/** This package's version, from the nearest package.json above this module (src/ in tests, dist/ when built). */
export function peftVersion(): string {
  if (version) return version;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5 && !version; i++, dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === '@peft/core-tensor') version = pkg.version;
    } catch {
      // not here; look one folder up
    }
  }
  version ??= 'unknown';
  return version;
}

export async function writeOutputMarker(dir: string, command: string): Promise<void> {
  const m: OutputMarker = { format: FORMAT, version: 1, command, peft: peftVersion(), created: new Date().toISOString() };
  const path = join(dir, OUTPUT_MARKER);
  await fsp.writeFile(path, JSON.stringify(m, null, 2) + '\n').catch((e) => {
    throw fsError(e, path, 'writing');
  });
}

/** The marker of `dir`, or undefined when it has none (or an unreadable one). */
export async function readOutputMarker(dir: string): Promise<OutputMarker | undefined> {
  try {
    const v = JSON.parse(await fsp.readFile(join(dir, OUTPUT_MARKER), 'utf8')) as OutputMarker;
    return v && v.format === FORMAT && typeof v.command === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Throws E_EXISTS (saying why) unless `--force` may replace `dir`: a folder marked by `command`, or an
 * empty folder. `shown` is the path as the user gave it.
 */
export async function checkReplaceable(dir: string, command: string, shown: string): Promise<void> {
  const st = await fsp.stat(dir).catch(() => undefined); // a dangling symlink is not a folder peft wrote
  const advice = 'remove it yourself or choose another --out';
  if (!st?.isDirectory()) throw inputError('E_EXISTS', `exists and is not a folder peft wrote: --force replaces only an earlier output of peft ${command}; ${advice}`, shown);
  const marker = await readOutputMarker(dir);
  if (marker?.command === command) return;
  const entries = await fsp.readdir(dir).catch((e) => {
    throw fsError(e, dir, 'listing');
  });
  if (!marker && entries.length === 0) return;
  const why = marker ? `was written by peft ${marker.command}, not peft ${command}` : `was not written by peft ${command} (no ${OUTPUT_MARKER})`;
  throw inputError('E_EXISTS', `${why}: --force replaces only an earlier output of the same command; ${advice}`, shown);
}
