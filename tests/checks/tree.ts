/** Fixture trees for the house checks' tests: files written to a temp folder, a check run on it. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

const REPO = resolve(import.meta.dirname, '..', '..');

/** Writes `files` (path relative to the tree -> content) into a fresh temp folder; returns its path. */
export function writeTree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'peft-check-'));
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), text);
  }
  return root;
}

/** Runs scripts/check-NAME.mjs on `root`: its exit status and its output lines. */
export function runCheck(name: 'layers' | 'size' | 'types', root: string): { status: number | null; lines: string[] } {
  const r = spawnSync(process.execPath, [join(REPO, 'scripts', `check-${name}.mjs`), root], { encoding: 'utf8' });
  return { status: r.status, lines: `${r.stdout}${r.stderr}`.split('\n').filter(Boolean) };
}
