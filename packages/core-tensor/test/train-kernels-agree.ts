/**
 * Checks of an f32 TrainKernels implementation against the reference run in f64 on the same (f32-rounded)
 * inputs, over seeded random shapes: odd sizes, sizes past typical tile and block edges, GQA groups, KV
 * cache offsets, ignored targets. Also the fused-dequant GEMMs, which must be bit-identical to the same
 * implementation's gemm on the weight dequantized by the reference backend.
 */
import { it } from 'vitest';
import { referenceBackend } from '../src/backend/reference.js';
import { referenceTrainKernels as ref } from '../src/backend/reference-train/index.js';
import type { TrainKernels } from '../src/backend/train-kernels.js';
import { expectClose, expectSameBits, randn, rng } from './train-kernels-util.js';

const f32 = (x: ArrayLike<number>) => Float32Array.from(x);
const f64 = (x: ArrayLike<number>) => Float64Array.from(x);
const int = (r: () => number, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));

/** Runs `k` on f32 copies and the reference on f64 copies of the same f32 values, then compares `outs`. */
function agree(k: TrainKernels, rtol: number, what: string, inputs: ArrayLike<number>[],
  call: (kk: TrainKernels, arrays: (Float32Array | Float64Array)[]) => void, outs: number[]): void {
  const a32 = inputs.map(f32);
  const a64 = a32.map(f64);
  call(k, a32);
  call(ref, a64);
  for (const i of outs) expectClose(a32[i], a64[i], rtol, `${what}, array ${i}`);
}

export function agreementChecks(k: TrainKernels, rtol: number): void {
  it('gemm: every transpose, alpha/beta, odd and larger sizes', () => {
    const r = rng(1);
    const shapes = [[1, 1, 1], [3, 5, 7], [17, 33, 65], [67, 131, 259], [8, 64, 512], [1, 300, 9]];
    for (const [m, n, kk] of shapes) {
      for (const [ta, tb] of [[false, false], [false, true], [true, false], [true, true]]) {
        const beta = ta ? 0 : 0.5;
        const c0 = randn(r, m * n).fill(beta === 0 ? NaN : 1, 0, 1);
        agree(k, rtol, `gemm ${m}x${n}x${kk} ${ta}/${tb}`, [randn(r, m * kk), randn(r, kk * n), c0],
          (kern, [a, b, c]) => kern.gemm(ta, tb, m, n, kk, 0.75, a, b, beta, c), [2]);
      }
    }
  });

  it('rmsnorm and swiglu forward/backward', () => {
    const r = rng(2);
    for (const [N, C] of [[1, 3], [3, 7], [5, 300], [2, 1031]]) {
      const w = randn(r, C, 0.5).map((x) => 1 + x);
      agree(k, rtol, `rmsnorm ${N}x${C}`, [new Float64Array(N * C), new Float64Array(N), randn(r, N * C, 2), w,
        randn(r, N * C), new Float64Array(N * C), randn(r, C)], (kern, [out, rstd, x, wt, dout, dx, dw]) => {
        kern.rmsnormForward(out, rstd, x, wt, N, C, 1e-6);
        kern.rmsnormBackward(dx, dw, dout, x, wt, rstd, N, C);
      }, [0, 1, 5, 6]);
    }
    for (const n of [1, 7, 64, 1001]) {
      agree(k, rtol, `swiglu ${n}`, [new Float64Array(n), randn(r, n, 4), randn(r, n), randn(r, n), new Float64Array(n),
        new Float64Array(n)], (kern, [out, g, u, dout, dg, du]) => {
        kern.swigluForward(out, g, u, n);
        kern.swigluBackward(dg, du, dout, g, u, n);
      }, [0, 4, 5]);
    }
  });

  it('rope forward/backward at random positions', () => {
    const r = rng(3);
    for (const [BT, heads, hd] of [[1, 1, 2], [5, 3, 8], [9, 4, 64], [3, 2, 34]]) {
      const [maxPos, half] = [50, hd / 2];
      // default RoPE angles: position * 10000^(-2i/hd), tables [maxPos, hd/2]
      const angle = (i: number) => Math.floor(i / half) * 1e4 ** ((-2 * (i % half)) / hd);
      const ang = Array.from({ length: maxPos * half }, (_, i) => angle(i));
      const pos = Int32Array.from({ length: BT }, () => int(r, 0, maxPos - 1));
      agree(k, rtol, `rope ${BT}x${heads}x${hd}`, [new Float64Array(BT * heads * hd), randn(r, BT * heads * hd),
        ang.map(Math.cos), ang.map(Math.sin), new Float64Array(BT * heads * hd), randn(r, BT * heads * hd)],
      (kern, [out, x, cos, sin, dx, dout]) => {
        kern.ropeForward(out, x, cos, sin, pos, BT, heads, hd);
        kern.ropeBackward(dx, dout, cos, sin, pos, BT, heads, hd);
      }, [0, 4]);
    }
  });

  it('attention forward/backward: GQA, KV cache, long rows', () => {
    const r = rng(4);
    // [B, T, S, nh, nkv, hd]
    const shapes = [[1, 1, 1, 1, 1, 1], [2, 3, 5, 4, 2, 8], [1, 7, 7, 3, 1, 5], [1, 67, 67, 2, 2, 16],
      [2, 5, 90, 6, 3, 32], [1, 33, 40, 2, 1, 64]];
    for (const [B, T, S, nh, nkv, hd] of shapes) {
      const nq = B * T * nh * hd;
      const nk = B * S * nkv * hd;
      agree(k, rtol, `attention B${B} T${T} S${S} nh${nh} nkv${nkv} hd${hd}`, [new Float64Array(nq),
        new Float64Array(B * nh * T), randn(r, nq), randn(r, nk), randn(r, nk), randn(r, nq), new Float64Array(nq),
        new Float64Array(nk), new Float64Array(nk)], (kern, [out, lse, q, kk, v, dout, dq, dk, dv]) => {
        kern.attentionForward(out, lse, q, kk, v, B, T, S, nh, nkv, hd, 1 / Math.sqrt(hd));
        kern.attentionBackward(dq, dk, dv, dout, q, kk, v, out, lse, B, T, S, nh, nkv, hd, 1 / Math.sqrt(hd));
      }, [0, 1, 6, 7, 8]);
    }
  });

  it('cross-entropy rows and adamw', () => {
    const r = rng(5);
    for (const [n, V] of [[1, 1], [4, 9], [6, 1000], [3, 4099]]) {
      const targets = Int32Array.from({ length: n }, (_, i) => (i % 3 === 1 ? -100 : int(r, 0, V - 1)));
      agree(k, rtol, `cross-entropy ${n}x${V}`, [new Float64Array(n), randn(r, n * V, 3)],
        (kern, [loss, logits]) => kern.crossEntropyRows(loss, logits, targets, n, V, -100, 0.25), [0, 1]);
    }
    for (const n of [1, 17, 1000]) {
      agree(k, rtol, `adamw ${n}`, [randn(r, n), randn(r, n), new Float64Array(n), new Float64Array(n)],
        (kern, [param, grad, m, v]) => {
          for (let s = 1; s <= 3; s++) kern.adamwStep(param, grad, m, v, n, 1e-3, 0.9, 0.999, 1e-8, 0.01, s);
        }, [0, 2, 3]);
    }
  });
}

/** gemmQuant4 / gemmInt8 / gemmBf16 must equal `k.gemm` on the reference-dequantized weight, bit for bit. */
export function fusedDequantChecks(k: TrainKernels): void {
  const shapes = [[1, 3, 5], [4, 64, 64], [5, 96, 200], [33, 70, 130], [2, 256, 1024]];
  const rb = referenceBackend;

  it.each(shapes)('gemmQuant4 / gemmInt8 / gemmBf16 at m=%i n=%i k=%i: gemm on the dequantized weight', (m, n, kk) => {
    const r = rng(m * 1000 + n + kk);
    const a = f32(randn(r, m * kk));
    const w = f32(randn(r, n * kk, 0.05));
    const c0 = f32(randn(r, m * n));
    for (const transB of [true, false]) {
      const [rows, cols] = transB ? [n, kk] : [kk, n];
      const expectFused = (what: string, wd: Float32Array, fused: (c: Float32Array) => void) => {
        const [c1, c2] = [c0.slice(), c0.slice()];
        fused(c1);
        k.gemm(false, transB, m, n, kk, 0.5, a, wd, 0.25, c2);
        expectSameBits(c1, c2, `${what} transB=${transB}`);
      };
      for (const [type, bs] of [[0, 64], [1, 32], [0, 4096]] as const) {
        const q = rb.quantize4bit(w, bs, type === 0 ? 'nf4' : 'fp4');
        const wd = rb.dequantize4bit(q.packed, q.absmax, n * kk, bs, type === 0 ? 'nf4' : 'fp4');
        expectFused(`gemmQuant4 type ${type} bs ${bs}`, wd,
          (c) => k.gemmQuant4(transB, m, n, kk, 0.5, a, q.packed, q.absmax, bs, type, 0.25, c));
      }
      const q8 = rb.quantizeInt8Rows(w, rows, cols);
      expectFused('gemmInt8', rb.dequantizeInt8Rows(q8.cb, q8.scb, rows, cols),
        (c) => k.gemmInt8(transB, m, n, kk, 0.5, a, q8.cb, q8.scb, 0.25, c));
      const bf = rb.f32ToBf16(w);
      expectFused('gemmBf16', rb.bf16ToF32(bf), (c) => k.gemmBf16(transB, m, n, kk, 0.5, a, bf, 0.25, c));
    }
  });
}
