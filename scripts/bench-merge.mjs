#!/usr/bin/env node
/**
 * `make bench`, merges: throughput and peak RSS of a 3-model TIES merge (base + 2 models, mergekit's
 * usual shape) over generated bf16 Llamas of at least 1 GB each, and of the same merge with all three
 * inputs quantized to NF4 (dequantized on the fly). Each merge runs in a fresh node process that
 * reports its own peak RSS (process.resourceUsage().maxRSS); MB/s is input bytes read / seconds.
 * Streaming means the peak follows (inputs + 1) x the largest tensor in f32, not the models.
 *
 *   make ts        # or: pnpm --filter @peft/core-tensor --filter @peft/plugin-merge run build
 *   node scripts/bench-merge.mjs [--bytes 1.05e9] [--runs 1] [--json] [--keep]
 *
 * Models are generated once into .tmp/bench/merge/ (seeds 1, 2, 3) and reused; outputs are removed
 * unless --keep. Plain .mjs on the built dist/ so it runs on Node 20 without a TS loader.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const root = resolve(import.meta.dirname, '..');
const work = join(root, '.tmp/bench/merge');
const core = join(root, 'packages/core-tensor/dist/index.js');
const plugin = join(root, 'packages/plugin-merge/dist/index.js');

const { values: args } = parseArgs({
  options: {
    bytes: { type: 'string', default: process.env.PEFT_BENCH_BYTES ?? '1.05e9' },
    runs: { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    child: { type: 'string' },
  },
});

/** In a child process: one quantization or one merge, reported as JSON on stdout. */
async function child(job) {
  const c = await import(core);
  const { register } = await import(plugin);
  const registry = c.createRegistry();
  c.registerBuiltins(registry);
  register(registry);
  if (job.kind === 'quantize') {
    const q = registry.get('quantizer', 'nf4');
    await c.quantizeModel({ modelDir: job.model, outDir: job.out, quantizer: q, options: c.resolveOptions('nf4', q.options, {}), force: true });
    return {};
  }
  const plan = c.planFromFlags({ method: 'ties', base: job.base, models: job.models, params: { weight: 0.5, density: 0.5 }, dtype: 'bf16' });
  const report = await c.runMerge(plan, registry, { out: job.out, force: true, seed: 1 });
  return { report, maxRssBytes: process.resourceUsage().maxRSS * 1024 };
}

function runChild(job) {
  const out = execFileSync(process.execPath, [import.meta.filename, '--child', JSON.stringify(job)], {
    encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'inherit'],
  });
  return JSON.parse(out);
}

/** Generates the three models (and their NF4 versions) once; a stamp records the options used. */
function ensureModels(bytes) {
  const stamp = join(work, 'stamp.json');
  const want = JSON.stringify({ bytes, dtype: 'bf16', seeds: [1, 2, 3], nf4: true });
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === want) return;
  rmSync(work, { recursive: true, force: true });
  for (const seed of [1, 2, 3]) {
    const dir = join(work, `m${seed}`);
    execFileSync(process.execPath, [join(root, 'packages/core-tensor/bin/gen-model.js'), dir, '--bytes', String(bytes), '--dtype', 'bf16', '--seed', String(seed)], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    runChild({ kind: 'quantize', model: dir, out: `${dir}-nf4` });
  }
  writeFileSync(stamp, want);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const mib = (n) => (n / 2 ** 20).toFixed(0);

async function main() {
  if (args.child) {
    process.stdout.write(JSON.stringify(await child(JSON.parse(args.child))));
    return;
  }
  const bytes = Number(args.bytes);
  const runs = Math.max(1, Number(args.runs));
  ensureModels(bytes);
  const variants = [
    { name: 'ties bf16', suffix: '' },
    { name: 'ties nf4', suffix: '-nf4' },
  ];
  const rows = [];
  for (const v of variants) {
    const out = join(work, `out${v.suffix}`);
    const job = { kind: 'merge', base: join(work, `m1${v.suffix}`), models: [2, 3].map((s) => join(work, `m${s}${v.suffix}`)), out };
    const results = Array.from({ length: runs }, () => runChild(job));
    const r = results[0].report;
    rows.push({
      variant: v.name, inputs: 3, tensors: r.tensors, inputBytes: r.bytesIn, outputBytes: r.bytesOut,
      largestTensorF32Bytes: r.check.largestTensorElements * 4,
      seconds: median(results.map((x) => x.report.seconds)),
      mbPerSecond: median(results.map((x) => x.report.mbPerSecond)),
      peakRssBytes: median(results.map((x) => x.maxRssBytes)),
      runs,
    });
    if (!args.keep) rmSync(out, { recursive: true, force: true });
  }
  if (args.json) {
    console.log(JSON.stringify(rows, null, 2));
    return;
  }
  console.log(`peft merge: 3-model TIES (weight 0.5, density 0.5, bf16 out), models of ${(bytes / 1e9).toFixed(2)} GB, median of ${runs} run(s)`);
  console.log('variant     input MiB  out MiB  largest f32 MiB  time s    MB/s  peak RSS MiB  RSS/largest');
  for (const r of rows) {
    console.log(
      `${r.variant.padEnd(10)}  ${mib(r.inputBytes).padStart(9)}  ${mib(r.outputBytes).padStart(7)}  ${mib(r.largestTensorF32Bytes).padStart(15)}  ` +
        `${r.seconds.toFixed(1).padStart(6)}  ${r.mbPerSecond.toFixed(0).padStart(6)}  ${mib(r.peakRssBytes).padStart(12)}  ${(r.peakRssBytes / r.largestTensorF32Bytes).toFixed(1).padStart(11)}`,
    );
  }
}

await main();
