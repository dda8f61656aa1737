/**
 * The task paths on hooked models, unchanged: generateTokens, runTrain (a registry method whose attach
 * installs the hooks), runEval and runGenerate (an applyAdapter that installs them), each against an
 * independent computation on an unhooked twin: virtual tokens concatenated by hand, a KV cache whose
 * prefix was appended by hand, the side head applied to hidden states computed separately.
 */
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { noGrad } from '../src/ops/tape.js';
import { batchesFor, loadDataset, padIdFor, type Batch } from '../src/data/index.js';
import type { ModelHooks } from '../src/models/hooks.js';
import type { KvCache } from '../src/models/kv-cache.js';
import { Llama } from '../src/models/llama.js';
import { concat } from '../src/ops/movement.js';
import type { MethodDef } from '../src/plugin/method.js';
import { createRegistry, registerBuiltins } from '../src/plugin/index.js';
import { runEval } from '../src/tasks/eval.js';
import { generateTokens } from '../src/tasks/generate.js';
import { runGenerate } from '../src/tasks/generate-run.js';
import { runTrain } from '../src/tasks/train-run.js';
import { copyOf, tensor } from '../src/tensor/create.js';
import { tidy } from '../src/tensor/scope.js';
import { memoryStats } from '../src/tensor/storage.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { Tokenizer } from '../src/tokenizer/index.js';
import { greedyByHand, prefixHook, promptHook, range, repeatBatch, sideHead, sideHeadByHand } from './hooks-helpers.js';
import { fixtureWithTokenizer, relErr } from './llama-fixtures.js';

let work: string;
let modelDir: string;
let twin: Llama;
beforeAll(async () => {
  work = await fsp.mkdtemp(join(tmpdir(), 'peft-hooks-'));
  modelDir = await fixtureWithTokenizer('llama', join(work, 'llama'));
  twin = await Llama.fromFolder(modelDir);
});
afterAll(async () => {
  twin.dispose();
  await fsp.rm(work, { recursive: true, force: true });
});

const PROMPT = [1, 40, 41, 42];
const C = 32;
/** [virtual; embeds] for the twin. */
const withVirtual = (tokens: Tensor, ids: { data: Int32Array; shape: [number, number] } | Int32Array, B = 1) =>
  concat([repeatBatch(tokens.reshape([1, tokens.shape[0], C]), B), twin.embed(ids)], 1);
/** A twin cache holding the prefix, appended by hand. */
function cacheWithPrefix(kv: { k: Tensor; v: Tensor }[], B = 1): KvCache {
  const cache = twin.newCache();
  noGrad(() => kv.forEach((t, l) => tidy(() => cache.append(l, copyOf(repeatBatch(t.k, B)), copyOf(repeatBatch(t.v, B))))));
  cache.advance(kv[0].k.shape[1]);
  return cache;
}

describe('generateTokens', () => {
  it('virtual tokens: the prefill carries them once (past 0), later steps do not', async () => {
    const model = await Llama.fromFolder(modelDir);
    const { hooks, tokens, calls } = promptHook(3, C);
    model.setHooks(hooks);
    const got = [...generateTokens(model, PROMPT, { maxNewTokens: 6, stopTokenIds: [] })];
    expect(calls).toEqual([0, 4, 5, 6, 7, 8]);
    const cache = twin.newCache();
    const want = greedyByHand(twin, cache, () => twin.forwardEmbeds(withVirtual(tokens, Int32Array.from(PROMPT)), { kvCache: cache }).hidden, 6);
    cache.dispose();
    expect(got).toEqual(want.tokens);
    expect(got).not.toEqual([...generateTokens(twin, PROMPT, { maxNewTokens: 6, stopTokenIds: [] })]);
    const before = memoryStats();
    [...generateTokens(model, PROMPT, { maxNewTokens: 3 })];
    expect(memoryStats()).toEqual(before);
    model.dispose();
  });

  it('a prefix: generation equals generation from a cache whose first step was filled by hand', async () => {
    const model = await Llama.fromFolder(modelDir);
    const { hooks, kv } = prefixHook(model, 4);
    model.setHooks(hooks);
    const got = [...generateTokens(model, PROMPT, { maxNewTokens: 6, stopTokenIds: [] })];
    const cache = cacheWithPrefix(kv);
    const want = greedyByHand(twin, cache, () => twin.forward(Int32Array.from(PROMPT), { kvCache: cache }).hidden, 6);
    cache.dispose();
    expect(got).toEqual(want.tokens);
    expect(got).not.toEqual([...generateTokens(twin, PROMPT, { maxNewTokens: 6, stopTokenIds: [] })]);
    const before = memoryStats();
    [...generateTokens(model, PROMPT, { maxNewTokens: 3 })];
    expect(memoryStats()).toEqual(before);
    model.dispose();
  });

  it('a side head keeps its state in the cache\'s slot: cached steps equal full recomputes; reset frees the slot', async () => {
    const model = await Llama.fromFolder(modelDir);
    const { hooks, slots } = sideHead(C);
    model.setHooks(hooks);
    const cache = model.newCache();
    const cached = greedyByHand(model, cache, () => model.forward(Int32Array.from(PROMPT), { kvCache: cache }).hidden, 5);
    expect(slots.length).toBe(1);
    cache.dispose();
    expect(slots[0].disposed).toBe(1);
    cached.tokens.forEach((_, s) => {
      const seq = Int32Array.from([...PROMPT, ...cached.tokens.slice(0, s)]);
      const full = tidy(() => noGrad(() => model.logits(model.forward(seq).hidden.slice(1, seq.length - 1, seq.length)).toArray()));
      expect(relErr(cached.logits[s], full), `step ${s}`).toBeLessThan(1e-5);
    });
    expect([...generateTokens(model, PROMPT, { maxNewTokens: 5, stopTokenIds: [] })]).toEqual(cached.tokens);
    model.dispose();
  });
});

/** A registry method whose attach installs `make`'s hooks and trains its tensors; save writes them as JSON. */
function hookMethod(name: string, make: (model: Llama) => { hooks: ModelHooks; params: [string, Tensor][] }): MethodDef {
  return {
    name, description: `${name} (test)`, options: {}, peftType: name.toUpperCase().replace(/-/g, '_'),
    keys: { prefix: `${name}_`, parts: { [`${name}_w`]: { saved: '.weight' } } }, // what the registry checks: a PEFT type, one key part
    attach: async (model) => {
      const { hooks, params } = make(model);
      model.setHooks(hooks);
      return {
        parameters: () => params,
        save: (dir) => fsp.writeFile(join(dir, 'hook.json'), JSON.stringify(params.map(([n, t]) => [n, t.toArray()]))),
        summary: () => ({ trainableParams: params.reduce((n, [, t]) => n + t.size, 0), modules: [] }),
      };
    },
    loadAdapter: () => Promise.reject(new Error(`${name} cannot load`)),
  };
}

describe('runTrain: one SGD step on text rows (labels[0] scored), hooks installed by the method\'s attach', () => {
  const LR = 0.5;
  let dataFile: string;
  let batch: Batch;
  beforeAll(async () => {
    dataFile = join(work, 'train.jsonl');
    await fsp.writeFile(dataFile, ['The quick brown fox', 'Hello world! How are you?'].map((text) => JSON.stringify({ text })).join('\n'));
    const tok = await Tokenizer.fromFolder(modelDir);
    const data = await loadDataset(dataFile, tok, { seqLen: 16, seed: 5 });
    batch = batchesFor(data.train, { batchSize: 2, seqLen: 16, seed: 5, epoch: 0, padId: padIdFor(tok) })[0];
    expect(batch.labels[0]).not.toBe(-100);
  });
  const ids = () => ({ data: batch.inputIds, shape: [batch.B, batch.T] as [number, number] });
  const labels = () => ({ data: batch.labels, shape: [batch.B, batch.T] as [number, number] });

  async function trainOnce(method: MethodDef) {
    const registry = createRegistry();
    registerBuiltins(registry);
    registry.method(method);
    return runTrain({
      modelDir, dataFile, outDir: join(work, `out-${method.name}`), method: method.name, optimizer: 'sgd', steps: 1, lr: LR,
      batchSize: 2, seqLen: 16, seed: 5, schedule: 'constant', maxGradNorm: 0,
    }, registry);
  }

  /** (before - after) / lr, the gradient SGD applied. */
  const applied = (before: number[], after: Tensor) => before.map((b, i) => (b - after.data[i]) / LR);

  it('virtual tokens: the loss is PEFT\'s ([virtual; embeds], labels padded with -100) and so is the gradient', async () => {
    let trained: Tensor | undefined;
    const r = await trainOnce(hookMethod('test-prompt', () => {
      const { hooks, tokens } = promptHook(3, C, { trainable: true });
      trained = tokens;
      return { hooks: { ...hooks, dispose: undefined }, params: [['prompt_embeddings', tokens]] };
    }));
    const start = promptHook(3, C, { trainable: true }).tokens; // the same seed: the values before the step
    const before = start.toArray();
    const loss = tidy(() => {
      const hidden = twin.forwardEmbeds(withVirtual(start, ids(), 2)).hidden;
      const padded = [0, 1].map((b) => [-100, -100, -100, ...batch.labels.subarray(b * batch.T, (b + 1) * batch.T)]);
      return twin.lossFromHidden(hidden, padded);
    });
    expect(r.finalLoss).toBeCloseTo(loss.item(), 5);
    loss.backward();
    expect(relErr(applied(before, trained!), start.grad!.toArray())).toBeLessThan(1e-4);
    expect(r.trainableParams).toBe(3 * C);
    loss.dispose();
    start.dispose();
    trained!.dispose();
  });

  it('a prefix: the loss equals the twin\'s through a cache filled by hand; every prefix tensor moved', async () => {
    let kv: { k: Tensor; v: Tensor }[] = [];
    const r = await trainOnce(hookMethod('test-prefix', (model) => {
      const p = prefixHook(model, 2, { trainable: true });
      kv = p.kv;
      return { hooks: { ...p.hooks, dispose: undefined }, params: p.kv.flatMap((t, l) => [[`k${l}`, t.k], [`v${l}`, t.v]] as [string, Tensor][]) };
    }));
    const start = prefixHook(twin, 2);
    const cache = cacheWithPrefix(start.kv, 2);
    expect(r.finalLoss).toBeCloseTo(tidy(() => noGrad(() => twin.loss(ids(), labels(), { kvCache: cache }).item())), 5);
    cache.dispose();
    start.kv.forEach((t, l) => {
      expect(relErr(kv[l].k.toArray(), t.k.toArray()), `k${l}`).toBeGreaterThan(1e-4);
      expect(relErr(kv[l].v.toArray(), t.v.toArray()), `v${l}`).toBeGreaterThan(1e-4);
    });
    start.hooks.dispose!();
    kv.forEach((t) => { t.k.dispose(); t.v.dispose(); });
  });

  it('a side head on a frozen backbone: loss and gradient of the head\'s function on separately computed states', async () => {
    let W: Tensor | undefined;
    const r = await trainOnce(hookMethod('test-head', () => {
      const h = sideHead(C, { trainable: true });
      W = h.W;
      return { hooks: { ...h.hooks, dispose: undefined }, params: [['W', h.W]] };
    }));
    const ref = sideHead(C, { trainable: true });
    const before = ref.W.toArray();
    const states = tidy(() => noGrad(() => twin.forward(ids(), { outputHiddenStates: true }).hiddenStates!.map((s) => Float32Array.from(s.data))));
    const byHand = sideHeadByHand(states, before, batch.B, batch.T, C);
    expect(r.finalLoss).toBeCloseTo(tidy(() => twin.lossFromHidden(tensor(byHand, [batch.B, batch.T, C]), labels()).item()), 5);
    const loss = tidy(() => {
      const s = states.map((v) => tensor(v, [batch.B, batch.T, C]));
      return twin.lossFromHidden(ref.hooks.head!.forward(s, { positions: Int32Array.from([...range(batch.T), ...range(batch.T)]) }), labels());
    });
    loss.backward();
    expect(relErr(applied(before, W!), ref.W.grad!.toArray())).toBeLessThan(1e-4);
    loss.dispose();
    ref.W.dispose();
    W!.dispose();
  });
});

describe('runEval and runGenerate with hooks installed by applyAdapter', () => {
  it('eval: loss over the completions and exact match equal the twin with the virtual tokens prepended by hand', async () => {
    const { tokens } = promptHook(3, C);
    const apply = (m: Llama) => m.setHooks({ ...promptHook(3, C).hooks }); // the same seed: the same tokens
    const tok = await Tokenizer.fromFolder(modelDir);
    const cache = twin.newCache();
    const prompt = tok.encode('The answer is');
    const greedy = greedyByHand(twin, cache, () => twin.forwardEmbeds(withVirtual(tokens, Int32Array.from(prompt)), { kvCache: cache }).hidden, 3).tokens;
    cache.dispose();
    const completion = tok.decode(greedy);
    expect(tok.encode(completion, { addSpecialTokens: false })).toEqual(greedy); // re-encodes alike, so the row is the hooked greedy continuation
    const rows = [{ prompt: 'The answer is', completion }, { prompt: 'Hello world!', completion: ' How are you today?' }];
    const file = join(work, 'eval.jsonl');
    await fsp.writeFile(file, rows.map((r) => JSON.stringify(r)).join('\n'));
    const s = await runEval({ modelDir, dataFile: file, batchSize: 2, applyAdapter: apply });
    let lossSum = 0;
    let count = 0;
    for (const r of rows) {
      const p = tok.encode(r.prompt);
      const c = tok.encode(r.completion, { addSpecialTokens: false });
      const all = Int32Array.from([...p, ...c]);
      const labels = [...new Array<number>(3 + p.length).fill(-100), ...c];
      lossSum += c.length * tidy(() => noGrad(() => twin.lossFromHidden(twin.forwardEmbeds(withVirtual(tokens, all)).hidden, [labels]).item()));
      count += c.length;
    }
    expect(s.completionTokens).toBe(count);
    expect(s.loss).toBeCloseTo(lossSum / count, 5);
    expect(s.exactMatches).toBe(1);
    tokens.dispose();
  });

  it('generate: a prefix installed by applyAdapter gives the tokens of a cache filled by hand', async () => {
    let kv: { k: Tensor; v: Tensor }[] = [];
    const r = await runGenerate({
      modelDir, prompt: 'Hello world!', maxNewTokens: 8,
      applyAdapter: (m) => { const p = prefixHook(m, 3); kv = p.kv.map((t) => ({ k: copyOf(t.k), v: copyOf(t.v) })); m.setHooks(p.hooks); },
    });
    const cache = cacheWithPrefix(kv);
    const want = greedyByHand(twin, cache, () => twin.forward(Int32Array.from(r.promptTokenIds), { kvCache: cache }).hidden, 8).tokens;
    cache.dispose();
    expect(r.tokenIds).toEqual(r.stopReason === 'stop' ? want.slice(0, r.tokenIds.length) : want);
    kv.forEach((t) => { t.k.dispose(); t.v.dispose(); });
  });
});
