import { describe, expect, it } from 'vitest';
import { createRegistry, parseSetPairs, registerBuiltins, resolveOptions, type MethodDef, type OptionsSchema } from '../src/plugin/index.js';
import { PeftError } from '../src/errors.js';
import { matchesModule, selectModule, DEFAULT_TARGETS } from '../src/tasks/select-modules.js';

const schema: OptionsSchema = {
  r: { type: 'integer', min: 1, max: 256, default: 8, description: 'rank' },
  bs: { type: 'integer', min: 32, max: 4096, powerOfTwo: true, default: 64, description: 'block' },
  dq: { type: 'boolean', default: true, description: 'double quant' },
  dt: { type: 'enum', choices: ['bf16', 'f16'], default: 'bf16', description: 'dtype' },
  mods: { type: 'list', default: ['q_proj'], description: 'targets' },
  lr: { type: 'number', min: 0, description: 'learning rate' },
};

function errorOf(fn: () => unknown): PeftError {
  try {
    fn();
  } catch (e) {
    if (e instanceof PeftError) return e;
    throw e;
  }
  throw new Error('expected a PeftError');
}

describe('resolveOptions', () => {
  it('fills defaults and coerces strings from --set', () => {
    expect(resolveOptions('m', schema, {})).toEqual({ r: 8, bs: 64, dq: true, dt: 'bf16', mods: ['q_proj'], lr: undefined });
    expect(resolveOptions('m', schema, { r: '16', bs: '128', dq: 'false', dt: 'f16', mods: 'q_proj, v_proj', lr: '2e-4' })).toEqual({
      r: 16, bs: 128, dq: false, dt: 'f16', mods: ['q_proj', 'v_proj'], lr: 2e-4,
    });
  });

  it('refuses unknown keys listing the valid ones, and out-of-range values with the range', () => {
    const e = errorOf(() => resolveOptions('lora', schema, { rank: 4 }));
    expect(e.exitCode).toBe(2);
    expect(e.message).toBe('lora: unknown option "rank" (valid: r, bs, dq, dt, mods, lr)');
    expect(errorOf(() => resolveOptions('m', schema, { r: '0' })).message).toMatch(/"r": expected integer 1..256/);
    expect(errorOf(() => resolveOptions('m', schema, { r: '2.5' })).message).toMatch(/"r"/);
    expect(errorOf(() => resolveOptions('m', schema, { bs: 96 })).message).toMatch(/power of two/);
    expect(errorOf(() => resolveOptions('m', schema, { dq: 'maybe' })).message).toMatch(/"dq"/);
    expect(errorOf(() => resolveOptions('m', schema, { dt: 'f8' })).message).toMatch(/bf16\|f16/);
    expect(errorOf(() => resolveOptions('m', schema, { lr: 'fast' })).message).toMatch(/"lr"/);
  });

  it('parses key=value pairs and refuses malformed ones', () => {
    expect(parseSetPairs(['a=1', 'b = x=y'])).toEqual({ a: '1', b: 'x=y' });
    expect(errorOf(() => parseSetPairs(['novalue'])).message).toMatch(/key=value/);
    expect(errorOf(() => parseSetPairs(['=1'])).exitCode).toBe(2);
  });
});

describe('registry', () => {
  it('holds the built-in quantizers and refuses a second entry with a taken name', () => {
    const r = createRegistry();
    registerBuiltins(r);
    expect(r.list('quantizer').map((q) => q.name)).toEqual(['fp4', 'int8', 'nf4']);
    expect(r.get('quantizer', 'nf4').options.blocksize).toMatchObject({ default: 64 });
    expect(() => r.quantizer(r.get('quantizer', 'nf4'))).toThrow(/registered twice/);
    expect(errorOf(() => r.get('quantizer', 'nf5')).message).toBe('unknown quantizer "nf5" (available: fp4, int8, nf4)');
    expect(r.list('method')).toEqual([]);
  });

  it('refuses names that are not lowercase identifiers', () => {
    const r = createRegistry();
    const q = { ...createRegistryWithNf4(), name: 'Bad Name' };
    expect(() => r.quantizer(q)).toThrow(/must match/);
  });
});

describe('methods by peft_type', () => {
  const method = (name: string, peftType: string, prefix: string): MethodDef => ({
    name, description: name, options: {}, peftType, keys: { prefix, parts: { [`${prefix}w`]: { saved: '.weight' } } },
    attach: () => Promise.reject(new Error('no')), loadAdapter: () => Promise.resolve(),
  });

  it('are looked up once, exactly as PEFT (upper case), with a hint for a near miss', () => {
    const r = createRegistry();
    r.method(method('ia3', 'IA3', 'ia3_'));
    expect(r.methodFor('IA3').name).toBe('ia3');
    expect(r.findMethod('LORA')).toBeUndefined();
    const e = errorOf(() => r.methodFor('ia3', '/a/adapter_config.json'));
    expect([e.code, e.message]).toEqual(['E_INPUT', '/a/adapter_config.json: no adapter method registered for ia3 (PEFT\'s types are upper case: IA3)']);
    expect(errorOf(() => r.methodFor('VERA')).message).toBe('no adapter method registered for VERA; install the plugin that provides it');
  });

  it('refuses a second method claiming a peft_type or a key prefix, and malformed declarations', () => {
    const r = createRegistry();
    r.method(method('ia3', 'IA3', 'ia3_'));
    expect(() => r.method(method('other', 'IA3', 'other_'))).toThrow(/peft_type IA3 is already read by method "ia3"/);
    expect(() => r.method(method('other', 'OTHER', 'ia3_'))).toThrow(/key prefix "ia3_" is already method "ia3"'s/);
    expect(() => r.method(method('low', 'lower', 'low_'))).toThrow(/peftType "lower" must match/);
    expect(() => r.method({ ...method('stray', 'STRAY', 'stray_'), keys: { prefix: 'stray_', parts: { w: { saved: '' } } } })).toThrow(/part "w" does not start with the prefix/);
    expect(r.list('method').map((m) => m.name)).toEqual(['ia3']);
  });

  it('lets prompt-learning methods share PEFT\'s bare prompt_embeddings key only when both declare it shared', () => {
    const r = createRegistry();
    const prompt = (name: string, peftType: string, shared?: boolean): MethodDef => ({
      ...method(name, peftType, 'prompt_'), keys: { prefix: 'prompt_', parts: { prompt_embeddings: { saved: '' } }, shared },
    });
    r.method(prompt('prompt-tuning', 'PROMPT_TUNING', true));
    r.method(prompt('prefix-tuning', 'PREFIX_TUNING', true));
    expect(() => r.method(prompt('mine', 'MINE'))).toThrow(/key prefix "prompt_" is already method "prefix-tuning"'s|key prefix "prompt_" is already method "prompt-tuning"'s/);
    expect(r.methodFor('PREFIX_TUNING').name).toBe('prefix-tuning');
  });
});

function createRegistryWithNf4() {
  const r = createRegistry();
  registerBuiltins(r);
  return r.get('quantizer', 'nf4');
}

describe('module selection', () => {
  const sel = { targets: DEFAULT_TARGETS, skip: [] as string[] };
  it('takes the Llama projections and leaves embeddings, norms and lm_head', () => {
    expect(selectModule('model.layers.3.self_attn.q_proj.weight', [8, 8], sel)).toBe('model.layers.3.self_attn.q_proj');
    expect(selectModule('model.layers.3.mlp.down_proj.weight', [8, 8], sel)).toBe('model.layers.3.mlp.down_proj');
    expect(selectModule('model.layers.3.self_attn.q_proj.bias', [8], sel)).toBeUndefined();
    expect(selectModule('model.embed_tokens.weight', [8, 8], sel)).toBeUndefined();
    expect(selectModule('lm_head.weight', [8, 8], sel)).toBeUndefined();
    expect(selectModule('model.norm.weight', [8], sel)).toBeUndefined();
    expect(selectModule('lm_head.weight', [8, 8], { targets: [...DEFAULT_TARGETS, 'lm_head'], skip: [] })).toBe('lm_head');
  });

  it('skips by exact name, dotted suffix and glob', () => {
    expect(matchesModule('model.layers.0.mlp.up_proj', 'mlp.up_proj')).toBe(true);
    expect(matchesModule('model.layers.0.mlp.up_proj', 'p_proj')).toBe(false);
    expect(matchesModule('model.layers.0.mlp.up_proj', 'model.layers.0.*')).toBe(true);
    expect(matchesModule('model.layers.10.mlp.up_proj', 'model.layers.1.*')).toBe(false);
    expect(selectModule('model.layers.0.mlp.up_proj.weight', [8, 8], { targets: DEFAULT_TARGETS, skip: ['model.layers.0.*'] })).toBeUndefined();
  });
});
