/**
 * Running the built `peft` for the safety tests: in a chosen folder, optionally behind the test-only
 * fault-injection preload (fault-preload.mjs: full disk, read-only folders, SIGKILL / SIGINT at chosen
 * writes), reporting the signal a run died of. PEFT_TEST_BIN runs another build instead (to watch these
 * tests fail on an older checkout). Also the file-tree helpers those tests compare folders with.
 */
import { execa, type ResultPromise } from 'execa';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ROOT } from './helpers.js';

const BIN = process.env.PEFT_TEST_BIN ?? join(ROOT, 'packages/cli/bin/run.js');
const PRELOAD = join(import.meta.dirname, 'fault-preload.mjs');

export interface Faults {
  /** Only paths under this folder are affected. */
  dir: string;
  enospcAfter?: number;
  erofs?: 'all' | 'write';
  killAt?: number;
  killOn?: string;
  countFile?: string;
  sigintOn?: string;
  sigintTwice?: boolean;
}

export interface Ran {
  exitCode?: number;
  /** The signal the process died of, if any. */
  signal?: string;
  stdout: string;
  stderr: string;
}

function faultEnv(f: Faults): Record<string, string> {
  const env: Record<string, string> = { PEFT_FAULT_DIR: f.dir };
  const set = (k: string, v: unknown) => v !== undefined && (env[k] = String(v));
  set('PEFT_FAULT_ENOSPC_AFTER', f.enospcAfter);
  set('PEFT_FAULT_EROFS', f.erofs);
  set('PEFT_FAULT_KILL_AT', f.killAt);
  set('PEFT_FAULT_KILL_ON', f.killOn);
  set('PEFT_FAULT_COUNT_FILE', f.countFile);
  set('PEFT_FAULT_SIGINT_ON', f.sigintOn);
  if (f.sigintTwice) env.PEFT_FAULT_SIGINT_TWICE = '1';
  return env;
}

export function spawnPeft(args: string[], o: { cwd?: string; faults?: Faults } = {}): ResultPromise {
  const node = o.faults ? ['--import', PRELOAD, BIN] : [BIN];
  return execa('node', [...node, ...args], {
    reject: false, cwd: o.cwd, timeout: 120_000,
    env: { NO_COLOR: '1', FORCE_COLOR: '0', ...(o.faults ? faultEnv(o.faults) : {}) },
  });
}

export async function runPeft(args: string[], o: { cwd?: string; faults?: Faults } = {}): Promise<Ran> {
  const r = await spawnPeft(args, o);
  return { exitCode: r.exitCode, signal: r.signal ?? undefined, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Killed by SIGINT, or exited 130: what a shell reports as 130. */
export const interrupted = (r: Ran) => r.exitCode === 130 || r.signal === 'SIGINT';

/** Every file under `dir` (relative path -> sha256), recursively; dot files included. */
export function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out[relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

/** Names anywhere under `dir` that a run in progress or a killed one leaves: temp folders and files, locks. */
export function leftovers(dir: string): string[] {
  const found: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (/\.peft-(tmp|old|del)-|\.peft-lock|\.peft-spill-|\.tmp-\d+$/.test(n)) found.push(relative(dir, p));
      else if (statSync(p).isDirectory()) walk(p);
    }
  };
  if (existsSync(dir)) walk(dir);
  return found;
}

/** One line of stderr (bad input is reported in exactly one line). */
export const oneLine = (r: Ran) => r.stderr.trim().split('\n').filter((l) => l.trim()).length === 1;
