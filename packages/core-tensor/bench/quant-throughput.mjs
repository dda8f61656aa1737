#!/usr/bin/env node
/**
 * Quantization throughput: MB/s of f32 data (input for quantize, output for dequantize) for NF4,
 * FP4 (blocksize 64) and int8 rows (4096 columns), native kernels (best SIMD level, all threads)
 * vs the reference TS backend. Median of --runs timed runs after one warm-up.
 *
 *   pnpm --filter @peft/core-tensor build
 *   node packages/core-tensor/bench/quant-throughput.mjs [--n 16777216] [--ref-n 4194304] [--runs 5] [--json]
 *
 * Plain .mjs on the built dist/ so it runs on Node 20 without a TS loader. The reference backend is
 * timed on --ref-n elements (it runs at ~100 MB/s; throughput does not depend on the size).
 * Dequantization writes into a reused output buffer: first-touch page faults on a fresh 64 MB array
 * cost more than the kernel itself on small VMs (~250 ms here), which would hide the kernel speed.
 * Quantize outputs are allocated per call (the Backend contract has no out parameter for them).
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { loadKernels, nativeBackend, nativeLoadError, referenceBackend, tryLoadKernels } from '../dist/index.js';

const { values: args } = parseArgs({
  options: {
    n: { type: 'string', default: String(1 << 24) },
    'ref-n': { type: 'string', default: String(1 << 22) },
    runs: { type: 'string', default: '5' },
    json: { type: 'boolean', default: false },
  },
});
const N = Number(args.n);
const REF_N = Math.min(N, Number(args['ref-n']));
const RUNS = Number(args.runs);
const COLS = 4096;

/** Deterministic weights-like data (sum of uniforms ~ normal, a few outliers). */
function weights(n) {
  const x = new Float32Array(n);
  let s = 12345;
  const u = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296);
  for (let i = 0; i < n; i++) x[i] = (u() + u() + u() - 1.5) * (i % 997 === 0 ? 2 : 0.05);
  return x;
}

function median(a) {
  const s = [...a].sort((p, q) => p - q);
  return s[Math.floor(s.length / 2)];
}

/** The benchmarked operations: prepare(backend, x) returns the timed closure. */
const OPS = [
  ['nf4 quantize', (b, x) => () => b.quantize4bit(x, 64, 'nf4')],
  ['nf4 dequantize', (b, x) => { const q = b.quantize4bit(x, 64, 'nf4'); const out = new Float32Array(x.length); return () => b.dequantize4bit(q.packed, q.absmax, x.length, 64, 'nf4', out); }],
  ['fp4 quantize', (b, x) => () => b.quantize4bit(x, 64, 'fp4')],
  ['fp4 dequantize', (b, x) => { const q = b.quantize4bit(x, 64, 'fp4'); const out = new Float32Array(x.length); return () => b.dequantize4bit(q.packed, q.absmax, x.length, 64, 'fp4', out); }],
  ['int8 quantize', (b, x) => () => b.quantizeInt8Rows(x, x.length / COLS, COLS)],
  ['int8 dequantize', (b, x) => { const q = b.quantizeInt8Rows(x, x.length / COLS, COLS); const out = new Float32Array(x.length); return () => b.dequantizeInt8Rows(q.cb, q.scb, x.length / COLS, COLS, out); }],
];

function measure(backend, x, prepare) {
  const run = prepare(backend, x);
  run(); // warm-up
  const times = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    run();
    times.push(performance.now() - t0);
  }
  const ms = median(times);
  return { ms, mbps: (x.length * 4) / 1e6 / (ms / 1e3) };
}

function main() {
  const kernels = tryLoadKernels();
  const native = kernels ? nativeBackend(loadKernels()) : undefined;
  const round = (v) => Math.round(v / 4096) * 4096 || 4096; // whole int8 rows
  const xNative = weights(round(N));
  const xRef = xNative.subarray(0, round(REF_N));
  const rows = OPS.map(([name, prepare]) => {
    const ref = measure(referenceBackend, xRef, prepare);
    const nat = native ? measure(native, xNative, prepare) : undefined;
    return { op: name, referenceMBps: ref.mbps, nativeMBps: nat?.mbps ?? null, speedup: nat ? nat.mbps / ref.mbps : null };
  });
  const info = {
    n: xNative.length, referenceN: xRef.length, runs: RUNS,
    native: native ? { simd: native.simd, threads: kernels.numThreads() } : { unavailable: nativeLoadError() },
  };
  if (args.json) {
    console.log(JSON.stringify({ ...info, results: rows }, null, 2));
    return;
  }
  console.log(`f32 MB/s, median of ${RUNS}; native: ${native ? `${info.native.simd}, ${info.native.threads} threads, n=${info.n}` : `unavailable (${info.native.unavailable})`}; reference: n=${info.referenceN}`);
  console.log(`${'op'.padEnd(16)} ${'reference'.padStart(10)} ${'native'.padStart(10)} ${'speedup'.padStart(8)}`);
  for (const r of rows) {
    const nat = r.nativeMBps === null ? '-' : r.nativeMBps.toFixed(0);
    const sp = r.speedup === null ? '-' : `${r.speedup.toFixed(0)}x`;
    console.log(`${r.op.padEnd(16)} ${r.referenceMBps.toFixed(1).padStart(10)} ${nat.padStart(10)} ${sp.padStart(8)}`);
  }
}

main();
