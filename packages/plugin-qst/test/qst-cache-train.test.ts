/**
 * Training with cache_features (QST, maxpool and adapter downsamples; LST with avgpool): a batch's loss is
 * the same bit for bit whether its features come from the backbone (first sight) or the cache; the
 * backbone does not run for a batch whose rows are all cached; over three epochs of SGD on shuffled,
 * padded batches the losses equal the uncached run's within the bf16 rounding of the features (stated
 * tolerance: 2e-3 relative per step); and a cache that cannot fit in RAM + the disk under OUT is refused
 * (exit 2) before anything is written.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { noGrad, PeftError, tidy, type AttachedAdapter, type Linear, type Llama } from '@peft/core-tensor';
import { FEATURE_FILE } from '../src/attach.js';
import { attachCase, readReference, tempDir, type CaseName } from './helpers.js';

let models: Llama[] = [];
afterEach(() => {
  for (const m of models) m.dispose();
  models = [];
});

/** Six rows of 3..6 tokens; an epoch's order; batches of two right-padded with 0 (labels -100 there). */
const ROWS = [[1, 20, 21, 22], [1, 30, 31], [1, 40, 41, 42, 43, 44], [1, 50, 51, 52, 53], [1, 60, 61], [1, 70, 71, 72, 73, 74]];
const ORDERS = [[0, 1, 2, 3, 4, 5], [3, 0, 5, 2, 1, 4], [3, 0, 5, 2, 1, 4]];

function batches(order: number[]) {
  const out = [];
  for (let i = 0; i < order.length; i += 2) {
    const rows = [ROWS[order[i]], ROWS[order[i + 1]]];
    const T = Math.max(...rows.map((r) => r.length));
    const ids = new Int32Array(2 * T);
    const labels = new Int32Array(2 * T).fill(-100);
    rows.forEach((r, b) => {
      ids.set(r, b * T);
      labels.set(r, b * T);
    });
    out.push({ ids: { data: ids, shape: [2, T] as [number, number] }, labels: { data: labels, shape: [2, T] as [number, number] } });
  }
  return out;
}

/** Counts the backbone's layer-0 q_proj forwards (what a skipped backbone never calls). */
function countBackbone(model: Llama): { calls: number } {
  const q = model.model.layers.at(0).self_attn.q_proj as Linear;
  const c = { calls: 0 };
  const f = q.forward.bind(q);
  q.forward = (x, o) => {
    c.calls++;
    return f(x, o);
  };
  return c;
}

function sgdEpochs(model: Llama, adapter: AttachedAdapter, counter: { calls: number }, lr: number): { losses: number[]; calls: number[] } {
  const losses: number[] = [];
  const calls: number[] = [];
  for (const order of ORDERS) {
    const before = counter.calls;
    for (const b of batches(order)) {
      const loss = model.loss(b.ids, b.labels);
      losses.push(loss.item());
      loss.backward();
      loss.dispose();
      for (const [, t] of adapter.parameters()) {
        const [d, g] = [t.data, t.grad!.data];
        for (let i = 0; i < d.length; i++) d[i] -= lr * g[i];
        t.grad!.dispose();
        t.grad = undefined;
      }
    }
    calls.push(counter.calls - before);
  }
  return { losses, calls };
}

const CACHED: [CaseName, Record<string, unknown>][] = [
  ['qst_gqa', { downsample: 'maxpool' }],
  ['qst_gqa', { downsample: 'adapter' }],
  ['lst_avgpool', {}],
];

describe.each(CACHED)('%s %j with cache_features', (name, extra) => {
  it('a batch scores the same from the backbone and from the cache; a cached batch does not run the backbone', async () => {
    const ref = await readReference(name);
    const { model } = await attachCase(ref, { extra: { ...extra, cache_features: true } });
    models.push(model);
    const counter = countBackbone(model);
    const [b] = batches(ORDERS[1]);
    const score = () => tidy(() => noGrad(() => model.loss(b.ids, b.labels).item()));
    const first = score();
    expect(counter.calls).toBe(1);
    expect(score()).toBe(first);
    expect(counter.calls).toBe(1);
  });

  it('three epochs of SGD: later epochs skip the backbone; losses equal the uncached run within 2e-3', async () => {
    const ref = await readReference(name);
    const plain = await attachCase(ref, { extra });
    const cached = await attachCase(ref, { extra: { ...extra, cache_features: true } });
    models.push(plain.model, cached.model);
    const lr = ref.method === 'qst' ? 0.5 : 0.02; // LST's gates (sigmoid(alpha / 0.1)) take smaller steps
    const a = sgdEpochs(plain.model, plain.adapter, countBackbone(plain.model), lr);
    const b = sgdEpochs(cached.model, cached.adapter, countBackbone(cached.model), lr);
    expect(a.calls).toEqual([3, 3, 3]);
    expect(b.calls[0]).toBe(3);
    expect(b.calls[2]).toBe(0); // epoch 3 repeats epoch 2's batches: every row is cached at its length
    expect(b.calls[1]).toBeLessThan(3); // rows padded longer than at first sight are recomputed
    const worst = Math.max(...a.losses.map((l, i) => Math.abs(l - b.losses[i]) / l));
    expect(worst).toBeLessThan(2e-3);
    expect(worst).toBeGreaterThan(0); // the features are bf16: the runs are not identical
    expect(b.losses.at(-1)!).toBeLessThan(b.losses[0]);
  });
});

describe('room for the cache', () => {
  it('features that fit neither cache_max_mb nor the disk under OUT are refused before anything is written', async () => {
    const ref = await readReference('qst_gqa');
    const out = join(tempDir(), 'out');
    const attempt = attachCase(ref, { extra: { cache_features: true, cache_max_mb: 1 }, ctx: { outDir: out, dataTokens: 2 ** 50 } });
    const e = await attempt.then(() => undefined, (err: unknown) => err);
    expect(e).toBeInstanceOf(PeftError);
    expect((e as PeftError).exitCode).toBe(2);
    expect((e as PeftError).message).toMatch(/qst: cache_features needs \d+ MiB of full-width \(downsample=adapter trains, so it needs the states\) features for 1125899906842624 tokens; cache_max_mb 1 \+ \d+ MiB free under .* is not enough/);
    expect(existsSync(out)).toBe(false);
  });

  it('with room, rows beyond cache_max_mb go to OUT/feature-cache.bin once training runs', async () => {
    const ref = await readReference('qst_gqa');
    const out = join(tempDir(), 'out');
    const { model } = await attachCase(ref, { extra: { downsample: 'maxpool', cache_features: true, cache_max_mb: 0 }, ctx: { outDir: out, dataTokens: 40 } });
    models.push(model);
    expect(existsSync(out)).toBe(false); // nothing is written at attach
    const [b] = batches(ORDERS[0]);
    tidy(() => noGrad(() => model.loss(b.ids, b.labels)));
    expect(readdirSync(out)).toEqual([FEATURE_FILE]);
  });
});
