#!/usr/bin/env node
/**
 * The layering check of `make test`: dependency-cruiser reads every import of ours (packages/,
 * examples/, tests/, scripts/) and applies .dependency-cruiser.cjs (kernels-napi imports nothing of
 * ours, core no plugin or CLI, a plugin no other plugin or the CLI, packages meet by name); then the
 * folders of packages/core-tensor/src must form no cycle (DESIGN.md "Core-tensor inside").
 * One exception to the cycle rule, the Tensor facade: Tensor's methods are one-line delegations to
 * the ops and to backward (STYLE.md §1), so tensor/tensor.ts imports ops/ and autograd/, which build
 * on tensor/. Those edges, and only those, are left out of the folder graph.
 * Usage: node scripts/check-layers.mjs [ROOT]   (ROOT: the tree to check, default this repo)
 * Prints one line per violation; exits 0 when clean, 1 otherwise.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CORE = 'packages/core-tensor/src/';
const FACADE = { from: 'tensor/tensor.ts', to: /^(ops|autograd)\// };

function cruise(root) {
  const dirs = ['packages', 'examples', 'tests', 'scripts'].filter((d) => existsSync(join(root, d)));
  const bin = join(REPO, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');
  const args = [bin, '--config', join(REPO, '.dependency-cruiser.cjs'), '--output-type', 'json', ...dirs];
  const r = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', maxBuffer: 1 << 30 });
  if (!r.stdout?.startsWith('{')) throw new Error(`dependency-cruiser failed (exit ${r.status}): ${r.stderr || r.stdout}`);
  return JSON.parse(r.stdout);
}

/** core-tensor/src unit of a path: its top folder ("ops/"), or the file itself at the top ("errors.ts"). */
const unitOf = (rel) => (rel.includes('/') ? `${rel.slice(0, rel.indexOf('/'))}/` : rel);

/** Folder graph of core-tensor/src (facade edges left out): unit -> unit -> one module edge as evidence. */
function folderGraph(modules) {
  const graph = new Map();
  for (const m of modules) {
    if (!m.source.startsWith(CORE)) continue;
    const from = m.source.slice(CORE.length);
    for (const d of m.dependencies) {
      if (!d.resolved.startsWith(CORE)) continue;
      const to = d.resolved.slice(CORE.length);
      const [a, b] = [unitOf(from), unitOf(to)];
      if (a === b || (from === FACADE.from && FACADE.to.test(to))) continue;
      if (!graph.has(a)) graph.set(a, new Map());
      if (!graph.get(a).has(b)) graph.get(a).set(b, `${from} -> ${to}`);
    }
  }
  return graph;
}

/** Strongly connected components with more than one unit (Tarjan), each sorted. */
function cycles(graph) {
  const index = new Map(), low = new Map(), stack = [], on = new Set(), out = [];
  let next = 0;
  const visit = (v) => {
    index.set(v, next); low.set(v, next++); stack.push(v); on.add(v);
    for (const w of graph.get(v)?.keys() ?? []) {
      if (!index.has(w)) { visit(w); low.set(v, Math.min(low.get(v), low.get(w))); }
      else if (on.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
    }
    if (low.get(v) !== index.get(v)) return;
    const scc = [];
    for (let w; w !== v;) { w = stack.pop(); on.delete(w); scc.push(w); }
    if (scc.length > 1) out.push(scc.sort());
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return out;
}

export function checkLayers(root) {
  const result = cruise(root);
  const lines = result.summary.violations
    .filter((v) => v.rule.severity === 'error')
    .map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`);
  const graph = folderGraph(result.modules);
  for (const scc of cycles(graph)) {
    const inside = new Set(scc);
    const edges = scc.flatMap((a) => [...graph.get(a)].filter(([b]) => inside.has(b)).map(([b, why]) => `${a} -> ${b} (${why})`));
    lines.push(`core-folders-form-no-cycle: ${scc.join(', ')}: ${edges.join('; ')}`);
  }
  return lines;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const lines = checkLayers(resolve(process.argv[2] ?? REPO));
  for (const l of lines) console.log(l);
  console.log(lines.length === 0 ? 'layers: ok' : `layers: ${lines.length} violation(s)`);
  process.exit(lines.length === 0 ? 0 : 1);
}
