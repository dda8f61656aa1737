/**
 * The Llama-family models against transformers' forward written out in torch
 * (scripts/ref/llama_reference.py, f64 on the stored f32 weights): logits within 1e-4 and every weight
 * gradient of the mean causal-LM loss within 1e-3 (relative to the tensor's largest value), on the
 * reference kernels and on the native ones. Cases: plain llama, mistral GQA with head_dim != C/nh and
 * linear rope scaling, llama tied + attention/mlp biases, qwen2 q/k/v biases, llama3 rope scaling with
 * far positions, and an NF4 (double-quant) checkpoint against the torch model on its dequantized weights.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { noGrad } from '../src/ops/tape.js';
import { Llama } from '../src/models/llama.js';
import { ropeTables } from '../src/models/rope.js';
import { tidy } from '../src/tensor/scope.js';
import {
  batchOf, GRAD_CASES, KERNEL_SETS, kernelsOf, LLAMA_FIXTURES, readReference, relErr, type Reference,
} from './llama-fixtures.js';

const LOGITS_RTOL = 1e-4;
const GRAD_RTOL = 1e-3;

const refs = new Map<string, Reference>();
beforeAll(async () => {
  for (const c of [...GRAD_CASES, 'llama_nf4']) refs.set(c, await readReference(c));
});

describe.each(KERNEL_SETS)('$name kernels', (set) => {
  describe.skipIf(set.skip !== undefined)(set.skip ? `skipped: ${set.skip}` : 'parity with transformers', () => {
    it.each(GRAD_CASES)('%s: logits, hidden states, loss and every weight gradient', async (name) => {
      const kernels = kernelsOf(set);
      const ref = refs.get(name)!;
      const model = await Llama.fromFolder(join(LLAMA_FIXTURES, name));
      model.requiresGrad(true);
      const ids = batchOf(ref.get('input_ids'));
      const { logits, states } = tidy(() => noGrad(() => {
        const out = model.forward(ids, { kernels, outputHiddenStates: true });
        return { logits: model.logits(out.hidden, { kernels }).toArray(), states: out.hiddenStates!.map((h) => h.toArray()) };
      }));
      expect(relErr(logits, ref.get('logits').values)).toBeLessThan(LOGITS_RTOL);
      if (ref.tensors.has('hidden_states.0')) {
        expect(states.length).toBe(model.config.numLayers + 1);
        states.forEach((s, i) => expect(relErr(s, ref.get(`hidden_states.${i}`).values), `hidden_states.${i}`).toBeLessThan(LOGITS_RTOL));
      }
      const loss = model.loss(ids, batchOf(ref.get('labels')), { kernels });
      expect(Math.abs(loss.item() - ref.get('loss').values[0])).toBeLessThan(1e-5 * ref.get('loss').values[0]);
      loss.backward();
      loss.dispose();
      const params = model.namedParameters();
      const refGrads = [...ref.tensors.keys()].filter((k) => k.startsWith('grad.')).map((k) => k.slice(5)).sort();
      expect(params.map(([n]) => n).sort()).toEqual(refGrads);
      for (const [pname, p] of params) {
        expect(p.grad, pname).toBeDefined();
        expect(relErr(p.grad!.data, ref.get(`grad.${pname}`).values), pname).toBeLessThan(GRAD_RTOL);
      }
      model.dispose();
    });

    it('llama3_rope: positions far into the context (per-row offsets 5000 and 123)', async () => {
      const kernels = kernelsOf(set);
      const ref = refs.get('llama3_rope')!;
      const model = await Llama.fromFolder(join(LLAMA_FIXTURES, 'llama3_rope'));
      const logits = tidy(() => model.logits(model.forward(batchOf(ref.get('input_ids')), {
        kernels, positions: ref.get('offset.positions').values,
      }).hidden, { kernels }).toArray());
      expect(relErr(logits, ref.get('offset.logits').values)).toBeLessThan(LOGITS_RTOL);
      model.dispose();
    });

    it('llama_nf4: a packed NF4 base gives the logits of the torch model on its dequantized weights', async () => {
      const kernels = kernelsOf(set);
      const ref = refs.get('llama_nf4')!;
      const model = await Llama.fromFolder(join(LLAMA_FIXTURES, 'llama_nf4'));
      const q = model.model.layers.at(0).self_attn.q_proj.parameter('weight')!;
      expect(q.dtype).toBe('nf4');
      const logits = tidy(() => model.logits(model.forward(batchOf(ref.get('input_ids')), { kernels }).hidden, { kernels }).toArray());
      expect(relErr(logits, ref.get('logits').values)).toBeLessThan(LOGITS_RTOL);
      const loss = tidy(() => model.loss(batchOf(ref.get('input_ids')), batchOf(ref.get('labels')), { kernels }).item());
      expect(loss).toBeCloseTo(ref.get('loss').values[0], 5);
      model.dispose();
    });
  });
});

describe('rotary tables equal transformers\' f32 tables', () => {
  const models: Llama[] = [];
  afterAll(() => models.forEach((m) => m.dispose()));

  it.each([...GRAD_CASES, 'llama_nf4'])('%s: inv_freq bit for bit, cos/sin up to position 100000', async (name) => {
    const ref = refs.get(name)!;
    const model = await Llama.fromFolder(join(LLAMA_FIXTURES, name));
    models.push(model);
    expect(Array.from(model.rotary.invFreq)).toEqual(Array.from(ref.get('inv_freq').values));
    const pos = ref.get('rope.positions').values;
    const half = model.config.headDim / 2;
    const { cos, sin } = ropeTables(model.rotary.invFreq, pos[pos.length - 1] + 1);
    const rows = (t: Float32Array | Float64Array) => Array.from(pos).flatMap((p) => Array.from(t.subarray(p * half, (p + 1) * half)));
    // one f32 rounding of cos(angle) apart at most: the angle itself is the same f32 product
    expect(relErr(rows(cos.data), ref.get('rope.cos').values)).toBeLessThan(2e-7);
    expect(relErr(rows(sin.data), ref.get('rope.sin').values)).toBeLessThan(2e-7);
    cos.dispose();
    sin.dispose();
  });
});
