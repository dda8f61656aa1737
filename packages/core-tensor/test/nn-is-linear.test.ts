/**
 * isLinear recognizes Linear layers made by another copy of the core. The built package
 * (dist/, imported by name) is such a copy: its classes are other objects than these sources',
 * as they are for a plugin that installed its own @peft/core-tensor.
 */
import { describe, expect, test } from 'vitest';
import * as built from '@peft/core-tensor';
import { Embedding, isLinear, Linear, Module } from '../src/index.js';

describe('isLinear', () => {
  test('is true for a Linear of this copy and of another copy, where instanceof fails', () => {
    const here = Linear.create(4, 3, { seed: 1 });
    const there = built.Linear.create(4, 3, { seed: 1 });
    expect(built.Linear).not.toBe(Linear); // two copies indeed
    expect(there instanceof Linear).toBe(false);
    expect(isLinear(here)).toBe(true);
    expect(isLinear(there)).toBe(true);
    expect(built.isLinear(here)).toBe(true);
  });

  test('is false for other modules and look-alikes', () => {
    const lookAlike = { weight: Linear.create(4, 3).weight, forward: () => undefined };
    for (const x of [Embedding.create(8, 4), new Module(), built.Embedding.create(8, 4), lookAlike, {}, null, undefined, 1, 'Linear']) {
      expect(isLinear(x)).toBe(false);
    }
  });
});
