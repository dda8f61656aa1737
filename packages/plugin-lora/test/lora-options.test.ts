/**
 * Options and targets: the `lora` entry in a registry (and through the oclif hook), --set strings and
 * recipe values (objects, booleans, a regex with commas) resolving to the same settings, refusals with
 * one clear line, and PEFT's matching rules — target_modules names (exact or dotted suffix), a regex
 * (full match), all-linear (no lm_head); rank/alpha_pattern keys with re.match(rf"(.*\.)?({key})$").
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createRegistry, Llama, PeftError } from '@peft/core-tensor';
import hook from '../src/hook.js';
import { attachLora } from '../src/attach.js';
import { resolveLoraOptions, settingsFromOptions } from '../src/config.js';
import { register } from '../src/index.js';
import { parseTargets, patternValue, selectTargets } from '../src/targets.js';
import { ctxFor, MODEL_DIR } from './helpers.js';

const err = (f: () => unknown): PeftError => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(PeftError);
    expect((e as PeftError).message).not.toContain('\n');
    return e as PeftError;
  }
  throw new Error('did not throw');
};

let model: Llama | undefined;
afterEach(() => {
  model?.dispose();
  model = undefined;
});

describe('registration', () => {
  it('register() and the oclif hook add method "lora" owning peft_type LORA, once', async () => {
    const reg = createRegistry();
    register(reg);
    const m = reg.get('method', 'lora');
    expect(m.peftType).toBe('LORA');
    expect(Object.keys(m.options).sort()).toEqual(['alpha_pattern', 'bias', 'init_lora_weights', 'loftq_bits', 'loftq_iter', 'lora_alpha', 'lora_dropout', 'r', 'rank_pattern', 'target_modules', 'use_dora', 'use_rslora']);
    expect(typeof m.delta).toBe('function');
    expect(() => register(reg)).toThrow(/registered twice/);
    const viaHook = createRegistry();
    await hook({ registry: viaHook });
    expect(viaHook.has('method', 'lora')).toBe(true);
  });
});

describe('options', () => {
  it('defaults are PEFT LoraConfig defaults with its Llama targets', () => {
    const s = settingsFromOptions(resolveLoraOptions({}));
    expect(s).toMatchObject({ r: 8, loraAlpha: 8, dropout: 0, bias: 'none', useRslora: false, useDora: false, init: 'default', initValue: true, rankPattern: {}, alphaPattern: {} });
    expect(s.targets).toEqual({ kind: 'names', names: ['q_proj', 'v_proj'] });
  });

  it('--set strings and recipe values give the same settings', () => {
    const fromSet = settingsFromOptions(resolveLoraOptions({
      r: '16', lora_alpha: '32', target_modules: 'q_proj, v_proj', rank_pattern: 'q_proj=4,v_proj=2', alpha_pattern: '{"v_proj": 3.5}',
      use_dora: 'true', init_lora_weights: 'false', lora_dropout: '0.05',
    }));
    const fromRecipe = settingsFromOptions(resolveLoraOptions({
      r: 16, lora_alpha: 32, target_modules: ['v_proj', 'q_proj'], rank_pattern: { q_proj: 4, v_proj: 2 }, alpha_pattern: { v_proj: 3.5 },
      use_dora: true, init_lora_weights: false, lora_dropout: 0.05,
    }));
    expect(fromRecipe).toEqual(fromSet);
    expect(fromSet).toMatchObject({ r: 16, rankPattern: { q_proj: 4, v_proj: 2 }, alphaPattern: { v_proj: 3.5 }, init: 'random', initValue: false });
  });

  it('a regex target stays whole, commas included', () => {
    const s = settingsFromOptions(resolveLoraOptions({ target_modules: String.raw`.*\.(q|v)_pro{1,2}j` }));
    expect(s.targets).toMatchObject({ kind: 'regex', pattern: String.raw`.*\.(q|v)_pro{1,2}j` });
  });

  it.each([
    [{ init_lora_weights: 'corda' }, /init_lora_weights "corda" is not supported \(true, false, gaussian, pissa, pissa_niter_K, olora, loftq\)/],
    [{ rank_pattern: 'q_proj=2.5' }, /rank_pattern\["q_proj"\] must be a positive integer/],
    [{ rank_pattern: 'q_proj' }, /rank_pattern entry "q_proj" is not key=value/],
    [{ alpha_pattern: '{"(": 2}' }, /alpha_pattern key "\(" is not a valid regular expression/],
    [{ init_lora_weights: 'loftq', loftq_bits: 8 }, /loftq_bits 8 is not supported: only 4/],
    [{ target_modules: ['q_proj', '.*v_proj'] }, /entry ".\*v_proj" is not a module name \(a regex must be the only entry\)/],
    [{ rank: 4 }, /unknown option "rank"/],
    [{ r: 0 }, /invalid value 0 for option "r"/],
  ])('refuses %j', (given, msg) => {
    const e = err(() => settingsFromOptions(resolveLoraOptions(given)));
    expect(e.code).toBe('E_INPUT');
    expect(e.message).toMatch(msg);
  });
});

describe('targets (PEFT check_target_module_exists)', () => {
  const select = async (t: string | string[]) => {
    model?.dispose();
    model = await Llama.fromFolder(MODEL_DIR);
    return selectTargets(model, parseTargets(t));
  };

  it('names match exactly or as a dotted suffix', async () => {
    expect(await select(['self_attn.q_proj', 'model.layers.1.mlp.up_proj'])).toEqual([
      'model.layers.0.self_attn.q_proj', 'model.layers.1.self_attn.q_proj', 'model.layers.1.mlp.up_proj',
    ]);
    await expect(select(['proj'])).rejects.toThrow(/target_modules proj matched no module/);
  });

  it('a regex must match the whole name (re.fullmatch)', async () => {
    expect(await select(String.raw`model\.layers\.0\..*_proj`)).toHaveLength(7);
    expect(await select('.*(q|v)_proj')).toEqual(['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj']);
    await expect(select('(q|v)_proj')).rejects.toThrow(/matched no module/);
  });

  it('all-linear is every Linear but lm_head', async () => {
    const got = await select('all-linear');
    expect(got).toHaveLength(14);
    expect(got).not.toContain('lm_head');
  });

  it('refuses a non-Linear match, lm_head, nothing matched, and a second adapter', async () => {
    model = await Llama.fromFolder(MODEL_DIR);
    expect(err(() => selectTargets(model!, parseTargets(['mlp']))).message).toMatch(/matches model\.layers\.0\.mlp, which is not a Linear layer/);
    expect(err(() => selectTargets(model!, parseTargets(['lm_head']))).message).toMatch(/lm_head cannot be a LoRA target/);
    expect(err(() => selectTargets(model!, parseTargets(['wq']))).message).toMatch(/target_modules wq matched no module \(Linear layers here: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head\)/);
    await attachLora(model!, resolveLoraOptions({}), ctxFor());
    expect(err(() => selectTargets(model!, parseTargets(['k_proj']))).message).toMatch(/already has an adapter/);
  });
});

describe('rank_pattern / alpha_pattern keys (re.match(rf"(.*\\.)?({key})$", name))', () => {
  const name = 'model.layers.10.self_attn.q_proj';
  it.each([
    [{ q_proj: 2 }, 2], [{ 'self_attn.q_proj': 2 }, 2], [{ [name]: 2 }, 2], [{ 'layers\\.10\\..*': 2 }, 2],
    [{ _proj: 2 }, undefined], [{ 'layers.1.self_attn.q_proj': 2 }, undefined], [{ k_proj: 2 }, undefined],
    [{ 'q_.*': 2, q_proj: 3 }, 2],
  ])('%j -> %s', (pattern, want) => {
    expect(patternValue(pattern, name)).toBe(want);
  });
});
