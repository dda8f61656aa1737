/**
 * Helpers for CLI tests: run the built `peft` binary in a child process (as users do),
 * with its own oclif data dir so plugin links never touch the user's.
 */
import { execa } from 'execa';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../../..');
const BIN = join(ROOT, 'packages/cli/bin/run.js');

export function tempDir(prefix = 'peft-cli-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface Run {
  exitCode: number;
  stdout: string;
  stderr: string;
  json<T = any>(): T;
}

export async function peft(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const r = await execa('node', [BIN, ...args], {
    reject: false,
    env: { NO_COLOR: '1', FORCE_COLOR: '0', ...env },
    timeout: 120_000,
  });
  return {
    exitCode: r.exitCode ?? -1,
    stdout: String(r.stdout),
    stderr: String(r.stderr),
    json: () => JSON.parse(r.stdout),
  };
}

/** Everything in `dir` (to prove a failed run left nothing, temp folders included). */
export function listing(dir: string): string[] {
  return readdirSync(dir).sort();
}
