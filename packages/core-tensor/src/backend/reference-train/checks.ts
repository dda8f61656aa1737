/**
 * Argument checks for the training kernels, one per kernel with the kernel's own signature, shared by the
 * reference kernels and the native adapter so both reject the same calls with the same messages
 * (PeftError 'E_INPUT'). They check sizes (every array has exactly the length its shape gives) and index
 * data that would otherwise be read out of bounds (RoPE positions, targets); never float values.
 */
import { PeftError } from '../../errors.js';
import type { TrainKernels } from '../train-kernels.js';
import { blockCount, checkBlocksize, checkCode256, checkCount } from '../validate.js';

type Arr = ArrayLike<number>;
export type TrainChecks = { [K in keyof TrainKernels]: (...args: Parameters<TrainKernels[K]>) => void };

function fail(op: string, message: string): never {
  throw new PeftError('E_INPUT', `${op}: ${message}`);
}

function counts(op: string, sizes: Record<string, number>): void {
  for (const [what, n] of Object.entries(sizes)) checkCount(op, what, n);
}

/** Each array must hold exactly its shape's element count (callers pass subarray views of larger buffers). */
function lengths(op: string, arrays: Record<string, [Arr, number]>): void {
  for (const [what, [arr, n]] of Object.entries(arrays)) {
    if (arr.length !== n) fail(op, `${what} has ${arr.length} elements, expected ${n}`);
  }
}

function flags(op: string, values: Record<string, boolean>): void {
  for (const [what, v] of Object.entries(values)) if (typeof v !== 'boolean') fail(op, `${what} must be a boolean`);
}

/** Quantized weights: W is [n,k] when transB, else [k,n]; A is [m,k], C is [m,n]. */
function quantGemm(op: string, transB: boolean, m: number, n: number, k: number, a: Arr, c: Arr): void {
  flags(op, { transB });
  counts(op, { m, n, k });
  lengths(op, { a: [a, m * k], c: [c, m * n] });
}

/** names: what the output and the input are called ('out'/'x' forward, 'dx'/'dout' backward). */
function rope(op: string, names: [string, string], y: Arr, x: Arr, cos: Arr, sin: Arr, pos: Int32Array,
  BT: number, heads: number, hd: number): void {
  counts(op, { BT, heads, hd });
  if (hd % 2 !== 0) fail(op, `hd must be even, got ${hd}`);
  const n = BT * heads * hd;
  lengths(op, { [names[0]]: [y, n], [names[1]]: [x, n], pos: [pos, BT] });
  const half = hd / 2;
  if (half > 0 && cos.length % half !== 0) fail(op, `cos has ${cos.length} elements, not a multiple of hd/2 = ${half}`);
  lengths(op, { sin: [sin, cos.length] });
  const maxPos = half > 0 ? cos.length / half : 0;
  for (let r = 0; r < BT; r++) {
    if (!(pos[r] >= 0 && pos[r] < maxPos)) fail(op, `pos[${r}] = ${pos[r]} is outside the tables' 0..${maxPos - 1}`);
  }
}

function attention(op: string, B: number, T: number, S: number, nh: number, nkv: number, hd: number,
  arrays: Record<string, 'q' | 'kv' | 'lse'>, given: Record<string, Arr>): void {
  counts(op, { B, T, S, nh, nkv, hd });
  if (S < T) fail(op, `S (${S}) must be >= T (${T}): the queries are the last T of the S positions`);
  if (nkv < 1 || nh % nkv !== 0) fail(op, `nh (${nh}) must be a positive multiple of nkv (${nkv})`);
  const size = { q: B * T * nh * hd, kv: B * S * nkv * hd, lse: B * nh * T };
  const want: Record<string, [Arr, number]> = {};
  for (const [what, kind] of Object.entries(arrays)) want[what] = [given[what], size[kind]];
  lengths(op, want);
}

export const trainChecks: TrainChecks = {
  gemm(transA, transB, m, n, k, _alpha, a, b, _beta, c) {
    flags('gemm', { transA, transB });
    counts('gemm', { m, n, k });
    lengths('gemm', { a: [a, m * k], b: [b, k * n], c: [c, m * n] });
  },
  gemmQuant4(transB, m, n, k, _alpha, a, packed, absmax, blocksize, type, _beta, c) {
    quantGemm('gemmQuant4', transB, m, n, k, a, c);
    checkBlocksize('gemmQuant4', blocksize);
    if (type !== 0 && type !== 1) fail('gemmQuant4', `type must be 0 (nf4) or 1 (fp4), got ${String(type)}`);
    const nk = n * k;
    lengths('gemmQuant4', { packed: [packed, Math.ceil(nk / 2)], absmax: [absmax, Math.ceil(nk / blocksize)] });
  },
  gemmInt8(transB, m, n, k, _alpha, a, cb, scb, _beta, c) {
    quantGemm('gemmInt8', transB, m, n, k, a, c);
    lengths('gemmInt8', { cb: [cb, n * k], scb: [scb, transB ? n : k] });
  },
  gemmBf16(transB, m, n, k, _alpha, a, w, _beta, c) {
    quantGemm('gemmBf16', transB, m, n, k, a, c);
    lengths('gemmBf16', { w: [w, n * k] });
  },
  rmsnormForward(out, rstd, x, weight, N, C) {
    counts('rmsnormForward', { N, C });
    lengths('rmsnormForward', { out: [out, N * C], rstd: [rstd, N], x: [x, N * C], weight: [weight, C] });
  },
  rmsnormBackward(dx, dweight, dout, x, weight, rstd, N, C) {
    counts('rmsnormBackward', { N, C });
    lengths('rmsnormBackward', {
      dx: [dx, N * C], dweight: [dweight, C], dout: [dout, N * C], x: [x, N * C], weight: [weight, C], rstd: [rstd, N],
    });
  },
  swigluForward(out, gate, up, n) {
    counts('swigluForward', { n });
    lengths('swigluForward', { out: [out, n], gate: [gate, n], up: [up, n] });
  },
  swigluBackward(dgate, dup, dout, gate, up, n) {
    counts('swigluBackward', { n });
    lengths('swigluBackward', { dgate: [dgate, n], dup: [dup, n], dout: [dout, n], gate: [gate, n], up: [up, n] });
  },
  ropeForward(out, x, cos, sin, pos, BT, heads, hd) {
    rope('ropeForward', ['out', 'x'], out, x, cos, sin, pos, BT, heads, hd);
  },
  ropeBackward(dx, dout, cos, sin, pos, BT, heads, hd) {
    rope('ropeBackward', ['dx', 'dout'], dx, dout, cos, sin, pos, BT, heads, hd);
  },
  attentionForward(out, lse, q, k, v, B, T, S, nh, nkv, hd) {
    attention('attentionForward', B, T, S, nh, nkv, hd,
      { out: 'q', lse: 'lse', q: 'q', k: 'kv', v: 'kv' }, { out, lse, q, k, v });
  },
  attentionBackward(dq, dk, dv, dout, q, k, v, out, lse, B, T, S, nh, nkv, hd) {
    attention('attentionBackward', B, T, S, nh, nkv, hd,
      { dq: 'q', dk: 'kv', dv: 'kv', dout: 'q', q: 'q', k: 'kv', v: 'kv', out: 'q', lse: 'lse' },
      { dq, dk, dv, dout, q, k, v, out, lse });
  },
  crossEntropyRows(loss, logits, targets, n, V, ignoreIndex) {
    const op = 'crossEntropyRows';
    counts(op, { n, V });
    lengths(op, { loss: [loss, n], logits: [logits, n * V], targets: [targets, n] });
    for (let i = 0; i < n; i++) {
      const t = targets[i];
      if (t !== ignoreIndex && !(t >= 0 && t < V)) {
        fail(op, `targets[${i}] = ${t} is outside 0..${V - 1} and not ${ignoreIndex}`);
      }
    }
  },
  adamwStep(param, grad, m, v, n, _lr, _b1, _b2, _eps, _wd, step) {
    counts('adamwStep', { n });
    if (!Number.isSafeInteger(step) || step < 1) {
      fail('adamwStep', `step must be an integer >= 1 (the step being taken), got ${step}`);
    }
    lengths('adamwStep', { param: [param, n], grad: [grad, n], m: [m, n], v: [v, n] });
  },
  quantizeBlockwise8(x, code, blocksize, outCodes, outAbsmax) {
    checkBlocksize('quantizeBlockwise8', blocksize);
    checkCode256('quantizeBlockwise8', code);
    lengths('quantizeBlockwise8', { outCodes: [outCodes, x.length], outAbsmax: [outAbsmax, blockCount(x.length, blocksize)] });
  },
  dequantizeBlockwise8(codes, absmax, code, blocksize, out) {
    checkBlocksize('dequantizeBlockwise8', blocksize);
    lengths('dequantizeBlockwise8', { code: [code, 256], codes: [codes, out.length], absmax: [absmax, blockCount(out.length, blocksize)] });
  },
  rsvd(u, s, vt, a, m, n, rank, oversample, powerIters, seed) {
    const op = 'rsvd';
    counts(op, { m, n, rank, oversample, powerIters });
    if (!(rank >= 1 && rank <= Math.min(m, n))) fail(op, `rank must be in 1..${Math.min(m, n)} (min(m, n)) for a [${m}, ${n}] matrix, got ${rank}`);
    if (powerIters > 64) fail(op, `powerIters must be at most 64, got ${powerIters}`);
    if (!(Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff)) fail(op, `seed must be an integer in 0..2^32-1, got ${seed}`);
    lengths(op, { a: [a, m * n], u: [u, m * rank], s: [s, rank], vt: [vt, rank * n] });
  },
};

/** Every kernel name, in the contract's order (the keys of the checks table, which the type keeps complete). */
export const TRAIN_KERNEL_NAMES = Object.keys(trainChecks) as (keyof TrainKernels)[];
