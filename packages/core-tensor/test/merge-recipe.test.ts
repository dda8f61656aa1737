/**
 * Merge recipes and flags: mergekit's YAML schema read into a MergePlan, every unknown or
 * unsupported key refused by name, parameter values evaluated per tensor as mergekit's
 * evaluate_setting (scalars, layer gradients, {filter, value} lists), model-level over global.
 */
import { describe, expect, it } from 'vitest';
import { PeftError } from '../src/errors.js';
import type { MergerDef } from '../src/plugin/merger.js';
import {
  evaluateSetting, layerPosition, parseMergeRecipe, planFromFlags, planToRecipe, resolveTensorParams, type MergePlan,
} from '../src/tasks/merge/index.js';
import { checkParamNames } from '../src/tasks/merge/params.js';

function refusal(fn: () => unknown): PeftError {
  try {
    fn();
  } catch (e) {
    if (e instanceof PeftError) return e;
    throw e;
  }
  throw new Error('expected a PeftError');
}

const RECIPE = `
merge_method: ties
base_model: models/base
models:
  - model: models/a
    parameters:
      weight: 0.7
      density: [1, 0.5, 0.1]
  - model: models/b
parameters:
  normalize: false
  weight:
    - filter: self_attn
      value: 0.2
    - value: 0.4
  density: 0.5
dtype: bfloat16
tokenizer_source: base
name: my-merge
`;

/** A merger entry with ties' parameter shape; only the schema matters here. */
const fake: MergerDef = {
  name: 'fake', description: 'test', base: 'required', models: { min: 1 },
  options: { normalize: { type: 'boolean', default: true, description: '' }, lambda: { type: 'number', default: 1, description: '' } },
  perModelOptions: { weight: { type: 'number', description: '' }, density: { type: 'number', min: 0, max: 1, default: 1, description: '' } },
  required: ['weight'],
  mergeTensor: ({ out }) => out,
};

describe('parseMergeRecipe', () => {
  it('reads mergekit\'s schema into a plan', () => {
    expect(parseMergeRecipe(RECIPE, 'r.yml')).toEqual({
      method: 'ties',
      base: 'models/base',
      models: [{ path: 'models/a', params: { weight: 0.7, density: [1, 0.5, 0.1] } }, { path: 'models/b', params: {} }],
      params: { normalize: false, weight: [{ filter: 'self_attn', value: 0.2 }, { value: 0.4 }], density: 0.5 },
      dtype: 'bf16',
      tokenizerSource: 'base',
      name: 'my-merge',
      source: 'r.yml',
    } satisfies MergePlan);
  });

  it('round-trips through planToRecipe (what a merge writes as mergekit_config.yml)', () => {
    const plan = parseMergeRecipe(RECIPE, 'r.yml');
    expect(parseMergeRecipe(planToRecipe(plan), 'r.yml')).toEqual(plan);
  });

  it('refuses unknown and unsupported keys by name, at every level', () => {
    const msg = (text: string) => refusal(() => parseMergeRecipe(text, 'r.yml')).message;
    const models = 'models:\n  - model: a\n';
    expect(msg(`merge_method: ties\n${models}frobnicate: 1\n`)).toBe(
      'r.yml: unknown key "frobnicate" (valid: merge_method, base_model, models, parameters, dtype, out_dtype, tokenizer_source, name, chat_template)',
    );
    expect(msg('merge_method: slerp\nslices:\n  - sources: []\n')).toBe('r.yml: slices are not supported; use models');
    expect(msg(`merge_method: ties\n${models}tokenizer: {source: union}\n`)).toMatch(/the tokenizer block .* is not supported/);
    expect(msg(`merge_method: ties\n${models}tokenizer_source: union\n`)).toMatch(/tokenizer_source "union" is not supported/);
    expect(msg(`merge_method: ties\n${models}tokenizer_source: model:foo\n`)).toMatch(/tokenizer_source "model:foo" is not supported/);
    expect(msg(`merge_method: ties\n${models}chat_template: chatml\n`)).toMatch(/chat_template is not supported/);
    expect(msg('merge_method: ties\nmodels:\n  - model: a\n    layer_range: [0, 2]\n')).toBe(
      'r.yml: models[0]: unknown key "layer_range" (valid: model, parameters)',
    );
    expect(msg('merge_method: ties\nmodels:\n  - model: a+lora\n')).toMatch(/model\+lora references are not supported/);
    expect(msg(`merge_method: ties\n${models}parameters:\n  weight: [{filter: mlp, val: 1}]\n`)).toMatch(
      /parameters.weight\[0\]: unknown key "val" \(valid: filter, value\)/,
    );
    expect(msg(`merge_method: ties\n${models}parameters:\n  weight: [{filter: mlp}]\n`)).toMatch(/needs a value/);
    expect(msg(`merge_method: ties\n${models}parameters:\n  weight: [1, {value: 2}]\n`)).toMatch(/expected a number, a list of numbers/);
    expect(msg(`merge_method: ties\n${models}dtype: int4\n`)).toMatch(/unsupported dtype "int4"/);
    expect(msg(models)).toMatch(/merge_method is required/);
    expect(msg('merge_method: ties\nmodels: []\n')).toMatch(/models must be a non-empty list/);
    expect(msg('merge_method: [unclosed\n')).toMatch(/^r.yml:\d+: not valid YAML/);
    expect(msg(`merge_method: ties\nmerge_method: linear\n${models}`)).toMatch(/^r.yml:2: not valid YAML: Map keys must be unique/); // duplicate key
    expect(refusal(() => parseMergeRecipe(`merge_method: ties\n${models}slices: []\n`, 'r.yml')).exitCode).toBe(2);
  });
});

describe('planFromFlags', () => {
  it('gives the plan the equivalent recipe gives', () => {
    const flags = planFromFlags({ method: 'ties', base: 'B', models: ['M1', 'M2'], params: { weight: '0.5', density: '0.5', normalize: 'false' } });
    const recipe = parseMergeRecipe('merge_method: ties\nbase_model: B\nmodels:\n  - model: M1\n  - model: M2\nparameters: {weight: 0.5, density: 0.5, normalize: false}\n', 'command line');
    expect(flags).toEqual(recipe);
  });

  it('reads comma lists as layer gradients and refuses malformed ones', () => {
    expect(planFromFlags({ method: 'slerp', base: 'B', models: ['M'], params: { t: '0, 0.5,1' } }).params).toEqual({ t: [0, 0.5, 1] });
    expect(refusal(() => planFromFlags({ method: 'slerp', models: ['M'], params: { t: '0,,1' } })).message).toMatch(/--t: "0,,1" is not a number/);
    expect(refusal(() => planFromFlags({ method: 'ties', models: [] })).message).toMatch(/pass --model/);
    expect(refusal(() => planFromFlags({ method: 'ties', models: ['a'], dtype: 'f8' })).message).toMatch(/--dtype: unsupported dtype/);
  });
});

describe('parameter values per tensor (mergekit evaluate_setting)', () => {
  it('interpolates number lists over the layer position', () => {
    const g = [0, 1, 0.5];
    expect([0, 0.25, 0.5, 0.75, 1].map((t) => evaluateSetting(g, 'x', t))).toEqual([0, 0.5, 1, 0.75, 0.5]);
    expect(evaluateSetting([0.2, 0.8], 'x', 1 / 3)).toBeCloseTo(0.4, 15);
    expect(evaluateSetting(['a', 'b', 'c'], 'x', 0.9)).toBe('b'); // non-numbers: s[floor(t (len - 1))]
    expect(evaluateSetting(0.3, 'x', 0.7)).toBe(0.3);
  });

  it('takes the first matching filter; none matching means not set here', () => {
    const s = [{ filter: 'self_attn', value: 0.1 }, { filter: 'mlp', value: [0, 1] }, { value: 0.5 }];
    expect(evaluateSetting(s, 'model.layers.0.self_attn.q_proj.weight', 0)).toBe(0.1);
    expect(evaluateSetting(s, 'model.layers.1.mlp.up_proj.weight', 0.5)).toBe(0.5);
    expect(evaluateSetting(s, 'model.norm.weight', 1)).toBe(0.5);
    expect(evaluateSetting([{ filter: 'mlp', value: 1 }], 'model.norm.weight', 1)).toBeUndefined();
    expect(evaluateSetting([{ filter: '*', value: 2 }], 'anything', 0)).toBe(2);
  });

  it('places tensors as mergekit does: layer i of L at i / (L - 1), embeddings at 0, the rest after the layers at 1', () => {
    expect(layerPosition('model.layers.0.mlp.up_proj.weight', 4)).toBe(0);
    expect(layerPosition('model.layers.1.mlp.up_proj.weight', 4)).toBe(1 / 3);
    expect(layerPosition('model.layers.3.input_layernorm.weight', 4)).toBe(1);
    expect(layerPosition('model.embed_tokens.weight', 4)).toBe(0);
    expect(layerPosition('model.norm.weight', 4)).toBe(1);
    expect(layerPosition('lm_head.weight', 4)).toBe(1);
    expect(layerPosition('model.layers.0.mlp.up_proj.weight', 1)).toBe(1);
  });

  it('resolves model-level over global over defaults, per tensor', () => {
    const plan = parseMergeRecipe(RECIPE, 'r.yml');
    const refs = plan.models;
    const attn = resolveTensorParams(fake, plan, refs, 'model.layers.1.self_attn.q_proj.weight', [4, 4], 0.5);
    expect(attn.global).toEqual({ normalize: false, lambda: 1 });
    expect(attn.perModel).toEqual([{ weight: 0.7, density: 0.5 }, { weight: 0.2, density: 0.5 }]);
    const mlp = resolveTensorParams(fake, plan, refs, 'model.layers.0.mlp.up_proj.weight', [4, 4], 1);
    expect(mlp.perModel).toEqual([{ weight: 0.7, density: 0.1 }, { weight: 0.4, density: 0.5 }]);
  });

  it('refuses missing required values, wrong types and parameters the method does not have, by name', () => {
    const plan = planFromFlags({ method: 'fake', base: 'B', models: ['M1'], params: { density: 0.5 } });
    expect(refusal(() => resolveTensorParams(fake, plan, plan.models, 'w', [2], 0)).message).toBe(
      'command line: fake needs parameter "weight" for model M1 (tensor w); set it in parameters',
    );
    const typed = planFromFlags({ method: 'fake', base: 'B', models: ['M1'], params: { weight: 'heavy' } });
    expect(refusal(() => resolveTensorParams(fake, typed, typed.models, 'w', [2], 0)).message).toMatch(/invalid value "heavy" for option "weight"/);
    const extra = planFromFlags({ method: 'fake', base: 'B', models: ['M1'], params: { weight: 1, gamma: 0.1 } });
    expect(refusal(() => checkParamNames(fake, extra, extra.models)).message).toBe(
      'command line: parameters: fake has no parameter "gamma" (global: normalize, lambda; per model: weight, density)',
    );
    const misplaced = planFromFlags({ method: 'fake', base: 'B', models: [{ path: 'M1', params: { normalize: true } }] });
    expect(refusal(() => checkParamNames(fake, misplaced, misplaced.models)).message).toBe(
      'command line: model M1: "normalize" is a global parameter of fake; set it under the top-level parameters',
    );
  });
});
