// GFLOP/s of the native gemm against OpenBLAS (numpy's bundled build, bench/gemm_numpy.py), side by
// side in one run: same shapes, same thread count, timed in alternating rounds so machine noise hits
// both alike; medians. Then the fused NF4 GEMM against the fp32 gemm on Llama "tiny" shapes.
// Not a test.
//   node packages/kernels-napi/bench/gemm-vs-openblas.mjs [--json]
// Env: BENCH_ROUNDS (default 9), BENCH_BATCH_MS (default 40), BENCH_SETTLE_MS (default 250),
//      PYTHON (default python3), PEFT_NUM_THREADS (default: all cores; numpy gets the same count).
// Every timed batch starts after an idle pause (OpenBLAS's worker threads busy-wait ~0.1 s after a
// call and would steal a core from the other side) and an untimed warm-up batch of the same side
// (in this VM a thread that slept for >= 50 ms takes 0.1-5 ms to get its core back): the table is
// steady-state throughput, what back-to-back calls in a training step see.
// OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are removed from numpy's environment (on this machine they pin
// OpenBLAS to an older kernel); the table header says which core type it then runs.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import os from 'node:os';

const here = dirname(fileURLToPath(import.meta.url));
const k = createRequire(import.meta.url)(join(here, '..'));
const ROUNDS = Number(process.env.BENCH_ROUNDS || 9);
const BATCH_MS = Number(process.env.BENCH_BATCH_MS || 40);
const SETTLE_MS = Number(process.env.BENCH_SETTLE_MS ?? 250);
const settle = () => new Promise((r) => setTimeout(r, SETTLE_MS));
const json = process.argv.includes('--json');

/** [m, n, k, transA, transB, label] */
const SQUARES = [256, 512, 1024, 2048].map((s) => [s, s, s, false, false, `square ${s}`]);
// LoRA rank 8 on a 288-wide layer, 1024 tokens: forward x A^T, (xA^T) B^T; backward dB = dy^T (xA^T),
// d(xA^T) = dy B, dA = d(xA^T)^T x, dx += d(xA^T) A.
const LORA = [
  [1024, 8, 288, false, true, 'lora x A^T'],
  [1024, 288, 8, false, true, 'lora (xA^T) B^T'],
  [288, 8, 1024, true, false, 'lora dB = dy^T xa'],
  [1024, 8, 288, false, false, 'lora dxa = dy B'],
  [8, 288, 1024, true, false, 'lora dA = dxa^T x'],
  [1024, 288, 8, false, false, 'lora dx += dxa A'],
];
// Llama "tiny" projections (1024 tokens, 288 <-> 768): forward y = x W^T and input grad dx = dy W.
const TINY = [
  [1024, 768, 288, false, true, 'fwd 288->768'],
  [1024, 288, 768, false, true, 'fwd 768->288'],
  [1024, 288, 768, false, false, 'dx 288->768'],
  [1024, 768, 288, false, false, 'dx 768->288'],
];

function rand(n, seed) {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (s >>> 0) / 2 ** 32 - 0.5;
  }
  return out;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/** Seconds per call of `fn`, over a batch of `reps` calls. */
function batch(fn, reps) {
  const t = process.hrtime.bigint();
  for (let i = 0; i < reps; i++) fn();
  return Number(process.hrtime.bigint() - t) / 1e9 / reps;
}

function repsFor(secondsPerCall) {
  return Math.max(1, Math.round(BATCH_MS / 1e3 / secondsPerCall));
}

/** Alternate rounds of the given timers (each: reps -> seconds per call); medians per timer. */
async function alternate(timers) {
  const reps = [];
  for (const t of timers) {
    await t(1); // first call: pages, packing buffers, threads
    const once = await t(1);
    await t(repsFor(once)); // warm, then size the batch from a warm call
    reps.push(repsFor(await t(1)));
  }
  const samples = timers.map(() => []);
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < timers.length; i++) {
      await settle();
      await timers[i](reps[i]); // warm-up
      samples[i].push(await timers[i](reps[i]));
    }
  }
  return samples.map(median);
}

function startNumpy(threads) {
  const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const py = spawn(process.env.PYTHON || 'python3', [join(here, 'gemm_numpy.py')], { env, stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: py.stdout })[Symbol.asyncIterator]();
  const next = async () => {
    const { value, done } = await lines.next();
    if (done) throw new Error('gemm_numpy.py exited (is numpy installed for $PYTHON?)');
    return JSON.parse(value);
  };
  const ask = async (req) => {
    py.stdin.write(`${JSON.stringify(req)}\n`);
    return next();
  };
  return { info: next(), ask, close: () => py.stdin.end() };
}

function ours([m, n, kk, ta, tb]) {
  const a = rand(m * kk, 1);
  const b = rand(kk * n, 2);
  const c = new Float32Array(m * n);
  return (reps) => batch(() => k.gemm(ta, tb, m, n, kk, 1, a, b, 0, c), reps);
}

function nf4([m, n, kk, , tb]) {
  const a = rand(m * kk, 1);
  const w = rand(kk * n, 2);
  const packed = new Uint8Array(w.length / 2);
  const absmax = new Float32Array(Math.ceil(w.length / 64));
  k.quantize4bit(w, 64, 0, packed, absmax);
  const c = new Float32Array(m * n);
  return (reps) => batch(() => k.gemmQuant4(tb, m, n, kk, 1, a, packed, absmax, 64, 0, 0, c), reps);
}

const gflops = ([m, n, kk], s) => (2 * m * n * kk) / s / 1e9;
const shapeName = ([m, n, kk, ta, tb]) => `${m}x${n}x${kk}${ta ? ' A^T' : ''}${tb ? ' B^T' : ''}`;

async function main() {
  const threads = k.numThreads();
  const np = startNumpy(threads);
  const blas = await np.info;
  const rows = [];
  for (const shape of [...SQUARES, ...LORA, ...TINY]) {
    await np.ask({ shape: shape.slice(0, 5) });
    const numpy = async (reps) => (await np.ask({ reps })).s;
    const [sOurs, sNp] = await alternate([ours(shape), numpy]);
    rows.push({ label: shape[5], shape: shapeName(shape), oursUs: sOurs * 1e6, numpyUs: sNp * 1e6,
      oursGflops: gflops(shape, sOurs), numpyGflops: gflops(shape, sNp), ratio: sNp / sOurs });
  }
  np.close();
  const nf4Rows = [];
  for (const shape of TINY) {
    const [sF32, sNf4] = await alternate([ours(shape), nf4(shape)]);
    nf4Rows.push({ label: shape[5], shape: shapeName(shape), fp32Us: sF32 * 1e6, nf4Us: sNf4 * 1e6, ratio: sNf4 / sF32 });
  }
  const meta = { cpu: os.cpus()[0].model, threads, simd: k.simdLevel(), rounds: ROUNDS, blas };
  if (json) {
    process.stdout.write(`${JSON.stringify({ meta, gemm: rows, nf4: nf4Rows }, null, 2)}\n`);
    return;
  }
  console.log(`${meta.cpu}, ${threads} threads, ours: ${meta.simd}; numpy ${blas.numpy} OpenBLAS core ${blas.corename} (${blas.threads} threads); medians of ${ROUNDS} alternating rounds`);
  console.table(rows.map((r) => ({ case: r.label, shape: r.shape, 'ours us': r.oursUs.toFixed(1), 'ours GFLOP/s': r.oursGflops.toFixed(1),
    'openblas us': r.numpyUs.toFixed(1), 'openblas GFLOP/s': r.numpyGflops.toFixed(1), 'speed ours/openblas': r.ratio.toFixed(2) })));
  console.log('fused NF4 (blocksize 64) GEMM vs fp32 gemm, same shapes (ratio = nf4 time / fp32 time):');
  console.table(nf4Rows.map((r) => ({ case: r.label, shape: r.shape, 'fp32 us': r.fp32Us.toFixed(1), 'nf4 us': r.nf4Us.toFixed(1), 'nf4/fp32': r.ratio.toFixed(3) })));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
