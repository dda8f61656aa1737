#!/usr/bin/env node
/**
 * `make bench`, part 2: peak RSS of `peft quantize` on a generated model of at least 1 GB on
 * disk, beside its largest tensor: streaming means the peak follows the largest tensor, not
 * the model. Runs each type once (nf4, fp4, int8) in a fresh process and prints a table;
 * `--json` prints the rows. Set PEFT_BENCH_BYTES to change the model size.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const dir = join(root, '.tmp/bench');
const model = join(dir, 'model-1g');
const bytes = Number(process.env.PEFT_BENCH_BYTES ?? 1.05e9);
const json = process.argv.includes('--json');
const mib = (n) => (n / 2 ** 20).toFixed(0);

if (!existsSync(join(model, 'config.json'))) {
  execFileSync('node', [join(root, 'packages/core-tensor/bin/gen-model.js'), model, '--bytes', String(bytes), '--dtype', 'bf16', '--seed', '1'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

const rows = [];
for (const type of ['nf4', 'fp4', 'int8']) {
  const out = join(dir, `out-${type}`);
  rmSync(out, { recursive: true, force: true });
  const stdout = execFileSync('node', [join(root, 'packages/cli/bin/run.js'), 'quantize', model, '--out', out, '--type', type, '--json'], {
    encoding: 'utf8', maxBuffer: 64 << 20,
  });
  const s = JSON.parse(stdout);
  rows.push({
    type, modelBytes: s.bytesBefore, outBytes: s.bytesAfter, largestTensorBytes: s.largestTensorBytes, peakRssBytes: s.peakRssBytes,
    seconds: s.seconds, mbPerSecond: s.bytesBefore / 1e6 / s.seconds, backend: s.backend,
  });
  rmSync(out, { recursive: true, force: true });
}

if (json) console.log(JSON.stringify(rows, null, 2));
else {
  console.log('peft quantize on a generated bf16 model: peak RSS vs model and largest tensor');
  console.log('type   model MiB  out MiB  largest tensor MiB  peak RSS MiB  time s   MB/s   backend');
  for (const r of rows) {
    console.log(
      `${r.type.padEnd(6)} ${mib(r.modelBytes).padStart(9)}  ${mib(r.outBytes).padStart(7)}  ${mib(r.largestTensorBytes).padStart(18)}  ` +
        `${mib(r.peakRssBytes).padStart(12)}  ${r.seconds.toFixed(2).padStart(6)}  ${r.mbPerSecond.toFixed(0).padStart(5)}   ${r.backend}`,
    );
  }
}
