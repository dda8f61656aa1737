/**
 * Model hooks (models/hooks.ts) against independent computations on an unhooked twin of the same model:
 * virtual tokens == forwardEmbeds on the concatenated embeddings at positions 0..P+T-1, and the loss ==
 * the twin's loss with PEFT's N x -100 label padding; a prefix == a KV cache filled by hand (MHA and
 * GQA); gradients of virtual tokens and prefixes by finite differences through the whole f64 model;
 * a side head == its function on the twin's hidden states, with no backbone tape or gradient; the
 * install rules (one method, checked hooks, disposed with the model).
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { gradcheck } from '../src/autograd/gradcheck.js';
import type { Node } from '../src/ops/node.js';
import { noGrad } from '../src/ops/tape.js';
import type { ModelHooks } from '../src/models/hooks.js';
import { Llama } from '../src/models/llama.js';
import { concat } from '../src/ops/movement.js';
import { copyOf, tensor, zeros } from '../src/tensor/create.js';
import { tidy } from '../src/tensor/scope.js';
import { memoryStats, type Storage } from '../src/tensor/storage.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { f64Twin, prefixHook, promptHook, range, repeatBatch, sideHead, sideHeadByHand } from './hooks-helpers.js';
import { KERNEL_SETS, kernelsOf, LLAMA_FIXTURES, relErr } from './llama-fixtures.js';

const dirOf = (c: string) => join(LLAMA_FIXTURES, c);
/** A [2, 5] batch (rows differ) and its labels as {"text"} rows have them: labels[0] is scored data, not -100. */
const ids = { data: Int32Array.of(1, 40, 41, 42, 30, 1, 9, 9, 12, 25), shape: [2, 5] as [number, number] };
const values = (f: () => Tensor) => tidy(() => noGrad(() => f().toArray()));

describe.each(KERNEL_SETS)('inputs hook ($name kernels)', (set) => {
  it.skipIf(set.skip !== undefined)('outputs cover the caller\'s T and equal forwardEmbeds on [virtual; embeds] at 0..P+T-1', async () => {
    const kernels = kernelsOf(set);
    const [model, twin] = [await Llama.fromFolder(dirOf('llama')), await Llama.fromFolder(dirOf('llama'))];
    const P = 3;
    const { hooks, tokens } = promptHook(P, 32);
    model.setHooks(hooks);
    const got = tidy(() => noGrad(() => {
      const o = model.forward(ids, { kernels, outputHiddenStates: true });
      return { shapes: [o.hidden.shape, ...o.hiddenStates!.map((s) => s.shape)], all: [o.hidden, ...o.hiddenStates!].map((t) => t.toArray()) };
    }));
    expect(got.shapes).toEqual(new Array(4).fill([2, 5, 32]));
    const want = tidy(() => noGrad(() => {
      const x = concat([repeatBatch(tokens.reshape([1, P, 32]), 2), twin.embed(ids)], 1);
      const o = twin.forwardEmbeds(x, { kernels, positions: range(P + 5), outputHiddenStates: true });
      return [o.hidden, ...o.hiddenStates!].map((t) => t.slice(1, P, P + 5).toArray());
    }));
    got.all.forEach((g, i) => expect(relErr(g, want[i]), `output ${i}`).toBeLessThan(1e-5));
    const plain = values(() => twin.forward(ids, { kernels }).hidden);
    expect(relErr(got.all[0], plain)).toBeGreaterThan(1e-2); // the virtual tokens are attended to
    expect(relErr(values(() => model.forward(ids, { kernels, positions: range(5) }).hidden), got.all[0])).toBeLessThan(1e-6);
    model.dispose();
    twin.dispose();
  });

  it.skipIf(set.skip !== undefined)('loss() also scores the last virtual token\'s prediction of labels[0], as PEFT\'s -100 padding does', async () => {
    const kernels = kernelsOf(set);
    const [model, twin] = [await Llama.fromFolder(dirOf('llama')), await Llama.fromFolder(dirOf('llama'))];
    const P = 2;
    const { hooks, tokens } = promptHook(P, 32);
    model.setHooks(hooks);
    const got = tidy(() => noGrad(() => model.loss(ids, ids, { kernels }).item()));
    const [peft, withoutFirst] = tidy(() => noGrad(() => {
      const full = twin.forwardEmbeds(concat([repeatBatch(tokens.reshape([1, P, 32]), 2), twin.embed(ids)], 1), { kernels }).hidden;
      const padded = [0, 1].map((b) => [-100, -100, ...ids.data.subarray(b * 5, b * 5 + 5)]); // PEFT: cat(full((B, N), -100), labels)
      return [twin.lossFromHidden(full, padded, { kernels }).item(), twin.lossFromHidden(full.slice(1, P, P + 5), ids, { kernels }).item()];
    }));
    expect(got).toBeCloseTo(peft, 5);
    expect(Math.abs(peft - withoutFirst)).toBeGreaterThan(1e-3); // labels[0]'s prediction changes the mean
    model.dispose();
    twin.dispose();
  });
});

describe.each(KERNEL_SETS)('prefix hook ($name kernels)', (set) => {
  it.skipIf(set.skip !== undefined).each(['llama', 'mistral_gqa'])('%s: without a cache and through newCache() it equals a cache filled by hand', async (c) => {
    const kernels = kernelsOf(set);
    const [model, twin] = [await Llama.fromFolder(dirOf(c)), await Llama.fromFolder(dirOf(c))];
    const P = 3;
    const { hooks, kv } = prefixHook(model, P);
    model.setHooks(hooks);
    const byHand = twin.newCache();
    noGrad(() => kv.forEach((t, l) => tidy(() => byHand.append(l, copyOf(repeatBatch(t.k, 2)), copyOf(repeatBatch(t.v, 2))))));
    byHand.advance(P);
    const want = values(() => twin.forward(ids, { kernels, kvCache: byHand }).hidden);
    expect(relErr(values(() => model.forward(ids, { kernels }).hidden), want), 'no cache (training path)').toBeLessThan(1e-5);
    const cache = model.newCache();
    expect(relErr(values(() => model.forward(ids, { kernels, kvCache: cache }).hidden), want), 'newCache').toBeLessThan(1e-5);
    expect([cache.length, cache.virtual]).toEqual([P + 5, P]);
    const next = { data: Int32Array.of(7, 8), shape: [2, 1] as [number, number] };
    const step = values(() => model.forward(next, { kernels, kvCache: cache }).hidden);
    expect(relErr(step, values(() => twin.forward(next, { kernels, kvCache: byHand }).hidden)), 'next step').toBeLessThan(1e-5);
    expect(relErr(want, values(() => twin.forward(ids, { kernels }).hidden))).toBeGreaterThan(1e-2); // the prefix matters
    for (const x of [cache, byHand, model, twin]) x.dispose();
  });

  it.skipIf(set.skip !== undefined)('prefix and virtual tokens together: prefix at 0..Pk-1, virtual tokens next, the caller\'s tokens after', async () => {
    const kernels = kernelsOf(set);
    const [model, twin] = [await Llama.fromFolder(dirOf('mistral_gqa')), await Llama.fromFolder(dirOf('mistral_gqa'))];
    const pre = prefixHook(model, 2);
    const prompt = promptHook(3, 32);
    model.setHooks({ method: 'both', prefix: pre.hooks.prefix, inputs: prompt.hooks.inputs });
    expect(model.virtualTokens()).toBe(5);
    const byHand = twin.newCache();
    noGrad(() => pre.kv.forEach((t, l) => tidy(() => byHand.append(l, copyOf(repeatBatch(t.k, 2)), copyOf(repeatBatch(t.v, 2))))));
    byHand.advance(2);
    const want = values(() => twin.forwardEmbeds(concat([repeatBatch(prompt.tokens.reshape([1, 3, 32]), 2), twin.embed(ids)], 1),
      { kernels, kvCache: byHand }).hidden.slice(1, 3, 8));
    expect(relErr(values(() => model.forward(ids, { kernels }).hidden), want)).toBeLessThan(1e-5);
    const cache = model.newCache();
    expect(relErr(values(() => model.forward(ids, { kernels, kvCache: cache }).hidden), want)).toBeLessThan(1e-5);
    expect([cache.length, cache.virtual]).toEqual([10, 5]);
    expect(prompt.calls).toEqual([0, 0]); // past = the caller's tokens before these
    expect(relErr(values(() => model.forward(ids, { kernels, positions: range(5) }).hidden), want), 'caller positions').toBeLessThan(1e-5);
    for (const x of [cache, byHand, model, twin]) x.dispose();
    pre.hooks.dispose!();
    prompt.hooks.dispose!();
  });
});

describe('gradients through the whole model (f64, central differences)', () => {
  it('virtual tokens', async () => {
    const model = await f64Twin(dirOf('llama'));
    const { hooks, tokens } = promptHook(2, 32, { dtype: 'f64', trainable: true });
    model.setHooks(hooks);
    const r = gradcheck(() => model.loss(Int32Array.of(1, 40, 41), Int32Array.of(1, 40, 41)), [tokens]);
    expect(r.failures).toEqual([]);
    model.dispose();
  });

  it('prefix keys and values of every layer (GQA, a batch of two)', async () => {
    const model = await f64Twin(dirOf('mistral_gqa'));
    const { hooks, kv } = prefixHook(model, 2, { dtype: 'f64', trainable: true });
    model.setHooks(hooks);
    const batch = { data: Int32Array.of(1, 40, 41, 1, 7, 8), shape: [2, 3] as [number, number] };
    const r = gradcheck(() => model.loss(batch, batch), kv.flatMap((t) => [t.k, t.v]));
    expect(r.failures).toEqual([]);
    model.dispose();
  });
});

/** Every node reachable from t's, and the storages they saved. */
function graphOf(t: Tensor): { ops: Set<string>; saved: Set<Storage> } {
  const ops = new Set<string>();
  const saved = new Set<Storage>();
  const seen = new Set<Node>();
  const stack = t.node ? [t.node] : [];
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (seen.has(n)) continue;
    seen.add(n);
    ops.add(n.op);
    for (const s of n.saved) saved.add(s.storage);
    for (const x of n.inputs) if (x.node) stack.push(x.node);
  }
  return { ops, saved };
}

describe('head hook', () => {
  it('the head reads the backbone\'s states (no tape, no grad) and its output is what the LM head reads', async () => {
    const [model, twin] = [await Llama.fromFolder(dirOf('llama')), await Llama.fromFolder(dirOf('llama'))];
    model.model.requiresGrad(true); // a trainable backbone still runs under noGrad when the head says it is frozen
    const { hooks, W, seen } = sideHead(32, { trainable: true });
    model.setHooks(hooks);
    const got = values(() => model.forward(ids).hidden);
    const states = tidy(() => noGrad(() => twin.forward(ids, { outputHiddenStates: true }).hiddenStates!.map((s) => Float32Array.from(s.data))));
    expect(relErr(got, sideHeadByHand(states, W.data, 2, 5, 32))).toBeLessThan(1e-5);
    expect(seen[0].states.length).toBe(model.config.numLayers + 1);
    expect(Array.from(seen[0].opts.positions)).toEqual([...range(5), ...range(5)]);
    const loss = tidy(() => noGrad(() => model.loss(ids, ids).item()));
    expect(loss).toBeCloseTo(tidy(() => twin.lossFromHidden(tensor(got, [2, 5, 32]), ids).item()), 5);
    model.dispose();
    twin.dispose();
  });

  it('a step with a frozen backbone: only the head\'s tensors are live when backward starts; no backbone gradient', async () => {
    const model = await Llama.fromFolder(dirOf('llama'));
    model.model.requiresGrad(true); // the backbone (embeddings, layers, norm) trainable: the frozen head still keeps it off the tape
    const { hooks, W, seen } = sideHead(32, { trainable: true });
    model.setHooks(hooks);
    tidy(() => model.loss(ids, ids)).dispose(); // builds the rotary tables once
    const base = memoryStats().bytes;
    const loss = model.loss(ids, ids);
    const live = memoryStats().bytes - base;
    const { ops, saved } = graphOf(loss);
    for (const op of ['embedding', 'rmsnorm', 'rope', 'attention', 'swiglu']) expect(ops.has(op), op).toBe(false);
    let headBytes = loss.storage.bytes;
    for (const s of saved) headBytes += s.bytes;
    expect(live).toBe(headBytes);
    expect(seen.at(-1)!.states.every((s) => !s.requiresGrad && s.node === undefined && s.isDisposed)).toBe(true);
    loss.backward();
    loss.dispose();
    expect(W.grad).toBeDefined();
    expect(model.namedParameters().filter(([, p]) => p.grad).map(([n]) => n)).toEqual([]);
    model.dispose();
    const unfrozen = await Llama.fromFolder(dirOf('llama'));
    unfrozen.model.requiresGrad(true);
    unfrozen.setHooks(sideHead(32, { trainable: true, frozenBackbone: false }).hooks);
    const l2 = unfrozen.loss(ids, ids);
    expect(graphOf(l2).ops.has('attention')).toBe(true); // what the frozen run must not record
    l2.dispose();
    unfrozen.dispose();
  });
});

describe('installing hooks', () => {
  it('one method\'s hooks at a time, checked before they are installed, disposed with the model', async () => {
    const model = await Llama.fromFolder(dirOf('llama'));
    expect(model.virtualTokens()).toBe(0);
    expect(() => model.setHooks({ method: 'empty' })).toThrow(/empty: model hooks with no inputs, prefix or head/);
    const bad = { method: 'bad', inputs: { tokens: 0, forward: (x: Tensor) => x } };
    expect(() => model.setHooks(bad)).toThrow(/bad: inputs.tokens must be a positive integer, got 0/);
    const { hooks, tokens } = promptHook(4, 32);
    model.setHooks(hooks);
    expect(model.hooks).toBe(hooks);
    expect(model.virtualTokens()).toBe(4);
    const err = (() => { try { model.setHooks(prefixHook(model, 2).hooks); } catch (e) { return e; } })();
    expect(err).toMatchObject({ code: 'E_INPUT', message: expect.stringMatching(/^test-prefix cannot be applied: the model already runs test-prompt's hooks/) });
    model.dispose();
    expect(tokens.isDisposed).toBe(true);
  });

  it('scoredLabels counts what loss() scores: labels[0] too only when virtual tokens are in front', async () => {
    const model = await Llama.fromFolder(dirOf('llama'));
    const labels = { data: Int32Array.from([5, -100, 7, 8, -100, 3, 4, -100]), shape: [2, 4] as const };
    expect(model.scoredLabels(labels)).toBe(4); // past position 0: [-100, 7, 8] and [3, 4, -100]
    model.setHooks(promptHook(2, 32).hooks);
    expect(model.scoredLabels(labels)).toBe(5); // + row 0's labels[0] (5); row 1's is -100
    model.dispose();
  });

  it('a hook that breaks its contract fails at run time and leaves the cache empty', async () => {
    const model = await Llama.fromFolder(dirOf('llama'));
    const wrong: ModelHooks = { method: 'wrong', prefix: { length: 2, kv: (_l, B) => ({ k: zeros([B, 2, 4, 4]), v: zeros([B, 2, 4, 4]) }) } };
    model.setHooks(wrong);
    const cache = model.newCache();
    const err = (() => { try { tidy(() => noGrad(() => model.forward(ids, { kvCache: cache }))); } catch (e) { return e; } })();
    expect(err).toMatchObject({ code: 'E_RUNTIME', message: 'wrong: the prefix of layer 0 is f32 [2, 2, 4, 4], expected f32 [2, 2, 4, 8]' });
    expect([cache.length, cache.virtual]).toEqual([0, 0]);
    model.dispose();
  });
});
