/**
 * Reading and replacing the frozen base weight in every storage kind: the row-block reader (used by
 * DoRA's norms) gives exactly the backend's whole-tensor dequantization, also when 4-bit blocks
 * straddle rows and the matrix spans several chunks; replaceWeight stores values the way the old weight
 * was stored (same kind, same blocksize), and rowNorms equals ||W + s B A|| computed directly.
 */
import { describe, expect, it } from 'vitest';
import { frozenTensor, getBackend, Linear, replaceWeight, rowNorms, tensor, weightF32, type Tensor } from '../src/index.js';

const b = getBackend();
const values = (n: number, k = 1) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 * k) * (1 + (i % 7)));

function stored(kind: string, W: Float32Array, out: number, inF: number, bs = 64): { t: Tensor; deq: Float32Array } {
  if (kind === 'f32') return { t: tensor(W, [out, inF]), deq: W };
  if (kind === 'bf16') {
    const bits = b.f32ToBf16(W);
    return { t: frozenTensor({ kind: 'bf16', bits }, [out, inF]), deq: b.bf16ToF32(bits) };
  }
  if (kind === 'int8') {
    const q = b.quantizeInt8Rows(W, out, inF);
    return { t: frozenTensor({ kind: 'int8', ...q }, [out, inF]), deq: b.dequantizeInt8Rows(q.cb, q.scb, out, inF) };
  }
  const k = kind as 'nf4' | 'fp4';
  const q = b.quantize4bit(W, bs, k);
  return { t: frozenTensor({ kind: k, ...q, blocksize: bs }, [out, inF]), deq: b.dequantize4bit(q.packed, q.absmax, W.length, bs, k) };
}

describe.each([
  ['f32', 9, 13], ['bf16', 9, 13], ['int8', 9, 13], ['nf4', 9, 48], ['fp4', 7, 5], ['nf4', 700, 100],
])('%s [%i, %i]', (kind, out, inF) => {
  it('weightF32 (row blocks) equals the whole-tensor dequantization', () => {
    const { t, deq } = stored(kind, values(out * inF), out, inF);
    expect(weightF32(t)).toEqual(deq);
    t.dispose();
  });

  it('rowNorms = ||W + s B A|| per row', () => {
    const { t, deq } = stored(kind, values(out * inF), out, inF);
    const r = 3, s = 1.5;
    const A = values(r * inF, 2), B = values(out * r, 3);
    const got = rowNorms(t, A, B, r, s);
    for (let o = 0; o < out; o++) {
      let sum = 0;
      for (let i = 0; i < inF; i++) {
        let ba = 0;
        for (let k = 0; k < r; k++) ba += B[o * r + k] * A[k * inF + i];
        sum += (deq[o * inF + i] + s * ba) ** 2;
      }
      expect(got[o]).toBeCloseTo(Math.sqrt(sum), 9);
    }
    t.dispose();
  });

  it('replaceWeight stores new values in the same kind (re-quantized with the same blocksize)', () => {
    const { t } = stored(kind, values(out * inF), out, inF, 32);
    const lin = new Linear(t);
    const next = values(out * inF, 5);
    replaceWeight(lin, next);
    expect(lin.weight.dtype).toBe(kind);
    expect(t.isDisposed).toBe(true);
    if (kind === 'nf4' || kind === 'fp4') expect((lin.weight.frozen as { blocksize: number }).blocksize).toBe(32);
    expect(weightF32(lin.weight)).toEqual(stored(kind, next, out, inF, 32).deq);
    lin.dispose();
  });
});
