// Throughput of the training ops at the Llama "tiny" training shape (stories15M:
// B=4, T=256, C=288, H=768, nh=nkv=6, hd=48; cross-entropy on one 128-row chunk of a
// 32000 vocab), per SIMD level, with 1 thread and with all threads. Not part of the tests.
//   node packages/kernels-napi/bench/ops.mjs        (BENCH_REPS=best of, default 5)
// Memory-bound ops report GB/s of their compulsory traffic (each array read or written
// once); attention reports GFLOP/s (forward 4*B*nh*hd*T(T+1)/2 multiply-adds x2;
// backward 2.5x that, as FlashAttention-2 counts it). The pool is sized once per
// process, so each thread count runs in a child.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

const REPS = Number(process.env.BENCH_REPS || 5);
const [B, T, C, H, NH, NKV, HD, V, CE_ROWS] = [4, 256, 288, 768, 6, 6, 48, 32000, 128];
const N = B * T;

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

function rand(n, scale = 1, seed = 1) {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 2 ** 32 - 0.5) * 2 * scale;
  }
  return out;
}

/** name -> [run, amount, unit]: amount in bytes (GB/s) or flops (GFLOP/s). */
function cases(k) {
  const f = (n) => new Float32Array(n);
  const x = rand(N * C, 1, 1), w = rand(C, 1, 2), out = f(N * C), rstd = f(N), dx = f(N * C), dw = f(C);
  const gate = rand(N * H, 3, 3), up = rand(N * H, 1, 4), act = f(N * H), dg = f(N * H), du = f(N * H);
  const qn = N * NH * HD, kvn = B * T * NKV * HD;
  const q = rand(qn, 1, 5), kk = rand(kvn, 1, 6), vv = rand(kvn, 1, 7), ao = f(qn), lse = f(B * NH * T);
  const dq = f(qn), dk = f(kvn), dv = f(kvn), dout = rand(qn, 1, 8);
  const half = HD / 2, cos = f(T * half), sin = f(T * half), pos = new Int32Array(N), rq = f(qn);
  for (let p = 0; p < T; p++) for (let i = 0; i < half; i++) {
    const a = p / 10000 ** ((2 * i) / HD);
    cos[p * half + i] = Math.cos(a);
    sin[p * half + i] = Math.sin(a);
  }
  pos.forEach((_, i) => (pos[i] = i % T));
  const logits = rand(CE_ROWS * V, 5, 9), loss = f(CE_ROWS);
  const targets = Int32Array.from({ length: CE_ROWS }, (_, i) => (i * 7919) % V);
  const P = 1 << 22, param = rand(P, 1, 10), grad = rand(P, 1e-2, 11), m = f(P), v2 = f(P);
  const attnFlops = 4 * B * NH * HD * ((T * (T + 1)) / 2);
  const bytes = (n, arrays) => n * 4 * arrays;
  return {
    'rmsnorm fwd [1024,288]': [() => k.rmsnormForward(out, rstd, x, w, N, C, 1e-5), bytes(N * C, 2), 'GB/s'],
    'rmsnorm bwd [1024,288]': [() => k.rmsnormBackward(dx, dw, out, x, w, rstd, N, C), bytes(N * C, 3), 'GB/s'],
    'swiglu fwd [1024,768]': [() => k.swigluForward(act, gate, up, N * H), bytes(N * H, 3), 'GB/s'],
    'swiglu bwd [1024,768]': [() => k.swigluBackward(dg, du, act, gate, up, N * H), bytes(N * H, 5), 'GB/s'],
    'rope fwd q [1024,6,48]': [() => k.ropeForward(rq, q, cos, sin, pos, N, NH, HD), bytes(qn, 2), 'GB/s'],
    'rope bwd q (in place)': [() => k.ropeBackward(rq, rq, cos, sin, pos, N, NH, HD), bytes(qn, 2), 'GB/s'],
    'attention fwd': [() => k.attentionForward(ao, lse, q, kk, vv, B, T, T, NH, NKV, HD, HD ** -0.5), attnFlops, 'GFLOP/s'],
    'attention bwd': [
      () => k.attentionBackward(dq, dk, dv, dout, q, kk, vv, ao, lse, B, T, T, NH, NKV, HD, HD ** -0.5),
      2.5 * attnFlops, 'GFLOP/s',
    ],
    // Later calls see the previous call's gradient as logits: the same work (no data-dependent branches).
    'cross-entropy [128,32000]': [
      () => k.crossEntropyRows(loss, logits, targets, CE_ROWS, V, -100, 1 / CE_ROWS), bytes(CE_ROWS * V, 2), 'GB/s',
    ],
    'adamw [4M]': [() => k.adamwStep(param, grad, m, v2, P, 1e-3, 0.9, 0.999, 1e-8, 0.1, 1), bytes(P, 7), 'GB/s'],
  };
}

function child() {
  const k = createRequire(import.meta.url)('..');
  const rows = [];
  for (const level of ['scalar', 'avx2', 'avx512']) {
    try {
      k.setSimdLevel(level);
    } catch {
      continue;
    }
    for (const [name, [fn, amount, unit]] of Object.entries(cases(k))) {
      const ms = bestMs(fn);
      rows.push({ level, name, unit, ms, rate: amount / 1e9 / (ms / 1e3) });
    }
  }
  process.stdout.write(JSON.stringify({ threads: k.numThreads(), rows }));
}

function main() {
  console.log(`best of ${REPS}, ${os.cpus()[0].model}`);
  const table = new Map();
  for (const t of [...new Set([1, os.availableParallelism()])]) {
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child'], {
      env: { ...process.env, PEFT_NUM_THREADS: String(t) },
      encoding: 'utf8',
      maxBuffer: 1 << 20,
    });
    if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
    for (const row of JSON.parse(r.stdout).rows) {
      const key = `${row.name} | ${row.level}`;
      const cell = `${row.rate.toFixed(1)} ${row.unit} (${row.ms.toFixed(2)} ms)`;
      table.set(key, { ...(table.get(key) || {}), [`${t} thr`]: cell });
    }
  }
  console.table(Object.fromEntries(table));
}

if (process.argv[2] === '--child') child();
else main();
