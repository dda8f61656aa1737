// Throughput of the native kernels: MB/s of f32 input (or output, for dequant),
// per SIMD level, with 1 thread and with all threads. Not part of the tests.
//   node packages/kernels-napi/bench/throughput.js        (BENCH_N=elements, default 64M)
// The thread pool is sized once per process, so each thread count runs in a child.
'use strict';

const { spawnSync } = require('node:child_process');
const os = require('node:os');

const N = Number(process.env.BENCH_N || 64 * 1024 * 1024);
const REPS = Number(process.env.BENCH_REPS || 3);

function bestMs(fn) {
  fn(); // warm up (page faults, pool start)
  let best = Infinity;
  for (let r = 0; r < REPS; r++) {
    const t = process.hrtime.bigint();
    fn();
    best = Math.min(best, Number(process.hrtime.bigint() - t) / 1e6);
  }
  return best;
}

function child() {
  const k = require('..');
  const x = new Float32Array(N);
  for (let i = 0; i < N; i++) x[i] = Math.sin(i * 0.618) * (1 + (i % 7));
  const packed = new Uint8Array(Math.ceil(N / 2));
  const absmax = new Float32Array(Math.ceil(N / 64));
  const out = new Float32Array(N);
  const h = new Uint16Array(N);
  const cb = new Int8Array(N);
  const scb = new Float32Array(N / 4096);
  const mb = (N * 4) / 1e6;
  const rows = [];
  for (const level of ['scalar', 'avx2', 'avx512']) {
    try {
      k.setSimdLevel(level);
    } catch {
      continue;
    }
    const cases = {
      'nf4 quantize (bs 64)': () => k.quantize4bit(x, 64, 0, packed, absmax),
      'fp4 quantize (bs 64)': () => k.quantize4bit(x, 64, 1, packed, absmax),
      'nf4 dequantize (bs 64)': () => k.dequantize4bit(packed, absmax, 64, 0, out),
      'int8 rows quantize (4096 cols)': () => k.quantizeInt8Rows(x, N / 4096, 4096, cb, scb),
      'f32 -> f16': () => k.f32ToF16(x, h),
    };
    for (const [name, fn] of Object.entries(cases)) {
      rows.push({ level, kernel: name, mbPerS: Math.round(mb / (bestMs(fn) / 1e3)) });
    }
  }
  process.stdout.write(JSON.stringify({ threads: k.numThreads(), rows }));
}

function main() {
  console.log(`n = ${N} f32 (${((N * 4) / 2 ** 20).toFixed(0)} MiB), best of ${REPS}, ${os.cpus()[0].model}`);
  const table = new Map();
  const counts = [...new Set([1, os.availableParallelism()])];
  for (const t of counts) {
    const r = spawnSync(process.execPath, [__filename, '--child'], {
      env: { ...process.env, PEFT_NUM_THREADS: String(t) },
      encoding: 'utf8',
      maxBuffer: 1 << 20,
    });
    if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
    for (const row of JSON.parse(r.stdout).rows) {
      const key = `${row.kernel} | ${row.level}`;
      table.set(key, { ...(table.get(key) || {}), [`${t} thr MB/s`]: row.mbPerS });
    }
  }
  console.table(Object.fromEntries(table));
}

if (process.argv[2] === '--child') child();
else main();
