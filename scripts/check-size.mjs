#!/usr/bin/env node
/**
 * The file-size check of `make test` (STYLE.md "Size"): a source file of ours longer than 400 lines
 * fails unless scripts/size-allowlist.txt lists it with a reason. An allowlist entry for a file that
 * is gone or back under the limit fails too, so the list only holds live exceptions.
 * Sources: .ts .mts .cts .js .mjs .cjs .rs .py .cu .cuh under packages/, examples/, tests/, scripts/,
 * skipping node_modules/, dist/, target/ and test fixtures (test/fixtures/: generated data).
 * Allowlist lines: `path/relative/to/root  reason...`; `#` starts a comment.
 * Usage: node scripts/check-size.mjs [ROOT]   (ROOT: the tree to check, default this repo)
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const MAX_LINES = 400;
const SOURCE = /\.(ts|mts|cts|js|mjs|cjs|rs|py|cu|cuh)$/;
const SKIP_DIRS = new Set(['node_modules', 'dist', 'target']);
const ROOTS = ['packages', 'examples', 'tests', 'scripts'];
export const ALLOWLIST = 'scripts/size-allowlist.txt';

function* sources(root, dir) {
  for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) {
      if (!SKIP_DIRS.has(e.name) && !e.name.startsWith('.') && !/(^|\/)test\/fixtures$/.test(rel)) yield* sources(root, rel);
    } else if (e.isFile() && SOURCE.test(e.name)) yield rel;
  }
}

const lineCount = (text) => text.split('\n').length - (text.endsWith('\n') ? 1 : 0);

/** path -> reason, or an error line for a malformed entry. */
function readAllowlist(root, problems) {
  const allowed = new Map();
  const file = join(root, ALLOWLIST);
  if (!existsSync(file)) return allowed;
  readFileSync(file, 'utf8').split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) return;
    const m = /^(\S+)\s+(\S.*)$/.exec(line);
    if (m) allowed.set(m[1], m[2]);
    else problems.push(`${ALLOWLIST}:${i + 1}: "${line}" gives no reason`);
  });
  return allowed;
}

export function checkSize(root) {
  const problems = [];
  const allowed = readAllowlist(root, problems);
  const sizes = new Map();
  for (const dir of ROOTS.filter((d) => existsSync(join(root, d)))) {
    for (const rel of sources(root, dir)) sizes.set(rel, lineCount(readFileSync(join(root, rel), 'utf8')));
  }
  for (const [rel, n] of [...sizes].sort()) {
    if (n > MAX_LINES && !allowed.has(rel)) problems.push(`${rel}: ${n} lines (> ${MAX_LINES}); split it, or list it in ${ALLOWLIST} with a reason`);
  }
  for (const rel of allowed.keys()) {
    if (!sizes.has(rel)) problems.push(`${ALLOWLIST}: ${rel} is not a source file here; drop the entry`);
    else if (sizes.get(rel) <= MAX_LINES) problems.push(`${ALLOWLIST}: ${rel} has ${sizes.get(rel)} lines now; drop the entry`);
  }
  return problems;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'));
  const problems = checkSize(root);
  for (const p of problems) console.log(p);
  console.log(problems.length === 0 ? 'size: ok' : `size: ${problems.length} problem(s) (root ${relative(process.cwd(), root) || '.'})`);
  process.exit(problems.length === 0 ? 0 : 1);
}
