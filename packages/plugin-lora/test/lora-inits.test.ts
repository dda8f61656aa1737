/**
 * The initialisations. PiSSA and OLoRA against torch (scripts/ref/lora_reference.py: torch.linalg.svd /
 * qr in f64 on the same f32 weights): factors after making signs canonical on both sides, the residual
 * base W - s B A, and loss + gradients right after init; both leave the model's output unchanged.
 * LoftQ (one iteration) against torch with bitsandbytes' NF4 (bnb_reference.py): the packed base is
 * byte-identical, L·R and the factors agree; over more iterations its error stays below plain NF4
 * quantization's and falls. Default (kaiming), gaussian and false: the distributions PEFT documents,
 * seeded. Refusals leave the model untouched.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { getBackend, Linear, Llama, PeftError, type Quant4Data } from '@peft/core-tensor';
import { attachLora } from '../src/attach.js';
import { resolveLoraOptions } from '../src/config.js';
import { loftq } from '../src/init/loftq.js';
import { LoraLinear } from '../src/layer.js';
import type { LoraAdapterState } from '../src/save.js';
import { canonicalize, ctxFor, logitsOf, lossAndBackward, MODEL_DIR, readReference, relErr, type Reference } from './helpers.js';

let model: Llama | undefined;
afterEach(() => {
  model?.dispose();
  model = undefined;
});

async function attachInit(ref: Reference, seed = 0): Promise<LoraAdapterState> {
  model = await Llama.fromFolder(MODEL_DIR);
  return (await attachLora(model, resolveLoraOptions(ref.options), ctxFor(MODEL_DIR, seed))) as LoraAdapterState;
}

const keys = (m: string) => [`base_model.model.${m}.lora_A.weight`, `base_model.model.${m}.lora_B.weight`];

function checkFactors(ref: Reference, adapter: LoraAdapterState, tol: number): void {
  for (const l of adapter.layers) {
    canonicalize(l.lora_A, l.lora_B);
    const [ka, kb] = keys(l.spec.module);
    expect(relErr(l.lora_A.data, ref.get(`init.${ka}`).values), ka).toBeLessThan(tol);
    expect(relErr(l.lora_B.data, ref.get(`init.${kb}`).values), kb).toBeLessThan(tol);
  }
}

function checkLossAndGrads(ref: Reference, adapter: LoraAdapterState): void {
  const loss = lossAndBackward(model!, ref);
  expect(Math.abs(loss - ref.get('loss').values[0])).toBeLessThan(1e-5 * ref.get('loss').values[0]);
  for (const [key, t] of adapter.parameters()) expect(relErr(t.grad!.data, ref.get(`grad.${key}`).values), key).toBeLessThan(1e-4);
}

describe.each(['pissa', 'olora'])('%s', (name) => {
  it('factors, residual base, loss and gradients equal torch', async () => {
    const ref = await readReference(name);
    const adapter = await attachInit(ref);
    checkFactors(ref, adapter, 1e-5);
    for (const l of adapter.layers) {
      expect(l.base_layer.weight.dtype).toBe('f32');
      expect(relErr(l.base_layer.weight.data, ref.get(`residual.${l.spec.module}`).values), l.spec.module).toBeLessThan(1e-6);
    }
    checkLossAndGrads(ref, adapter);
  });

  it('leaves the model output unchanged at step 0 (W_res + s B A = W)', async () => {
    const ref = await readReference(name);
    model = await Llama.fromFolder(MODEL_DIR);
    const before = logitsOf(model, ref);
    model.train();
    await attachLora(model, resolveLoraOptions(ref.options), ctxFor());
    expect(relErr(logitsOf(model, ref), before)).toBeLessThan(1e-5);
  });
});

describe('loftq', () => {
  it('one iteration: packed NF4 base byte-identical to bitsandbytes, L·R and factors equal torch', async () => {
    const ref = await readReference('loftq');
    const adapter = await attachInit(ref);
    for (const l of adapter.layers) {
      const m = l.spec.module;
      const w = l.base_layer.weight;
      expect(w.dtype).toBe('nf4');
      const d = w.frozen as Quant4Data;
      expect(d.blocksize).toBe(64);
      expect(Buffer.from(d.packed).equals(Buffer.from(ref.get(`loftq.${m}.packed`).values as Uint8Array)), m).toBe(true);
      expect([...d.absmax]).toEqual([...ref.get(`loftq.${m}.absmax`).values]);
      const [r, inF] = l.lora_A.shape;
      const lr = new Float32Array(l.outFeatures * inF);
      for (let i = 0; i < l.outFeatures; i++) {
        for (let j = 0; j < inF; j++) {
          let s = 0;
          for (let k = 0; k < r; k++) s += l.lora_B.data[i * r + k] * l.lora_A.data[k * inF + j];
          lr[i * inF + j] = s;
        }
      }
      expect(relErr(lr, ref.get(`loftq.${m}.lr`).values), m).toBeLessThan(1e-5);
    }
    checkFactors(ref, adapter, 1e-5);
    checkLossAndGrads(ref, adapter);
  });

  it('beats plain NF4 quantization and its error falls with iterations', async () => {
    model = await Llama.fromFolder(MODEL_DIR);
    for (const m of ['model.layers.0.mlp.gate_proj', 'model.layers.1.self_attn.q_proj', 'model.layers.0.mlp.down_proj']) {
      const w = (model.getModule(m) as Linear).weight;
      const W = Float32Array.from(w.data);
      const [out, inF] = w.shape;
      const b = getBackend();
      const q = b.quantize4bit(W, 64, 'nf4');
      const deq = b.dequantize4bit(q.packed, q.absmax, W.length, 64, 'nf4');
      const plain = Math.sqrt(W.reduce((s, v, i) => s + (v - deq[i]) ** 2, 0));
      const errs: number[] = [];
      loftq(W, out, inF, 4, 4, (_i, s) => errs.push(s.error));
      expect(errs[0], m).toBeLessThan(plain);
      for (let i = 1; i < errs.length; i++) expect(errs[i], `${m} iteration ${i + 1}`).toBeLessThan(errs[i - 1]);
    }
  });

  it('refuses a base that is already quantized, leaving the model as it was', async () => {
    const ref = await readReference('loftq');
    model = await Llama.fromFolder(MODEL_DIR);
    const q = model.getModule('model.layers.0.self_attn.q_proj') as Linear;
    const b = getBackend();
    const qq = b.quantize4bit(Float32Array.from(q.weight.data), 64, 'nf4');
    const { frozenTensor } = await import('@peft/core-tensor');
    q.setParameter('weight', frozenTensor({ kind: 'nf4', ...qq, blocksize: 64 }, q.weight.shape)).dispose();
    const e = await attachLora(model, resolveLoraOptions(ref.options), ctxFor()).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(PeftError);
    expect((e as PeftError).message).toMatch(/loftq .*full-precision.*q_proj is nf4/);
    expect(model.namedModules().some(([, m]) => m instanceof LoraLinear)).toBe(false);
    expect(model.parameters({ trainable: true }).length).toBe(0);
  });
});

describe('data-free inits', () => {
  const base = { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'gate_proj'] };
  const stats = (v: ArrayLike<number>) => {
    let m = 0, s = 0;
    for (let i = 0; i < v.length; i++) m += v[i] / v.length;
    for (let i = 0; i < v.length; i++) s += (v[i] - m) ** 2 / v.length;
    return { mean: m, std: Math.sqrt(s), max: Math.max(...Array.from(v, Math.abs)) };
  };
  async function attached(extra: Record<string, unknown>, seed = 0): Promise<LoraAdapterState> {
    model?.dispose();
    model = await Llama.fromFolder(MODEL_DIR);
    return (await attachLora(model, resolveLoraOptions({ ...base, ...extra }), ctxFor(MODEL_DIR, seed))) as LoraAdapterState;
  }

  it('default: A ~ U(±1/sqrt(in)) (kaiming_uniform a=sqrt 5), B = 0; seeded per module', async () => {
    const a = await attached({});
    for (const l of a.layers) {
      const bound = 1 / Math.sqrt(l.inFeatures);
      const s = stats(l.lora_A.data);
      expect(s.max).toBeLessThanOrEqual(bound);
      expect(s.max).toBeGreaterThan(0.95 * bound);
      expect(Math.abs(s.std - bound / Math.sqrt(3))).toBeLessThan(0.1 * bound); // U(-b, b) has std b/sqrt 3
      expect(l.lora_B.data.every((v) => v === 0)).toBe(true);
    }
    const [l0, l1] = a.layers;
    expect(l0.lora_A.data.slice(0, 8)).not.toEqual(l1.lora_A.data.slice(0, 8));
    const again = Float32Array.from(l0.lora_A.data);
    expect(Float32Array.from((await attached({})).layers[0].lora_A.data)).toEqual(again);
    expect(Float32Array.from((await attached({}, 1)).layers[0].lora_A.data)).not.toEqual(again);
  });

  it('gaussian: A ~ N(0, std 1/r), B = 0', async () => {
    const a = await attached({ init_lora_weights: 'gaussian', r: 2 });
    const all = a.layers.flatMap((l) => Array.from(l.lora_A.data));
    const s = stats(all);
    expect(Math.abs(s.mean)).toBeLessThan(0.05);
    expect(Math.abs(s.std - 0.5)).toBeLessThan(0.05);
    for (const l of a.layers) expect(l.lora_B.data.every((v) => v === 0)).toBe(true);
  });

  it('false: B is random too, U(±1/sqrt(r)) (nn.Linear default), so the adapter does not start at zero', async () => {
    const a = await attached({ init_lora_weights: false });
    for (const l of a.layers) {
      const s = stats(l.lora_B.data);
      expect(s.max).toBeLessThanOrEqual(0.5);
      expect(s.max).toBeGreaterThan(0.4);
    }
  });

  it('pissa_niter_K is accepted (exact SVD) and saved as given; r > min(out, in) is refused before any change', async () => {
    const a = await attached({ init_lora_weights: 'pissa_niter_4' });
    expect(a.settings.initValue).toBe('pissa_niter_4');
    model?.dispose();
    model = await Llama.fromFolder(MODEL_DIR);
    const e = await attachLora(model, resolveLoraOptions({ ...base, r: 33, init_lora_weights: 'olora' }), ctxFor()).catch((x: unknown) => x);
    expect((e as PeftError).code).toBe('E_INPUT');
    expect((e as PeftError).message).toMatch(/olora needs r <= min\(out, in\).*q_proj \[32, 32\] has r = 33/);
    expect(model.namedModules().some(([, m]) => m instanceof LoraLinear)).toBe(false);
  });

  it('pissa on an NF4 base re-quantizes the residual (PEFT refuses; we allow it): the base stays nf4', async () => {
    model = await Llama.fromFolder(MODEL_DIR);
    const q = model.getModule('model.layers.0.self_attn.q_proj') as Linear;
    const W = Float32Array.from(q.weight.data);
    const b = getBackend();
    const { frozenTensor } = await import('@peft/core-tensor');
    q.setParameter('weight', frozenTensor({ kind: 'nf4', ...b.quantize4bit(W, 64, 'nf4'), blocksize: 64 }, q.weight.shape)).dispose();
    const a = (await attachLora(model, resolveLoraOptions({ r: 4, lora_alpha: 8, target_modules: ['model.layers.0.self_attn.q_proj'], init_lora_weights: 'pissa' }), ctxFor())) as LoraAdapterState;
    const l = a.layers[0];
    expect(l.base_layer.weight.dtype).toBe('nf4');
    // the principal part moved into the adapter: the re-quantized residual has a smaller absmax than W
    const d = l.base_layer.weight.frozen as Quant4Data;
    expect(Math.max(...d.absmax)).toBeLessThan(Math.max(...W.map(Math.abs)));
  });
});
