/**
 * Every merge method against scripts/ref/merge_reference.py (mergekit's formulas in torch f32, the
 * same seeded generator for DARE / DELLA masks): max |ours - reference| <= 1e-6 on each fixture case.
 * Parameters the fixture leaves out come from our schemas' defaults while the reference spells out
 * mergekit's, so the defaults are checked too.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createRegistry, mergeRng, resolveOptions, type MergeTensorInput } from '@peft/core-tensor';
import { register } from '../src/index.js';

interface Case {
  method: string;
  shape: number[];
  seed: number;
  global: Record<string, unknown>;
  perModel: Record<string, unknown>[];
  base: number[];
  models: number[][];
  expected: number[];
}

const fx = JSON.parse(readFileSync(new URL('./fixtures/merge/methods.json', import.meta.url), 'utf8')) as {
  rng: { seed: number; stream: number; u32: number[] }[];
  cases: Case[];
};
const registry = createRegistry();
register(registry);

function maxAbsDiff(a: Float32Array, b: number[]): number {
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('mergeRng', () => {
  it.each(fx.rng)('seed $seed stream $stream gives the reference xoshiro128** words', ({ seed, stream, u32 }) => {
    const g = mergeRng(seed, stream);
    expect(u32.map(() => g.nextU32())).toEqual(u32);
  });
});

describe('merge methods equal the mergekit reference', () => {
  it.each(fx.cases.map((c, i) => [i, c.method, c] as const))('case %i: %s', (_i, method, c) => {
    const def = registry.get('merger', method);
    const global = resolveOptions(method, def.options, c.global);
    const perModel = c.perModel.map((p) => resolveOptions(method, def.perModelOptions, p));
    const params = { name: 'model.layers.0.mlp.up_proj.weight', shape: c.shape, global, perModel };
    def.checkParams?.(params);
    const base = Float32Array.from(c.base);
    const input: MergeTensorInput = {
      ...params, base: def.base === 'none' ? undefined : base, models: c.models.map((m) => Float32Array.from(m)),
      out: new Float32Array(c.expected.length).fill(Number.NaN), seed: c.seed,
    };
    const got = def.mergeTensor(input);
    expect(got.length).toBe(c.expected.length);
    expect(maxAbsDiff(got, c.expected)).toBeLessThanOrEqual(1e-6);
    expect(Array.from(base)).toEqual(Array.from(Float32Array.from(c.base))); // the base is never modified
  });
});
