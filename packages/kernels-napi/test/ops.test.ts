// Binding tests for the training ops (src/binding_ops.rs): argument validation (EINVAL naming
// the argument), in-place RoPE, and a few results against tiny naive JS computations in
// doubles. Kernel numerics are tested in Rust (`cargo test --release`, src/ops/*/tests.rs).
// Skipped when the .node file is not built, unless PEFT_REQUIRE_NATIVE=1.
import { kernels as k, expectEinval, type Kernels } from './helpers.js';
import { afterAll, describe, expect, it } from 'vitest';


function rand(n: number, seed: number, scale = 1): Float32Array {
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


/** |got - want| <= tol * (|want| + 1) elementwise (values here are O(1)). */
function expectClose(got: Float32Array, want: ArrayLike<number>, tol: number, what: string) {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < got.length; i++) {
    expect(Math.abs(got[i] - want[i]), `${what}[${i}]: ${got[i]} vs ${want[i]}`).toBeLessThanOrEqual(tol * (Math.abs(want[i]) + 1));
  }
}

const LEVELS = ['scalar', 'avx2', 'avx512'] as const;

/** Runs `fn` at every SIMD level the CPU has. */
function eachLevel(K: Kernels, fn: (level: string) => void) {
  for (const level of LEVELS) {
    try {
      K.setSimdLevel(level);
    } catch (e) {
      expect((e as { code?: string }).code).toBe('ENOTSUP');
      continue;
    }
    fn(level);
  }
}

/** Naive causal GQA attention in doubles: out [B,T,nh,hd], lse [B,nh,T]. */
function naiveAttention(q: Float32Array, kk: Float32Array, v: Float32Array, B: number, T: number, S: number,
  nh: number, nkv: number, hd: number, scale: number) {
  const out = new Float64Array(B * T * nh * hd);
  const lse = new Float64Array(B * nh * T);
  for (let b = 0; b < B; b++) for (let h = 0; h < nh; h++) for (let t = 0; t < T; t++) {
    const kvh = Math.floor(h / (nh / nkv));
    const qo = ((b * T + t) * nh + h) * hd;
    const s: number[] = [];
    for (let j = 0; j <= S - T + t; j++) {
      let d = 0;
      for (let i = 0; i < hd; i++) d += q[qo + i] * kk[((b * S + j) * nkv + kvh) * hd + i];
      s.push(d * scale);
    }
    const m = Math.max(...s);
    const l = m + Math.log(s.reduce((a, x) => a + Math.exp(x - m), 0));
    lse[(b * nh + h) * T + t] = l;
    s.forEach((x, j) => {
      for (let i = 0; i < hd; i++) out[qo + i] += Math.exp(x - l) * v[((b * S + j) * nkv + kvh) * hd + i];
    });
  }
  return { out, lse };
}

describe.skipIf(!k)('kernels-napi training ops', () => {
  const K = k!;
  const best = K?.simdLevel();
  afterAll(() => K.setSimdLevel(best));

  it('exports every op of the contract', () => {
    for (const name of ['rmsnormForward', 'rmsnormBackward', 'swigluForward', 'swigluBackward', 'ropeForward',
      'ropeBackward', 'attentionForward', 'attentionBackward', 'crossEntropyRows', 'adamwStep'] as const) {
      expect(typeof K[name], name).toBe('function');
    }
  });

  it('rmsnorm and swiglu match naive JS', () => {
    const [N, C] = [3, 21];
    const x = rand(N * C, 1), w = rand(C, 2), out = new Float32Array(N * C), rstd = new Float32Array(N);
    const gate = rand(50, 3, 8), up = rand(50, 4), act = new Float32Array(50);
    eachLevel(K, (level) => {
      K.rmsnormForward(out, rstd, x, w, N, C, 1e-5);
      const want: number[] = [];
      for (let i = 0; i < N; i++) {
        let ss = 0;
        for (let j = 0; j < C; j++) ss += x[i * C + j] ** 2;
        const r = 1 / Math.sqrt(ss / C + 1e-5);
        for (let j = 0; j < C; j++) want.push(x[i * C + j] * r * w[j]);
      }
      expectClose(out, want, 1e-6, `rmsnorm ${level}`);
      K.swigluForward(act, gate, up, 50);
      expectClose(act, Array.from(gate, (g, i) => (g / (1 + Math.exp(-g))) * up[i]), 1e-6, `swiglu ${level}`);
    });
  });

  it('rope runs in place when out is x itself, and rejects partial overlap', () => {
    const [BT, heads, hd] = [4, 3, 10];
    const angles = rand(8 * 5, 5, 3), pos = Int32Array.from([0, 7, 3, 3]);
    const cos = angles.map(Math.cos), sin = angles.map(Math.sin);
    const x = rand(BT * heads * hd, 7), out = new Float32Array(x.length), y = x.slice();
    K.ropeForward(out, x, cos, sin, pos, BT, heads, hd);
    K.ropeForward(y, y, cos, sin, pos, BT, heads, hd);
    expect(Array.from(y)).toEqual(Array.from(out));
    const r = 1 * heads * hd + 0 * hd; // row 1 (pos 7), head 0, element 0 and its pair 5
    expect(out[r]).toBeCloseTo(x[r] * cos[35] - x[r + 5] * sin[35], 6);
    K.ropeBackward(y, y, cos, sin, pos, BT, heads, hd); // the inverse rotation
    expectClose(y, x, 1e-6, 'rope round trip');
    const buf = new Float32Array(x.length + 1);
    expectEinval(() => K.ropeForward(buf.subarray(1), buf.subarray(0, x.length), cos, sin, pos, BT, heads, hd), 'x');
    expectEinval(() => K.ropeForward(out, x, cos, sin, Int32Array.from([0, 8, 0, 0]), BT, heads, hd), 'pos');
    expectEinval(() => K.ropeForward(out, x, cos, sin, new Float32Array(4) as never, BT, heads, hd), 'pos');
  });

  it('attention matches naive JS (GQA, KV cache) and its backward runs', () => {
    const [B, T, S, nh, nkv, hd, scale] = [2, 3, 5, 4, 2, 8, 0.35];
    const q = rand(B * T * nh * hd, 8), kk = rand(B * S * nkv * hd, 9), v = rand(B * S * nkv * hd, 10);
    const out = new Float32Array(q.length), lse = new Float32Array(B * nh * T);
    const want = naiveAttention(q, kk, v, B, T, S, nh, nkv, hd, scale);
    eachLevel(K, (level) => {
      K.attentionForward(out, lse, q, kk, v, B, T, S, nh, nkv, hd, scale);
      expectClose(out, want.out, 1e-5, `out ${level}`);
      expectClose(lse, want.lse, 1e-5, `lse ${level}`);
    });
    // dv = P^T dout: with dout = 1 everywhere, dv[key] sums the probabilities of every query that sees it.
    const dq = new Float32Array(q.length), dk = new Float32Array(kk.length), dv = new Float32Array(v.length);
    const ones = new Float32Array(q.length).fill(1);
    K.attentionBackward(dq, dk, dv, ones, q, kk, v, out, lse, B, T, S, nh, nkv, hd, scale);
    const total = dv.reduce((a, x) => a + x, 0) / hd; // every (b, h, t) row of P sums to 1
    expect(total).toBeCloseTo(B * nh * T, 4);
    expectEinval(() => K.attentionForward(out, lse, q, kk, v, B, T, 2, nh, nkv, hd, scale), 'S');
    expectEinval(() => K.attentionForward(out, lse, q, kk, v, B, T, S, nh, 3, hd, scale), 'nkv');
    expectEinval(() => K.attentionForward(out, lse.subarray(1), q, kk, v, B, T, S, nh, nkv, hd, scale), 'lse');
    expectEinval(() => K.attentionBackward(dq, dk, dv, ones, q, kk, v, out, lse, B, T, S, nh, nkv, hd, 'x' as never), 'scale');
    expectEinval(() => K.attentionBackward(dq, dk, dv.subarray(1), ones, q, kk, v, out, lse, B, T, S, nh, nkv, hd, scale), 'dv');
    expectEinval(() => K.attentionBackward(dq, dk, dv, dq, q, kk, v, out, lse, B, T, S, nh, nkv, hd, scale), 'dout');
  });

  it('cross-entropy matches naive JS, zeroes ignored rows and validates targets', () => {
    const [n, V] = [3, 37];
    const x = rand(n * V, 11, 4), logits = x.slice(), loss = new Float32Array(n);
    const targets = Int32Array.from([5, -100, 36]);
    K.crossEntropyRows(loss, logits, targets, n, V, -100, 0.5);
    for (const i of [0, 2]) {
      const row = Array.from(x.subarray(i * V, (i + 1) * V));
      const m = Math.max(...row);
      const l = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
      expect(loss[i]).toBeCloseTo(l - row[targets[i]], 5);
      const g = row.map((v, j) => 0.5 * (Math.exp(v - l) - (j === targets[i] ? 1 : 0)));
      expectClose(logits.subarray(i * V, (i + 1) * V), g, 1e-6, `grad row ${i}`);
    }
    expect(loss[1]).toBe(0);
    expect(logits.subarray(V, 2 * V).every((v) => v === 0)).toBe(true);
    expectEinval(() => K.crossEntropyRows(loss, logits, Int32Array.from([0, 37, 0]), n, V, -100, 1), 'targets');
    expectEinval(() => K.crossEntropyRows(loss, logits, targets, n, V, -0.5, 1), 'ignoreIndex');
    expectEinval(() => K.crossEntropyRows(loss, logits, new Uint32Array(3) as never, n, V, -100, 1), 'targets');
  });

  it('adamw equals torch\'s f32 evaluation written out op by op, at every level', () => {
    const n = 1003;
    const p0 = rand(n, 12), g = rand(n, 13, 0.1);
    const [lr, b1, b2, eps, wd, step] = [1e-3, 0.9, 0.999, 1e-8, 0.1, 3];
    const f = Math.fround;
    const [decay, fb1, omb1, fb2, omb2] = [f(1 - lr * wd), f(b1), f(1 - b1), f(b2), f(1 - b2)];
    const [stepSize, bc2s, feps] = [f(lr / (1 - b1 ** step)), f(Math.sqrt(1 - b2 ** step)), f(eps)];
    const m0 = rand(n, 14, 0.01), v0 = rand(n, 15, 0.01).map(Math.abs);
    // fma(a, b, c) of f32 values: a * b is exact in a double; the double rounding of the sum
    // differs from a true fma with probability ~2^-29 per value.
    const fma = (a: number, b: number, c: number) => f(a * b + c);
    const want = Array.from(p0, (p, i) => {
      const m = fma(g[i], omb1, f(m0[i] * fb1));
      const v = fma(f(omb2 * g[i]), g[i], f(v0[i] * fb2));
      return f(f(p * decay) + f(f(-stepSize * m) / f(f(Math.sqrt(v) / bc2s) + feps)));
    });
    eachLevel(K, (level) => {
      const [p, m, v] = [p0.slice(), m0.slice(), v0.slice()];
      K.adamwStep(p, g, m, v, n, lr, b1, b2, eps, wd, step);
      expect(Array.from(p), level).toEqual(want);
    });
    const [p, m, v] = [p0.slice(), m0.slice(), v0.slice()];
    expectEinval(() => K.adamwStep(p, g, m, v, n, lr, b1, b2, eps, wd, 0), 'step');
    expectEinval(() => K.adamwStep(p, g, m, v.subarray(1), n, lr, b1, b2, eps, wd, 1), 'v');
    expectEinval(() => K.adamwStep(p, g, p, v, n, lr, b1, b2, eps, wd, 1), 'm');
  });

  it('rejects wrong kinds, lengths, sizes and argument counts, naming the argument', () => {
    const a = new Float32Array(12), b = new Float32Array(12), r = new Float32Array(3), w = new Float32Array(4);
    expectEinval(() => K.rmsnormForward(a, r, new Float64Array(12) as never, w, 3, 4, 1e-5), 'x');
    expectEinval(() => K.rmsnormForward(a, r, b, w.subarray(1), 3, 4, 1e-5), 'weight');
    expectEinval(() => K.rmsnormForward(a, r, b, w, 3.5, 4, 1e-5), 'N');
    expectEinval(() => K.rmsnormForward(a, r, b, w, -3, 4, 1e-5), 'N');
    expectEinval(() => K.rmsnormBackward(a, new Float32Array(4), b, b, w, r.subarray(1), 3, 4), 'rstd');
    expectEinval(() => K.rmsnormBackward(a, w, b, b, w, r, 3, 4), 'weight'); // dweight aliases weight
    expectEinval(() => K.swigluForward(a, b, b, 13), 'out');
    expectEinval(() => K.swigluBackward(a, a, b, b, b, 12), 'dup');
    expectEinval(() => (K.swigluForward as (...x: unknown[]) => void)(a, b, b), 'arguments');
    expectEinval(() => (K.attentionBackward as (...x: unknown[]) => void)(a, a, a, a, a, a, a, a, a, 1, 1, 1, 1, 1, 1), 'arguments');
  });
});
