/**
 * `dept` and `ntk-prefix` against their reference code (scripts/ref/dept_ntk_reference.py: DePT's
 * peft_model.py forward and ntk_glm.py's ntk_attn transcribed in torch): logits, loss, the gradients of
 * P / A / B and of every layer's k / Z, and greedy generation (from the saved folder and the attached
 * adapter); the same gradients by central differences through the whole f64 model; DePT's update only
 * at positions below max_length; the saved folders equal the reference's layout; DePT's two learning
 * rates are two optimizer groups and each moves its tensors by its own rate.
 */
import { promises as fsp, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  asF32, createRegistry, generateTokens, gradcheck, Llama, noGrad, readPeftAdapter, registerBuiltins, runTrain, tidy,
} from '@peft/core-tensor';
import { DEPT_A_KEY, DEPT_B_KEY, deptMethod, PROMPT_KEY, register } from '../src/index.js';
import { attachCase, batchOf, ctxFor, f64Twin, FIXTURES, maskedRows, modelDir, readReference, relErr, resolved, tempDir } from './helpers.js';

const work = tempDir('dept-ntk');
afterAll(() => fsp.rm(work, { recursive: true, force: true }));

describe.each(['dept', 'ntk'])('%s against its reference transcription', (name) => {
  it('logits, loss and gradients agree to 1e-4; the saved folder is the reference\'s', async () => {
    const ref = await readReference(name);
    const { model, adapter } = await attachCase(ref);
    const ids = batchOf(ref.get('input_ids'));
    const keep = maskedRows(ref.get('attention_mask').values, model.config.vocabSize);
    const logits = tidy(() => noGrad(() => model.logits(model.forward(ids).hidden).toArray()));
    expect(relErr(keep(logits), keep(ref.get('logits').values))).toBeLessThan(1e-4);
    const loss = model.loss(ids, batchOf(ref.get('labels')));
    expect(Math.abs(loss.item() / ref.get('loss').values[0] - 1)).toBeLessThan(1e-4);
    loss.backward();
    loss.dispose();
    for (const [key, t] of adapter.parameters()) expect(relErr(t.grad!.toArray(), ref.get(`grad.${key}`).values), key).toBeLessThan(1e-4);
    const out = join(work, `saved-${name}`);
    await adapter.save(out);
    const want = join(FIXTURES, name, 'adapter');
    expect(readFileSync(join(out, 'adapter_config.json'), 'utf8')).toBe(readFileSync(join(want, 'adapter_config.json'), 'utf8'));
    const [mine, theirs] = await Promise.all([out, want].map((d) => readPeftAdapter(d)));
    expect([...mine.tensors].map(([k, t]) => [k, t.shape])).toEqual([...theirs.tensors].map(([k, t]) => [k, t.shape]));
    for (const [k, t] of theirs.tensors) expect(Buffer.from(mine.tensors.get(k)!.data).equals(Buffer.from(t.data)), k).toBe(true);
    model.dispose();
  });

  it('greedy generation equals the reference (the saved folder, and the attached adapter)', async () => {
    const ref = await readReference(name);
    const prompt = Array.from(ref.get('gen.prompt').values);
    const want = Array.from(ref.get('gen.tokens').values);
    const loaded = await Llama.fromFolder(modelDir(ref.model));
    const dir = join(FIXTURES, name, 'adapter');
    await ref.method.loadAdapter(loaded, dir, JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')));
    expect([...generateTokens(loaded, prompt, { maxNewTokens: want.length, stopTokenIds: [] })]).toEqual(want);
    loaded.dispose();
    const { model } = await attachCase(ref);
    expect([...generateTokens(model, prompt, { maxNewTokens: want.length, stopTokenIds: [] })]).toEqual(want);
    model.dispose();
  });
});

/** Attaches `ref`'s method to an f64 twin with the reference's initial values. */
async function f64Case(name: string, options: Record<string, unknown> = {}) {
  const ref = await readReference(name);
  const model = await f64Twin(modelDir(ref.model));
  const adapter = await ref.method.attach(model, await resolved(ref.method, { ...ref.options, ...options }), ctxFor(modelDir(ref.model)));
  for (const [key, t] of adapter.parameters()) t.data.set(ref.get(`init.${key}`).values);
  return { ref, model, params: adapter.parameters().map(([, t]) => t) };
}

describe('gradients by central differences through the whole f64 model', () => {
  it('dept: P, A and B (inputs shorter than max_length: positions past it get no update)', async () => {
    const { model, params } = await f64Case('dept');
    const ids = Int32Array.of(1, 40, 41, 42, 30); // 5 < max_length 7
    expect(gradcheck(() => model.loss(ids, ids), params).failures).toEqual([]);
    model.dispose();
  });

  it('ntk-prefix: every layer\'s k and Z (GQA, a batch of two)', async () => {
    const { model, params } = await f64Case('ntk');
    const batch = { data: Int32Array.of(1, 40, 41, 1, 7, 8), shape: [2, 3] as [number, number] };
    expect(gradcheck(() => model.loss(batch, batch), params).failures).toEqual([]);
    model.dispose();
  });
});

describe('dept positions', () => {
  it('row t of scale A B updates the caller\'s token t below max_length, in one forward and step by step', async () => {
    const { model } = await f64Case('dept');
    const ids = Int32Array.of(1, 40, 41, 42, 30, 31, 32, 33, 34, 35); // 10 > max_length 7
    const full = tidy(() => noGrad(() => model.forward(ids).hidden.toArray()));
    const cache = model.newCache();
    const steps = tidy(() => noGrad(() => {
      const first = model.forward(ids.subarray(0, 4), { kvCache: cache }).hidden.toArray();
      const rest = Array.from(ids.subarray(4), (id) => model.forward(Int32Array.of(id), { kvCache: cache }).hidden.toArray());
      return [...first, ...rest.flat()];
    }));
    expect(relErr(steps, full)).toBeLessThan(1e-10);
    cache.dispose();
    model.dispose();
  });
});

describe('dept learning rates', () => {
  it('prompt_lr and lora_lr are two optimizer groups; one SGD step moves each tensor by its own rate', async () => {
    const registry = createRegistry();
    registerBuiltins(registry);
    register(registry);
    const dataFile = join(work, 'train.jsonl');
    await fsp.writeFile(dataFile, ['Add one: 417 => 418', 'Add one: 199 => 200'].map((text) => JSON.stringify({ text })).join('\n'));
    const dir = modelDir('llama');
    const options = { num_virtual_tokens: 3, r: 2, max_length: 32, prompt_lr: 0.3, lora_lr: 0.05 };
    const lr = 0.1;
    const method = { ...deptMethod, name: 'dept-probe', attach: async (...a: Parameters<typeof deptMethod.attach>) => {
      const adapter = await deptMethod.attach(...a);
      const groups = adapter.paramGroups!();
      expect(groups.map((g) => [g.name, g.params])).toEqual([
        ['prompt', ['prompt_encoder.default.embedding.weight']],
        ['lora', ['prompt_encoder.default.lora_embedding_A', 'prompt_encoder.default.lora_embedding_B']]]);
      expect(groups.map((g) => g.lrScale! * lr)).toEqual([expect.closeTo(0.3, 12), expect.closeTo(0.05, 12)]);
      return adapter;
    } };
    registry.method({ ...method, peftType: 'DEPT_PROBE' });
    await runTrain({ modelDir: dir, dataFile, outDir: join(work, 'run'), method: 'dept-probe', optimizer: 'sgd', steps: 1, lr,
      batchSize: 2, seqLen: 32, seed: 3, schedule: 'constant', maxGradNorm: 0, methodOptions: options }, registry);
    // the same start (seed 3) and batch through a fresh attach, for the gradients
    const model = await Llama.fromFolder(dir);
    const fresh = await deptMethod.attach(model, await resolved(deptMethod, options), ctxFor(dir, 3, lr));
    const { Tokenizer, loadDataset, batchesFor, padIdFor } = await import('@peft/core-tensor');
    const tok = await Tokenizer.fromFolder(dir);
    const data = await loadDataset(dataFile, tok, { seqLen: 32, seed: 3 });
    const b = batchesFor(data.train, { batchSize: 2, seqLen: 32, seed: 3, epoch: 0, padId: padIdFor(tok) })[0];
    const shape = [b.B, b.T] as [number, number];
    const loss = model.loss({ data: b.inputIds, shape }, { data: b.labels, shape });
    loss.backward();
    loss.dispose();
    const saved = await readPeftAdapter(join(work, 'run', 'adapter')); // the trained values, as the run saved them
    const rates = [0.3, 0.05, 0.05];
    fresh.parameters().forEach(([key, t], i) => {
      const after = asF32(saved.tensors.get([PROMPT_KEY, DEPT_A_KEY, DEPT_B_KEY][i])!.data);
      const moved = Array.from(t.data, (v, j) => (v - after[j]) / rates[i]);
      const g = t.grad!.toArray();
      if (key.endsWith('lora_embedding_A')) expect(g.every((x) => x === 0)).toBe(true); // B = 0 at the start: A has no gradient yet
      else expect(relErr(moved, g), key).toBeLessThan(1e-3);
    });
    await expect(deptMethod.attach(model, await resolved(deptMethod, options), ctxFor(dir))).rejects.toThrow(/prompt_lr needs the run's learning rate/);
    model.dispose();
  });
});
