/**
 * LlamaConfig from config.json: transformers' defaults, rope_scaling variants (legacy "type" and
 * "rope_type"), and the configs the engine refuses (unknown rope types, non-SiLU MLPs, odd head_dim,
 * sliding windows it would ignore) with the file named.
 */
import { describe, expect, it } from 'vitest';
import { llamaConfig } from '../src/models/config.js';
import { Llama } from '../src/models/llama.js';
import { defaultInvFreq, ropeInvFreq, Rotary } from '../src/models/rope.js';
import { VarBuilder } from '../src/io/var-builder.js';

const base = {
  model_type: 'llama', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 4, vocab_size: 300,
};

describe('llamaConfig', () => {
  it('fills transformers\' defaults', () => {
    const c = llamaConfig(base);
    expect(c).toMatchObject({
      numKvHeads: 4, headDim: 8, rmsNormEps: 1e-6, ropeTheta: 10000, ropeScaling: null, maxPositionEmbeddings: 2048,
      tieEmbeddings: false, slidingWindow: null, bosTokenId: null, eosTokenIds: [],
    });
    expect(llamaConfig({ ...base, model_type: 'qwen2' }).maxPositionEmbeddings).toBe(32768);
    expect(llamaConfig({ ...base, eos_token_id: [128001, 128009], bos_token_id: 128000 })).toMatchObject({ eosTokenIds: [128001, 128009], bosTokenId: 128000 });
  });

  it('reads rope_scaling under "rope_type" or the legacy "type"', () => {
    expect(llamaConfig({ ...base, rope_scaling: { type: 'linear', factor: 4 } }).ropeScaling).toEqual({ type: 'linear', factor: 4 });
    expect(llamaConfig({ ...base, rope_scaling: { rope_type: 'default' } }).ropeScaling).toBeNull();
    const l3 = llamaConfig({ ...base, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } });
    expect(l3.ropeScaling).toEqual({ type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
  });

  it.each([
    [{ rope_scaling: { rope_type: 'yarn', factor: 4 } }, /rope_scaling type "yarn" is not supported/],
    [{ rope_scaling: { rope_type: 'llama3', factor: 8 } }, /low_freq_factor must be a positive number/],
    [{ hidden_act: 'gelu' }, /hidden_act "gelu" is not supported/],
    [{ head_dim: 7 }, /head_dim 7 must be even/],
    [{ rms_norm_eps: -1 }, /rms_norm_eps must be a positive number/],
  ])('refuses %j naming the file', (extra, pattern) => {
    expect(() => llamaConfig({ ...base, ...extra }, '/m/config.json')).toThrow(pattern);
    expect(() => llamaConfig({ ...base, ...extra }, '/m/config.json')).toThrow(/^\/m\/config\.json/);
  });

  it('keeps a sliding window only where transformers applies it', () => {
    expect(llamaConfig({ ...base, model_type: 'mistral', sliding_window: 16 }).slidingWindow).toBe(16);
    expect(llamaConfig({ ...base, model_type: 'qwen2', sliding_window: 16 }).slidingWindow).toBeNull();
    expect(llamaConfig({ ...base, model_type: 'qwen2', sliding_window: 16, use_sliding_window: true }).slidingWindow).toBe(16);
  });
});

describe('rotary tables', () => {
  it('linear scaling divides the frequencies; dynamic NTK equals the default and stops at max_position_embeddings', () => {
    const cfg = llamaConfig(base);
    const lin = ropeInvFreq({ ...cfg, ropeScaling: { type: 'linear', factor: 2 } });
    expect(Array.from(lin)).toEqual(Array.from(defaultInvFreq(10000, 8), (x) => Math.fround(x / 2)));
    const dyn = new Rotary({ ...cfg, ropeScaling: { type: 'dynamic', factor: 2 }, maxPositionEmbeddings: 100 });
    expect(Array.from(dyn.invFreq)).toEqual(Array.from(defaultInvFreq(10000, 8)));
    expect(dyn.tables(100).cos.shape).toEqual([100, 4]);
    expect(() => dyn.tables(101)).toThrow(/past max_position_embeddings \(100\)/);
    dyn.dispose();
  });

  it('grow by doubling and keep handing out the same tables until then', () => {
    const r = new Rotary(llamaConfig(base));
    const a = r.tables(10);
    expect(a.cos.shape).toEqual([64, 4]);
    expect(r.tables(64).cos).toBe(a.cos);
    const first = Array.from(a.cos.data);
    const b = r.tables(65);
    expect(b.cos.shape).toEqual([128, 4]);
    expect(Array.from(b.cos.data.subarray(0, 64 * 4))).toEqual(first);
    r.dispose();
  });

  it('a forward longer than a mistral sliding window is refused, not silently wrong', async () => {
    const cfg = llamaConfig({ ...base, model_type: 'mistral', sliding_window: 4 });
    const model = await Llama.load(VarBuilder.init(new Map(), 1), cfg);
    expect(() => model.forward(Int32Array.of(1, 2, 3, 4))).not.toThrow();
    expect(() => model.forward(Int32Array.of(1, 2, 3, 4, 5))).toThrow(/exceed sliding_window 4/);
    model.dispose();
  });
});
