#!/usr/bin/env node
/**
 * The type check of `make test`: `tsc --noEmit` over every project (tsconfig.json at the root, in
 * packages/* and examples/*), and every TypeScript file of ours must belong to one of them, so
 * tests, the CLI and tools are checked like the sources (tsup builds without a type check).
 * Packages import each other's built .d.ts: run after `make ts`.
 * Usage: node scripts/check-types.mjs [ROOT]   (ROOT: the tree to check, default this repo)
 * Prints tsc's errors and the uncovered files; exits 0 when clean, 1 otherwise.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TSC = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
const TS_FILE = /\.(ts|mts|cts|tsx)$/;
const SKIP_DIRS = new Set(['node_modules', 'dist', 'target']);
const PARALLEL = 2;

function projects(root) {
  const found = existsSync(join(root, 'tsconfig.json')) ? ['.'] : [];
  for (const group of ['packages', 'examples']) {
    if (!existsSync(join(root, group))) continue;
    for (const e of readdirSync(join(root, group), { withFileTypes: true })) {
      if (e.isDirectory() && existsSync(join(root, group, e.name, 'tsconfig.json'))) found.push(`${group}/${e.name}`);
    }
  }
  return found;
}

function* tsFiles(root, dir) {
  for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
    const rel = dir === '.' ? e.name : `${dir}/${e.name}`;
    if (e.isDirectory()) {
      if (!SKIP_DIRS.has(e.name) && !e.name.startsWith('.')) yield* tsFiles(root, rel);
    } else if (e.isFile() && TS_FILE.test(e.name)) yield rel;
  }
}

/** tsc on one project: its error lines and the files of its program (relative to root). */
function tsc(root, project) {
  return new Promise((done, fail) => {
    const p = spawn(process.execPath, [TSC, '--noEmit', '--pretty', 'false', '--listFiles', '-p', join(root, project)], { cwd: root });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('error', fail);
    p.on('close', () => {
      const files = [], errors = [];
      for (const line of out.split('\n')) {
        if (line.startsWith('/') && existsSync(line)) files.push(relative(root, line));
        else if (line.trim()) errors.push(`${project}: ${line}`);
      }
      done({ files, errors });
    });
  });
}

export async function checkTypes(root) {
  const queue = projects(root);
  const results = [];
  await Promise.all(Array.from({ length: PARALLEL }, async () => {
    while (queue.length > 0) results.push(await tsc(root, queue.shift()));
  }));
  const problems = results.flatMap((r) => r.errors);
  const covered = new Set(results.flatMap((r) => r.files));
  for (const rel of tsFiles(root, '.')) if (!covered.has(rel)) problems.push(`${rel}: in no tsconfig.json project, so never type-checked`);
  return problems;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const problems = await checkTypes(resolve(process.argv[2] ?? REPO));
  for (const p of problems) console.log(p);
  console.log(problems.length === 0 ? 'types: ok' : `types: ${problems.length} problem(s)`);
  process.exit(problems.length === 0 ? 0 : 1);
}
