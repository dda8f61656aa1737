/**
 * What the plugin registers: mergekit's method names with its defaults (registry.py), the parameters
 * each takes, and the per-tensor checks that turn bad values into one E_INPUT line.
 */
import { describe, expect, it } from 'vitest';
import { createRegistry, PeftError, resolveOptions, type MergeParams, type MergerDef } from '@peft/core-tensor';
import { register } from '../src/index.js';

const registry = createRegistry();
register(registry);

function params(def: MergerDef, global: Record<string, unknown>, perModel: Record<string, unknown>[], shape = [4, 8]): MergeParams {
  return {
    name: 'model.layers.1.mlp.up_proj.weight', shape,
    global: resolveOptions(def.name, def.options, global), perModel: perModel.map((p) => resolveOptions(def.name, def.perModelOptions, p)),
  };
}

function refusal(fn: () => void): PeftError {
  try {
    fn();
  } catch (e) {
    if (e instanceof PeftError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('registered merge methods', () => {
  it('are mergekit\'s names, and PEFT\'s cat', () => {
    expect(registry.list('merger').map((m) => m.name)).toEqual([
      'breadcrumbs', 'breadcrumbs_ties', 'cat', 'dare_linear', 'dare_ties', 'della', 'della_linear', 'linear', 'model_stock', 'slerp', 'task_arithmetic', 'ties',
    ]);
  });

  it('carry mergekit\'s defaults (registry.py, generalized_task_arithmetic.py, sparsify defaults)', () => {
    const d = (name: string) => resolveOptions(name, registry.get('merger', name).options, {});
    expect(d('task_arithmetic')).toMatchObject({ normalize: false, rescale: false, lambda: 1 });
    expect(d('ties')).toMatchObject({ normalize: true, rescale: false, consensus_method: 'sum' });
    expect(d('dare_ties')).toMatchObject({ normalize: false, rescale: true });
    expect(d('dare_linear')).toMatchObject({ normalize: false, rescale: true });
    expect(d('breadcrumbs')).toMatchObject({ normalize: false, rescale: false });
    expect(d('della')).toMatchObject({ normalize: true, rescale: true });
    expect(d('della_linear')).toMatchObject({ normalize: false, rescale: true });
    expect(d('linear')).toEqual({ normalize: true });
    expect(d('model_stock')).toEqual({ filter_wise: false });
    const pm = (name: string) => resolveOptions(name, registry.get('merger', name).perModelOptions, {});
    expect(pm('breadcrumbs')).toEqual({ weight: undefined, density: 1, gamma: 0.01 });
    expect(pm('della')).toEqual({ weight: undefined, density: 1, epsilon: 0.15 });
    expect(pm('ties')).toEqual({ weight: undefined, density: 1 });
    expect(registry.get('merger', 'ties').required).toEqual(['weight']);
    expect(registry.get('merger', 'slerp').required).toEqual(['t']);
    expect(registry.get('merger', 'slerp').models).toEqual({ min: 1, max: 1 });
    expect(registry.get('merger', 'model_stock').models).toEqual({ min: 2 });
  });

  it('refuse densities outside (0, 1] and densities that keep nothing', () => {
    const ties = registry.get('merger', 'ties');
    expect(refusal(() => ties.checkParams!(params(ties, {}, [{ weight: 1, density: 0 }]))).message).toBe(
      'ties: tensor model.layers.1.mlp.up_proj.weight: density must be in (0, 1], got 0',
    );
    expect(refusal(() => resolveOptions('ties', ties.perModelOptions, { weight: 1, density: 1.5 })).exitCode).toBe(2);
    expect(refusal(() => ties.checkParams!(params(ties, {}, [{ weight: 1, density: 0.01 }]))).message).toMatch(/density 0.01 keeps no element of 32/);
  });

  it('refuse della densities whose epsilon window leaves (0, 1)', () => {
    const della = registry.get('merger', 'della');
    expect(refusal(() => della.checkParams!(params(della, {}, [{ weight: 1, density: 0.1, epsilon: 0.15 }]))).message).toMatch(
      /density \+\/- epsilon must lie in \(0, 1\)/,
    );
    expect(() => della.checkParams!(params(della, {}, [{ weight: 1, density: 1 }]))).not.toThrow(); // density 1: nothing dropped
  });

  it('refuse weights that sum to 0 with normalize on, where the divisor is the weight sum', () => {
    for (const name of ['linear', 'task_arithmetic', 'dare_linear']) {
      const def = registry.get('merger', name);
      const p = params(def, { normalize: true }, [{ weight: 0.5 }, { weight: -0.5 }]);
      expect(refusal(() => def.checkParams!(p)).message).toMatch(/weights sum to 0 and normalize is on/);
      expect(() => def.checkParams!(params(def, { normalize: false }, [{ weight: 0.5 }, { weight: -0.5 }]))).not.toThrow();
    }
    const ties = registry.get('merger', 'ties'); // per-element divisors: mergekit's 0 -> 1 rule applies
    expect(() => ties.checkParams!(params(ties, {}, [{ weight: 0.5 }, { weight: -0.5 }]))).not.toThrow();
  });
});
