/**
 * The checks every TrainKernels implementation must pass, registered as vitest cases so the reference
 * (in f64 and f32) and the native kernels (f32) run the same ones: the torch fixtures of
 * scripts/ref/train_kernels_reference.py, and small cases worked by hand.
 */
import { describe, expect, it } from 'vitest';
import type { F, TrainKernels } from '../src/backend/train-kernels.js';
import { expectClose, readFixture, type Precision } from './train-kernels-util.js';

/** Registers the torch-fixture checks; every result must be within `rtol` (normwise) of torch's f64 one. */
export function fixtureChecks(k: TrainKernels, p: Precision, rtol: number): void {
  const close = (a: ArrayLike<number>, e: ArrayLike<number>, what: string) => expectClose(a, e, rtol, what);

  it.each([[false, false], [false, true], [true, false], [true, true]])('gemm transA=%s transB=%s', (ta, tb) => {
    const f = readFixture('gemm');
    const pre = `t${+ta}${+tb}`;
    const c = p.of(f.f64(`${pre}.c`));
    k.gemm(ta, tb, f.num('m'), f.num('n'), f.num('k'), f.num('alpha'), p.of(f.f64(`${pre}.a`)), p.of(f.f64(`${pre}.b`)),
      f.num('beta'), c);
    close(c, f.f64(`${pre}.out`), 'C');
  });

  it('gemm with beta = 0 ignores NaN in C', () => {
    const f = readFixture('gemm');
    const c = p.of(f.f64('beta0.c'));
    expect(Number.isNaN(c[0])).toBe(true);
    k.gemm(false, false, f.num('m'), f.num('n'), f.num('k'), f.num('beta0_alpha'), p.of(f.f64('beta0.a')),
      p.of(f.f64('beta0.b')), 0, c);
    close(c, f.f64('beta0.out'), 'C');
  });

  it('rmsnorm forward and backward (dweight accumulates)', () => {
    const f = readFixture('rmsnorm');
    const [N, C] = [f.num('N'), f.num('C')];
    const [out, rstd, dx] = [p.zeros(N * C), p.zeros(N), p.zeros(N * C).fill(NaN)];
    const x = p.of(f.f64('x'));
    const w = p.of(f.f64('weight'));
    k.rmsnormForward(out, rstd, x, w, N, C, f.num('eps'));
    close(out, f.f64('out'), 'out');
    close(rstd, f.f64('rstd'), 'rstd');
    const dweight = p.zeros(C).fill(1);
    k.rmsnormBackward(dx, dweight, p.of(f.f64('dout')), x, w, rstd, N, C);
    close(dx, f.f64('dx'), 'dx');
    close(dweight, f.f64('dweight').map((g) => 1 + g), 'dweight (1 + grad)');
  });

  it('swiglu forward and backward, saturated gates included', () => {
    const f = readFixture('swiglu');
    const n = f.num('n');
    const [gate, up] = [p.of(f.f64('gate')), p.of(f.f64('up'))];
    const [out, dgate, dup] = [p.zeros(n), p.zeros(n).fill(NaN), p.zeros(n).fill(NaN)];
    k.swigluForward(out, gate, up, n);
    close(out, f.f64('out'), 'out');
    k.swigluBackward(dgate, dup, p.of(f.f64('dout')), gate, up, n);
    close(dgate, f.f64('dgate'), 'dgate');
    close(dup, f.f64('dup'), 'dup');
  });

  it.each(['rope_default', 'rope_llama3'])('%s forward and backward, also in place', (name) => {
    const f = readFixture(name);
    const [BT, heads, hd] = [f.num('BT'), f.num('heads'), f.num('hd')];
    const [cos, sin, pos] = [p.of(f.f64('cos')), p.of(f.f64('sin')), f.i32('pos')];
    const out = p.zeros(BT * heads * hd);
    k.ropeForward(out, p.of(f.f64('x')), cos, sin, pos, BT, heads, hd);
    close(out, f.f64('out'), 'out');
    const dx = p.of(f.f64('dout'));
    k.ropeBackward(dx, dx, cos, sin, pos, BT, heads, hd); // dx aliases dout
    close(dx, f.f64('dx'), 'dx (in place)');
    const y = p.of(f.f64('x'));
    k.ropeForward(y, y, cos, sin, pos, BT, heads, hd);
    close(y, f.f64('out'), 'out (in place)');
  });

  it.each(['attention_cache', 'attention_prefill'])('%s: forward (out, lse) and backward (dq, dk, dv)', (name) => {
    const f = readFixture(name);
    type Dims = [number, number, number, number, number, number];
    const d = ['B', 'T', 'S', 'nh', 'nkv', 'hd'].map((key) => f.num(key)) as Dims;
    const [B, T, S, nh, nkv, hd] = d;
    const scale = f.num('scale');
    const [q, kk, v] = [p.of(f.f64('q')), p.of(f.f64('k')), p.of(f.f64('v'))];
    const [out, lse] = [p.zeros(B * T * nh * hd), p.zeros(B * nh * T)];
    k.attentionForward(out, lse, q, kk, v, ...d, scale);
    close(out, f.f64('out'), 'out');
    close(lse, f.f64('lse'), 'lse');
    const [dq, dk, dv] = [p.zeros(q.length).fill(NaN), p.zeros(kk.length).fill(NaN), p.zeros(v.length).fill(NaN)];
    k.attentionBackward(dq, dk, dv, p.of(f.f64('dout')), q, kk, v, out, lse, B, T, S, nh, nkv, hd, scale);
    close(dq, f.f64('dq'), 'dq');
    close(dk, f.f64('dk'), 'dk');
    close(dv, f.f64('dv'), 'dv');
  });

  it('cross-entropy rows: per-row loss, the mean, and the gradient of the mean (ignore_index -100)', () => {
    const f = readFixture('cross_entropy');
    const [n, V, count] = [f.num('n'), f.num('V'), f.num('count')];
    const [loss, logits] = [p.zeros(n).fill(NaN), p.of(f.f64('logits'))];
    k.crossEntropyRows(loss, logits, f.i32('targets'), n, V, f.num('ignore_index'), 1 / count);
    close(loss, f.f64('loss_rows'), 'loss rows');
    close([Array.from(loss).reduce((s, l) => s + l, 0) / count], f.f64('loss_mean'), 'mean loss');
    close(logits, f.f64('grad'), 'gradient (in place)');
  });

  it('adamw: three steps with weight decay match torch.optim.AdamW', () => {
    const f = readFixture('adamw');
    const [n, steps] = [f.num('n'), f.num('steps')];
    const [param, m, v] = [p.of(f.f64('param0')), p.zeros(n), p.zeros(n)];
    const grads = f.f64('grads');
    const want = f.f64('params');
    for (let s = 1; s <= steps; s++) {
      k.adamwStep(param, p.of(grads.subarray((s - 1) * n, s * n)), m, v, n, f.num('lr'), f.num('beta1'), f.num('beta2'),
        f.num('eps'), f.num('weight_decay'), s);
      close(param, want.subarray((s - 1) * n, s * n), `param after step ${s}`);
    }
    close(m, f.f64('m'), 'exp_avg');
    close(v, f.f64('v'), 'exp_avg_sq');
  });
}

/** Registers small cases whose results are worked out by hand in the comments. */
export function handChecks(k: TrainKernels, p: Precision, rtol: number): void {
  const close = (a: ArrayLike<number>, e: ArrayLike<number>, what: string) => expectClose(a, e, rtol, what);

  it('gemm 2x2 by hand', () => {
    // A = [[1,2],[3,4]], B = [[5,6],[7,8]]: AB = [[19,22],[43,50]], A^T B = [[26,30],[38,44]],
    // A B^T = [[17,23],[39,53]]; with alpha 2, beta 0.5 and C = 1: 2 AB + 0.5 = [[38.5,44.5],[86.5,100.5]].
    const [a, b] = [p.of([1, 2, 3, 4]), p.of([5, 6, 7, 8])];
    const run = (ta: boolean, tb: boolean, alpha: number, beta: number): F => {
      const c = p.of([1, 1, 1, 1]);
      k.gemm(ta, tb, 2, 2, 2, alpha, a, b, beta, c);
      return c;
    };
    close(run(false, false, 2, 0.5), [38.5, 44.5, 86.5, 100.5], 'alpha AB + beta C');
    close(run(true, false, 1, 0), [26, 30, 38, 44], 'A^T B');
    close(run(false, true, 1, 0), [17, 23, 39, 53], 'A B^T');
    // k = 0: the product is empty, C = beta C
    const c = p.of([1, 2, 3, 4]);
    k.gemm(false, false, 2, 2, 0, 1, p.zeros(0), p.zeros(0), 3, c);
    close(c, [3, 6, 9, 12], 'k = 0');
  });

  it('attention over 2 tokens by hand, and the same query with a KV cache', () => {
    // hd 2, scale 1, q0 = [1,0], q1 = [0,1], k0 = [1,0], k1 = [1,1], v0 = [2,0], v1 = [0,4].
    // Query 0 sees key 0 only: out0 = v0 = [2,0], lse0 = q0.k0 = 1.
    // Query 1 sees both: s = [q1.k0, q1.k1] = [0,1], p = [1, e] / (1+e), out1 = [2/(1+e), 4e/(1+e)],
    // lse1 = log(1+e). With T = 1, S = 2 the single query sits at position 1: it gives query 1's row.
    const e = Math.E;
    const [kk, v] = [p.of([1, 0, 1, 1]), p.of([2, 0, 0, 4])];
    const [out, lse] = [p.zeros(4), p.zeros(2)];
    k.attentionForward(out, lse, p.of([1, 0, 0, 1]), kk, v, 1, 2, 2, 1, 1, 2, 1);
    close(out, [2, 0, 2 / (1 + e), (4 * e) / (1 + e)], 'out');
    close(lse, [1, Math.log(1 + e)], 'lse');
    const [out1, lse1] = [p.zeros(2), p.zeros(1)];
    k.attentionForward(out1, lse1, p.of([0, 1]), kk, v, 1, 1, 2, 1, 1, 2, 1);
    close(out1, [2 / (1 + e), (4 * e) / (1 + e)], 'out (KV cache)');
    close(lse1, [Math.log(1 + e)], 'lse (KV cache)');
  });

  it('cross-entropy by hand: uniform logits, an ignored row, a gradient scale', () => {
    // Row 0: logits [0,0], target 1: loss log 2, grad 0.5 * ([0.5,0.5] - [0,1]) = [0.25,-0.25].
    // Row 1: ignored: loss 0, grad [0,0] whatever the logits were.
    const [loss, logits] = [p.zeros(2).fill(NaN), p.of([0, 0, 7, -3])];
    k.crossEntropyRows(loss, logits, Int32Array.from([1, -100]), 2, 2, -100, 0.5);
    close(loss, [Math.LN2, 0], 'loss');
    close(logits, [0.25, -0.25, 0, 0], 'gradient');
  });

  it('adamw first step by hand: the update is lr * sign(g) (plus decay)', () => {
    // Step 1: m = (1-b1) g, v = (1-b2) g^2, so m/(1-b1) / sqrt(v/(1-b2)) = sign(g) (eps 0):
    // p = p (1 - lr wd) - lr sign(g) = 1 * (1 - 0.1 * 0.5) - 0.1 sign(g).
    const [param, m, v] = [p.of([1, 1]), p.zeros(2), p.zeros(2)];
    k.adamwStep(param, p.of([3, -0.5]), m, v, 2, 0.1, 0.9, 0.99, 0, 0.5, 1);
    close(param, [0.95 - 0.1, 0.95 + 0.1], 'param');
    close(m, [0.3, -0.05], 'm');
    close(v, [0.09, 0.0025], 'v');
  });
}

/** Both groups under one describe, for the native test. */
export function describeAllChecks(title: string, k: TrainKernels, p: Precision, rtol: number): void {
  describe(title, () => {
    fixtureChecks(k, p, rtol);
    handChecks(k, p, rtol);
  });
}
