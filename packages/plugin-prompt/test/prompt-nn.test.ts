/**
 * The pieces built from core ops, on their own: the bidirectional multi-layer LSTM, ReLU / Tanh / ELU+1 /
 * |x|, and NTK attention against its formula written out on plain arrays, each gradient-checked by central
 * differences in f64; LSTM dropout only while gradients are on. Plus the inits and options: TEXT ids cut
 * and repeated as PEFT does, SAMPLE_VOCAB rows are embedding rows, RANDOM is N(0, 1), zero prefixes, required
 * options and the refusals that name them.
 */
import { describe, expect, it } from 'vitest';
import { gradcheck, Llama, noGrad, ops, randn, resolveOptions, tidy, type Tensor } from '@peft/core-tensor';
import { prefixTuningMethod, promptTuningMethod, pTuningMethod, textInitIds, ntkAttention, deptMethod } from '../src/index.js';
import { BiLstm } from '../src/nn/lstm.js';
import { abs, eluPlusOne, ParamFactory, relu, tanh } from '../src/nn/layers.js';
import type { PromptAdapter } from '../src/adapter.js';
import { ctxFor, modelDir } from './helpers.js';

const f64 = (shape: number[], seed: number, std = 1) => randn(shape, { seed, std, dtype: 'f64', requiresGrad: true });

describe('composites (f64 gradcheck)', () => {
  it('relu, tanh, elu + 1, abs: values and gradients', () => {
    const x = f64([3, 5], 1);
    for (const [f, g] of [[relu, (v: number) => Math.max(v, 0)], [tanh, Math.tanh], [eluPlusOne, (v: number) => (v > 0 ? v + 1 : Math.exp(v))], [abs, Math.abs]] as const) {
      const y = tidy(() => noGrad(() => f(x).toArray()));
      y.forEach((v, i) => expect(v).toBeCloseTo(g(x.data[i]), 12));
      expect(gradcheck((a) => f(a), [x]).failures).toEqual([]);
    }
  });

  it('BiLstm: 2 layers, both directions, every parameter and the input', () => {
    const f = new ParamFactory(7, 'f64');
    const lstm = new BiLstm(f, 'lstm_head', 4, 3, 2, 0);
    const x = f64([5, 4], 2);
    const params = lstm.named().map(([, t]) => t);
    expect(lstm.named().map(([n, t]) => [n, t.shape]).slice(0, 8)).toEqual([
      ['lstm_head.weight_ih_l0', [12, 4]], ['lstm_head.weight_hh_l0', [12, 3]], ['lstm_head.bias_ih_l0', [12]], ['lstm_head.bias_hh_l0', [12]],
      ['lstm_head.weight_ih_l0_reverse', [12, 4]], ['lstm_head.weight_hh_l0_reverse', [12, 3]], ['lstm_head.bias_ih_l0_reverse', [12]], ['lstm_head.bias_hh_l0_reverse', [12]]]);
    expect(lstm.named()[8]).toEqual(['lstm_head.weight_ih_l1', expect.objectContaining({ shape: [12, 6] })]);
    expect(tidy(() => noGrad(() => lstm.forward(x, 0).shape))).toEqual([5, 6]);
    expect(gradcheck((a, ...p) => { void p; return lstm.forward(a, 0); }, [x, ...params]).failures).toEqual([]);
  });

  it('BiLstm dropout acts between layers while training only', () => {
    const lstm = new BiLstm(new ParamFactory(7, 'f64'), 'l', 4, 3, 2, 0.5);
    const x = f64([5, 4], 2);
    const [a, b] = [tidy(() => noGrad(() => lstm.forward(x, 0).toArray())), tidy(() => noGrad(() => lstm.forward(x, 0).toArray()))];
    expect(a).toEqual(b);
    const trained = tidy(() => lstm.forward(x, 0).toArray());
    expect(relErr2(trained, a)).toBeGreaterThan(1e-3);
  });
});

const relErr2 = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(v - b[i]))) / Math.max(...b.map(Math.abs));

/** ntk_attn of ntk_glm.py written out per (b, head, query), on plain arrays (repeated KV heads, causal). */
function ntkByHand(q: Tensor, k: Tensor, v: Tensor, phiK: Tensor, Z: Tensor): number[] {
  const [B, T, nh, hd] = q.shape;
  const [, S, nkv] = k.shape;
  const at = (t: Tensor, b: number, s: number, h: number, j: number, n: number, len: number) => t.data[((b * len + s) * n + h) * hd + j];
  const phi = (x: number) => { const y = x / hd ** 0.25; return y > 0 ? y + 1 : Math.exp(y); };
  const out: number[] = [];
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let h = 0; h < nh; h++) {
    const g = Math.floor(h / (nh / nkv));
    const vis = S - T + t;
    const w: number[] = [];
    for (let s = 0; s <= vis; s++) { let d = 0; for (let j = 0; j < hd; j++) d += at(q, b, t, h, j, nh, T) * at(k, b, s, g, j, nkv, S); w.push(Math.exp(d / Math.sqrt(hd))); }
    const p = Array.from({ length: hd }, (_, j) => phi(at(q, b, t, h, j, nh, T)));
    let den = w.reduce((a2, c) => a2 + c, 0);
    for (let j = 0; j < hd; j++) den += p[j] * Math.abs(phiK.data[h * hd + j]);
    for (let j = 0; j < hd; j++) {
      let num = 0;
      for (let s = 0; s <= vis; s++) num += w[s] * at(v, b, s, g, j, nkv, S);
      for (let m = 0; m < hd; m++) num += p[m] * Z.data[(h * hd + m) * hd + j];
      out.push(num / den);
    }
  }
  return out;
}

describe('NTK attention on the fused kernel', () => {
  it('equals ntk_attn\'s formula (GQA, a cached query block) and its gradients check', () => {
    const [q, k, v] = [f64([2, 3, 4, 4], 1), f64([2, 5, 2, 4], 2), f64([2, 5, 2, 4], 3)];
    const [phiK, Z] = [f64([4, 4], 4, 0.5), f64([4, 4, 4], 5, 0.5)];
    const got = tidy(() => noGrad(() => ntkAttention(q, k, v, phiK, Z).toArray()));
    expect(relErr2(got, ntkByHand(q, k, v, phiK, Z))).toBeLessThan(1e-12);
    expect(gradcheck((...a) => ntkAttention(a[0], a[1], a[2], a[3], a[4]), [q, k, v, phiK, Z]).failures).toEqual([]);
  });
});

describe('inits and options', () => {
  it('TEXT ids: cut to N, or repeated whole (BOS too) and cut', () => {
    expect(textInitIds([1, 5, 6], 2)).toEqual([1, 5]);
    expect(textInitIds([1, 5, 6], 3)).toEqual([1, 5, 6]);
    expect(textInitIds([1, 5, 6], 7)).toEqual([1, 5, 6, 1, 5, 6, 1]);
    expect(() => textInitIds([], 3)).toThrow(/no ids/);
  });

  it('SAMPLE_VOCAB rows are rows of the input embedding; RANDOM is N(0, 1); seeds repeat', async () => {
    const model = await Llama.fromFolder(modelDir('llama'));
    const embed = tidy(() => noGrad(() => model.embed(Int32Array.from({ length: model.config.vocabSize }, (_, i) => i)).toArray()));
    const C = model.config.hiddenSize;
    const rows = new Set(Array.from({ length: model.config.vocabSize }, (_, i) => embed.slice(i * C, (i + 1) * C).join()));
    const a = await promptTuningMethod.attach(model, resolveOptions('prompt-tuning', promptTuningMethod.options, { num_virtual_tokens: 20, prompt_tuning_init: 'SAMPLE_VOCAB' }), ctxFor(modelDir('llama')));
    const t = a.parameters()[0][1];
    for (let i = 0; i < 20; i++) expect(rows.has(Array.from(t.data.slice(i * C, (i + 1) * C)).join())).toBe(true);
    model.dispose();
    const m2 = await Llama.fromFolder(modelDir('llama'));
    const r = await promptTuningMethod.attach(m2, resolveOptions('prompt-tuning', promptTuningMethod.options, { num_virtual_tokens: 64 }), ctxFor(modelDir('llama'), 3));
    const d = Array.from(r.parameters()[0][1].data);
    const mean = d.reduce((s, x) => s + x, 0) / d.length;
    const sd = Math.sqrt(d.reduce((s, x) => s + (x - mean) ** 2, 0) / d.length);
    expect(Math.abs(mean)).toBeLessThan(0.05);
    expect(Math.abs(sd - 1)).toBeLessThan(0.05);
    m2.dispose();
  });

  it('prefix init_weights zero: zero prefix (or zero last Linear) and init_weights "zero" in the config', async () => {
    for (const projection of [false, true]) {
      const model = await Llama.fromFolder(modelDir('gqa'));
      const a = await prefixTuningMethod.attach(model, resolveOptions('prefix-tuning', prefixTuningMethod.options, { num_virtual_tokens: 2, init_weights: 'zero', prefix_projection: projection }), ctxFor(modelDir('gqa')));
      const { config, tensors } = (a as PromptAdapter).files();
      expect(config.init_weights).toBe('zero');
      expect(tensors[0].shape).toEqual([2, 2 * 2 * 16]);
      expect(Array.from(new Float32Array(tensors[0].data.buffer, tensors[0].data.byteOffset, 64)).every((x) => x === 0)).toBe(true);
      model.dispose();
    }
  });

  it('refusals name the option', async () => {
    const model = await Llama.fromFolder(modelDir('llama'));
    const ctx = ctxFor(modelDir('llama'));
    await expect(promptTuningMethod.attach(model, resolveOptions('prompt-tuning', promptTuningMethod.options, {}), ctx)).rejects.toThrow(/prompt-tuning: num_virtual_tokens is required/);
    await expect(promptTuningMethod.attach(model, resolveOptions('prompt-tuning', promptTuningMethod.options, { num_virtual_tokens: 4, prompt_tuning_init: 'TEXT' }), ctx)).rejects.toThrow(/TEXT needs prompt_tuning_init_text/);
    expect(() => resolveOptions('p-tuning', pTuningMethod.options, { num_virtual_tokens: 4, encoder_reparameterization_type: 'GRU' })).toThrow(/expected MLP\|LSTM/);
    expect(() => resolveOptions('dept', deptMethod.options, { num_virtual_tokens: 4, r: 0 })).toThrow(/"r"/);
    await promptTuningMethod.attach(model, resolveOptions('prompt-tuning', promptTuningMethod.options, { num_virtual_tokens: 2 }), ctx);
    await expect(prefixTuningMethod.attach(model, resolveOptions('prefix-tuning', prefixTuningMethod.options, { num_virtual_tokens: 2 }), ctx)).rejects.toThrow(/already runs prompt-tuning's hooks/);
    model.dispose();
  });
});
