/**
 * The three PEFT methods against scripts/ref/prompt_reference.py (PEFT's encoders and causal-LM forward
 * transcribed in torch, f64): with the reference's initial parameters, the logits over the caller's tokens,
 * the loss (labels[0] scored from the last virtual token for prompt methods) and the gradient of every
 * trainable tensor (embedding, MLP, LSTM, projection) agree to 1e-4; TEXT init reproduces PEFT's rows; the
 * saved tensor is the encoder's output; greedy generation, from the PEFT-layout folder and from the
 * attached adapter, gives the reference's tokens.
 */
import { describe, expect, it } from 'vitest';
import { asF32, generateTokens, Llama, noGrad, tidy, Tokenizer } from '@peft/core-tensor';
import type { PromptAdapter } from '../src/adapter.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { attachCase, batchOf, FIXTURES, maskedRows, modelDir, readReference, relErr, resolved, ctxFor } from './helpers.js';

const CASES = ['prompt_text', 'prompt_cut', 'prompt_random', 'ptuning_mlp', 'ptuning_lstm', 'prefix', 'prefix_gqa', 'prefix_projection'];

describe.each(CASES)('%s against the PEFT transcription', (name) => {
  it('logits, loss and the gradient of every trainable tensor agree to 1e-4', async () => {
    const ref = await readReference(name);
    const { model, adapter } = await attachCase(ref);
    const ids = batchOf(ref.get('input_ids'));
    const labels = batchOf(ref.get('labels'));
    const V = model.config.vocabSize;
    const keep = maskedRows(ref.get('attention_mask').values, V);
    const logits = tidy(() => noGrad(() => model.logits(model.forward(ids).hidden).toArray()));
    expect(relErr(keep(logits), keep(ref.get('logits').values))).toBeLessThan(1e-4);
    const loss = model.loss(ids, labels);
    expect(Math.abs(loss.item() - ref.get('loss').values[0]) / ref.get('loss').values[0]).toBeLessThan(1e-4);
    loss.backward();
    loss.dispose();
    const params = adapter.parameters();
    expect(params.map(([k]) => k).sort()).toEqual([...ref.tensors.keys()].filter((k) => k.startsWith('grad.')).map((k) => k.slice(5)).sort());
    for (const [key, t] of params) expect(relErr(t.grad!.toArray(), ref.get(`grad.${key}`).values), key).toBeLessThan(1e-4);
    expect(model.namedParameters().filter(([, t]) => t.grad).map(([n]) => n)).toEqual([]); // the base stays frozen
    const { tensors } = (adapter as PromptAdapter).files();
    expect(tensors.map((t) => [t.name, t.dtype, t.shape])).toEqual([['prompt_embeddings', 'F32', ref.get('saved.prompt_embeddings').shape]]);
    const saved = asF32(tensors[0].data);
    expect(relErr(saved, ref.get('saved.prompt_embeddings').values)).toBeLessThan(1e-5);
    model.dispose();
  });

  it('greedy generation equals the reference token for token (the PEFT folder, and the attached adapter)', async () => {
    const ref = await readReference(name);
    const prompt = Array.from(ref.get('gen.prompt').values);
    const want = Array.from(ref.get('gen.tokens').values);
    const loaded = await Llama.fromFolder(modelDir(ref.model));
    const config = JSON.parse(readFileSync(join(FIXTURES, name, 'adapter', 'adapter_config.json'), 'utf8'));
    await ref.method.loadAdapter(loaded, join(FIXTURES, name, 'adapter'), config);
    expect([...generateTokens(loaded, prompt, { maxNewTokens: want.length, stopTokenIds: [] })]).toEqual(want);
    expect(loaded.virtualTokens()).toBe(ref.get('saved.prompt_embeddings').shape[0]);
    loaded.dispose();
    const { model } = await attachCase(ref);
    expect([...generateTokens(model, prompt, { maxNewTokens: want.length, stopTokenIds: [] })]).toEqual(want);
    model.dispose();
  });
});

describe('TEXT init as PEFT does it', () => {
  it.each(['prompt_text', 'prompt_cut'])('%s: the tokenizer gives the ids (BOS first), repeated or cut to N, and their embedding rows', async (name) => {
    const ref = await readReference(name);
    const tok = await Tokenizer.fromFolder(modelDir(ref.model));
    expect(tok.encode(ref.options.prompt_tuning_init_text as string)).toEqual(Array.from(ref.get('text.ids').values));
    const model = await Llama.fromFolder(modelDir(ref.model));
    const adapter = await ref.method.attach(model, await resolved(ref.method, ref.options), ctxFor(modelDir(ref.model)));
    const [[key, t]] = adapter.parameters();
    expect(Array.from(t.data)).toEqual(Array.from(ref.get(`init.${key}`).values));
    model.dispose();
  });
});
