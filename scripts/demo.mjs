#!/usr/bin/env node
/**
 * `make demo`: the product's main job on the embedded default. The committed tiny base (demo/base,
 * pretrained from random init by scripts/demo/pretrain.mjs with this trainer) is quantized to NF4,
 * QLoRA-trained on task A (demo/data/task-a/train.jsonl), and scored on the held-out rows before and
 * after; one table compares them. Every step is a `peft` command, as a user would run it.
 * Settings: demo/demo.json (written by the demo's author after measuring; edit to experiment).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, statSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const out = join(root, '.tmp/demo');
const settings = JSON.parse(readFileSync(join(root, 'demo/demo.json'), 'utf8'));
const task = join(root, 'demo/data', settings.task);

function peft(args, { live = false } = {}) {
  const t0 = performance.now();
  const text = execFileSync('node', [join(root, 'packages/cli/bin/run.js'), ...args, '--json'], {
    encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', live ? 'inherit' : 'pipe'],
  });
  return { ...JSON.parse(text), wall: (performance.now() - t0) / 1000 };
}
const dirBytes = (dir) => readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
const step = (what) => process.stderr.write(`\n== ${what}\n`);

rmSync(out, { recursive: true, force: true });
step('inspect the committed base');
const base = peft(['inspect', join(root, 'demo/base')]);
console.error(`${base.architecture}, ${base.shape ? Object.entries(base.shape).map(([k, v]) => `${k}=${v}`).join(' ') : ''}, ${(base.bytes / 2 ** 20).toFixed(1)} MiB`);

step('quantize to NF4');
const q = peft(['quantize', join(root, 'demo/base'), '--out', join(out, 'base-nf4')]);
console.error(`${(q.bytesBefore / 2 ** 20).toFixed(2)} MiB -> ${(q.bytesAfter / 2 ** 20).toFixed(2)} MiB in ${q.seconds.toFixed(2)} s`);

const evalArgs = (extra) => ['eval', join(out, 'base-nf4'), '--data', join(task, 'test.jsonl'), '--batch', '32', ...extra];
step('evaluate the NF4 base on the held-out rows');
const before = peft(evalArgs([]));

step(`QLoRA on ${settings.task} (${settings.steps} steps)`);
const train = peft(['train', join(out, 'base-nf4'), '--data', join(task, 'train.jsonl'), '--out', join(out, 'qlora'),
  ...settings.trainArgs, '--steps', String(settings.steps)], { live: true });

step('evaluate base + adapter on the held-out rows');
const after = peft(evalArgs(['--adapter', join(out, 'qlora/adapter')]));

const pct = (x) => `${(100 * x).toFixed(1)} %`;
const rows = [
  ['', 'NF4 base', 'NF4 base + QLoRA adapter'],
  ['exact match (held out)', `${pct(before.exactMatch)} (${before.exactMatches}/${before.rows})`, `${pct(after.exactMatch)} (${after.exactMatches}/${after.rows})`],
  ['token accuracy', pct(before.tokenAccuracy), pct(after.tokenAccuracy)],
  ['loss', before.loss.toFixed(4), after.loss.toFixed(4)],
  ['adapter size', '', `${(dirBytes(join(out, 'qlora/adapter')) / 1024).toFixed(1)} KiB (${train.trainableParams} parameters)`],
  ['training time', '', `${train.seconds.toFixed(1)} s, ${train.tokensPerSec.toFixed(0)} tokens/s`],
  ['peak memory (train)', '', `${train.peakRssMiB.toFixed(0)} MiB`],
];
const w = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
console.log(`\npeft demo: QLoRA on ${settings.task} (${settings.description})`);
for (const r of rows) console.log(r.map((cell, c) => cell.padEnd(w[c])).join('  '));
console.log(`\noutputs in ${out}: base-nf4/, qlora/adapter (PEFT format), qlora/metrics.jsonl, qlora/loss.svg`);
