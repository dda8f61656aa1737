/**
 * LoraLinear on its own: gradients by finite differences (f64 gradcheck) for LoRA (x, A, B, bias)
 * and DoRA (x, magnitude; A/B get no gradient through the detached norm, so they are checked against
 * torch in lora-parity instead); dropout as PEFT applies it (LoRA branch only, training only, seeded
 * per step and module; DoRA recomputes its base term on the dropped input, without bias), worked by
 * hand with plain loops.
 */
import { describe, expect, it } from 'vitest';
import { gradcheck, Linear, noGrad, ops, tensor, tidy } from '@peft/core-tensor';
import { dropoutSeedOf, LoraLinear } from '../src/layer.js';

const OUT = 5, IN = 6, R = 3, N = 4;
const vals = (n: number, k: number) => Array.from({ length: n }, (_, i) => Math.sin(k * 1.7 + i * 0.9) * 0.5);

function layer(dtype: 'f32' | 'f64', opts: { dora?: boolean; dropout?: number; grads?: boolean } = {}): LoraLinear {
  const g = opts.grads ?? true;
  const base = new Linear(tensor(vals(OUT * IN, 1), [OUT, IN], { dtype }), tensor(vals(OUT, 2), [OUT], { dtype, requiresGrad: g }));
  const A = tensor(vals(R * IN, 3), [R, IN], { dtype, requiresGrad: g });
  const B = tensor(vals(OUT * R, 4), [OUT, R], { dtype, requiresGrad: g });
  const m = opts.dora ? tensor(vals(OUT, 5).map((v) => 1.5 + v), [OUT], { dtype, requiresGrad: true }) : undefined;
  return new LoraLinear(base, { module: 'm', index: 3, r: R, alpha: 6, scale: 2, dropout: opts.dropout ?? 0 }, A, B, m);
}

describe('gradients (f64 finite differences)', () => {
  it('LoRA: d/dx, d/dA, d/dB, d/dbias', () => {
    const l = layer('f64');
    const x = tensor(vals(N * IN, 6), [N, IN], { dtype: 'f64', requiresGrad: true });
    const res = gradcheck(() => l.forward(x), [x, l.lora_A, l.lora_B, l.base_layer.bias!]);
    expect(res.failures).toEqual([]);
    expect(res.ok).toBe(true);
  });

  it('DoRA: d/dx and d/dmagnitude (the row norm is a constant)', () => {
    const l = layer('f64', { dora: true });
    l.lora_A.requiresGrad = false;
    l.lora_B.requiresGrad = false;
    const x = tensor(vals(N * IN, 7), [N, IN], { dtype: 'f64', requiresGrad: true });
    const res = gradcheck(() => l.forward(x), [x, l.magnitude!, l.base_layer.bias!]);
    expect(res.failures).toEqual([]);
  });
});

/** y[n, o] = Σ_i x[n, i] W[o, i] (+ b[o]) in f64. */
function mm(x: ArrayLike<number>, w: ArrayLike<number>, n: number, o: number, i: number, b?: ArrayLike<number>): Float64Array {
  const y = new Float64Array(n * o);
  for (let a = 0; a < n; a++) for (let c = 0; c < o; c++) {
    let s = b ? b[c] : 0;
    for (let k = 0; k < i; k++) s += x[a * i + k] * w[c * i + k];
    y[a * o + c] = s;
  }
  return y;
}

describe('dropout (PEFT: only the LoRA branch, only in training)', () => {
  const x = () => tensor(vals(N * IN, 8), [N, IN]);
  const run = (l: LoraLinear, seed?: number) => tidy(() => Float64Array.from(l.forward(x(), { dropoutSeed: seed }).data));
  const mask = (seed: number) => tidy(() => Float64Array.from(ops.dropout(x(), 0.5, { seed: dropoutSeedOf(seed, 3) }).data));

  it('LoRA: y = base(x) + s·B·A·dropout(x), the mask seeded by (step seed, module index)', () => {
    const l = layer('f32', { dropout: 0.5, grads: false });
    const xd = mask(7);
    expect(xd.some((v) => v === 0)).toBe(true);
    const base = mm(x().data, l.base_layer.weight.data, N, OUT, IN, l.base_layer.bias!.data);
    const lora = mm(mm(xd, l.lora_A.data, N, R, IN), l.lora_B.data, N, OUT, R);
    const want = base.map((v, i) => v + 2 * lora[i]);
    const got = run(l, 7);
    got.forEach((v, i) => expect(v).toBeCloseTo(want[i], 5));
    expect(run(l, 7)).toEqual(got);
    expect(run(l, 8)).not.toEqual(got);
    // off in eval mode and under noGrad (evaluation / generation)
    const plain = mm(mm(x().data, l.lora_A.data, N, R, IN), l.lora_B.data, N, OUT, R);
    noGrad(() => run(l, 7)).forEach((v, i) => expect(v).toBeCloseTo(base[i] + 2 * plain[i], 5));
    l.eval();
    run(l, 7).forEach((v, i) => expect(v).toBeCloseTo(base[i] + 2 * plain[i], 5));
  });

  it('DoRA with dropout: base term recomputed on the dropped input without bias (DoraLinearVariant.forward)', () => {
    const l = layer('f32', { dora: true, dropout: 0.5, grads: false });
    const xd = mask(11);
    const W = l.base_layer.weight.data, A = l.lora_A.data, B = l.lora_B.data, m = l.magnitude!.data;
    const ba = (o: number, i: number) => Array.from({ length: R }, (_, k) => B[o * R + k] * A[k * IN + i]).reduce((p, q) => p + q, 0);
    const norm = Array.from({ length: OUT }, (_, o) => Math.hypot(...Array.from({ length: IN }, (_, i) => W[o * IN + i] + 2 * ba(o, i))));
    const mns = norm.map((nv, o) => m[o] / nv);
    const base = mm(x().data, W, N, OUT, IN, l.base_layer.bias!.data);
    const baseD = mm(xd, W, N, OUT, IN);
    const lora = mm(mm(xd, A, N, R, IN), B, N, OUT, R);
    const got = run(l, 11);
    got.forEach((v, i) => {
      const o = i % OUT;
      expect(v).toBeCloseTo(base[i] + (mns[o] - 1) * baseD[i] + mns[o] * lora[i] * 2, 5);
    });
  });
});

it('dropoutSeedOf gives distinct seeds per module and per step', () => {
  const seen = new Set<number>();
  for (let s = 0; s < 20; s++) for (let i = 0; i < 20; i++) seen.add(dropoutSeedOf(s, i));
  expect(seen.size).toBe(400);
});
