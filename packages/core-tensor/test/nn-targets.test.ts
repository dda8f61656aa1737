/**
 * PEFT target matching as core/nn/targets.ts implements it for every method, case by case from
 * huggingface/peft src/peft/tuners/tuners_utils.py check_target_module_exists: list names (exact or a
 * dotted suffix), a string as re.fullmatch, layers_to_transform (list targets only, index after
 * layers_pattern or any name), exclude_modules; and the saved-config reader refusing what PEFT never writes.
 */
import { describe, expect, it } from 'vitest';
import { matchesTarget, peftTargetRules, PeftError } from '../src/index.js';

const rules = (c: Record<string, unknown>) => peftTargetRules(c, ['q_proj', 'v_proj'], 'adapter_config.json');
const Q0 = 'model.layers.0.self_attn.q_proj';
const Q1 = 'model.layers.1.self_attn.q_proj';
const E1 = 'model.layers.1.mlp.experts.0.up_proj';

describe('check_target_module_exists', () => {
  it('list names match exactly or as a dotted suffix; absent target_modules is the method default', () => {
    const r = rules({ target_modules: ['self_attn.q_proj', 'model.layers.1.mlp.up_proj'] });
    expect([Q0, Q1, 'model.layers.1.mlp.up_proj', 'model.layers.0.mlp.up_proj', 'x_q_proj'].map((n) => matchesTarget(r, n))).toEqual([true, true, true, false, false]);
    expect(matchesTarget(rules({}), 'model.layers.0.self_attn.v_proj')).toBe(true);
    expect(matchesTarget(rules({ target_modules: null }), Q0)).toBe(true);
  });

  it('a string is re.fullmatch (never a name list); "all-linear" any case', () => {
    expect(matchesTarget(rules({ target_modules: 'q_proj' }), Q0)).toBe(false);
    expect(matchesTarget(rules({ target_modules: String.raw`.*\.(q|v)_proj` }), Q0)).toBe(true);
    expect(matchesTarget(rules({ target_modules: 'ALL-LINEAR' }), Q0)).toBe(true);
    expect(matchesTarget(rules({ target_modules: 'all-linear' }), 'lm_head')).toBe(false);
    expect(matchesTarget(rules({ target_modules: 'all-linear' }), 'model.norm', false)).toBe(false);
  });

  it('layers_to_transform filters suffix matches by the first layer index; exact names and regexes ignore it', () => {
    const r = rules({ target_modules: ['q_proj', 'up_proj', Q1], layers_to_transform: [0] });
    expect(matchesTarget(r, Q0)).toBe(true);
    expect(matchesTarget(r, 'model.layers.1.self_attn.k_proj')).toBe(false);
    expect(matchesTarget(rules({ target_modules: ['q_proj'], layers_to_transform: 0 }), Q1)).toBe(false);
    expect(matchesTarget(r, Q1)).toBe(true); // `key in target_modules`: no layer check
    expect(matchesTarget(rules({ target_modules: ['up_proj'], layers_to_transform: [1] }), E1)).toBe(true); // lazy: the layer, not the expert
    expect(matchesTarget(rules({ target_modules: '.*q_proj', layers_to_transform: [0] }), Q1)).toBe(true);
    expect(matchesTarget(rules({ target_modules: ['q_proj'], layers_to_transform: [] }), Q1)).toBe(true);
  });

  it('layers_pattern names what the index follows', () => {
    expect(matchesTarget(rules({ target_modules: ['q_proj'], layers_to_transform: [1], layers_pattern: 'layers' }), Q1)).toBe(true);
    expect(matchesTarget(rules({ target_modules: ['q_proj'], layers_to_transform: [1], layers_pattern: ['h', 'blocks'] }), Q1)).toBe(false);
  });

  it('exclude_modules (list or regex) wins over a match', () => {
    expect(matchesTarget(rules({ target_modules: ['q_proj'], exclude_modules: ['layers.1.self_attn.q_proj'] }), Q1)).toBe(false);
    expect(matchesTarget(rules({ target_modules: ['q_proj'], exclude_modules: ['layers.1.self_attn.q_proj'] }), Q0)).toBe(true);
    expect(matchesTarget(rules({ target_modules: 'all-linear', exclude_modules: String.raw`.*\.1\..*` }), Q1)).toBe(false);
  });

  it('refuses fields PEFT never writes (E_FORMAT naming the config)', () => {
    for (const c of [{ target_modules: 3 }, { target_modules: ['q_proj', 1] }, { layers_to_transform: 'all' }, { layers_to_transform: [0.5] },
      { layers_pattern: 7 }, { exclude_modules: {} }, { target_modules: '(?P<x>q)' }]) {
      const e = (() => { try { rules(c); } catch (x) { return x as PeftError; } return undefined; })();
      expect(e, JSON.stringify(c)).toBeInstanceOf(PeftError);
      expect(e!.code).toBe('E_FORMAT');
      expect(e!.message).toMatch(/^adapter_config\.json: /);
    }
  });
});
