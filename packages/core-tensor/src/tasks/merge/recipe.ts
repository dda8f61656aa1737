/**
 * mergekit merge recipes (mergekit/config.py MergeConfiguration) read into a MergePlan:
 *
 *   merge_method: ties
 *   base_model: path/to/base
 *   models:
 *     - model: path/to/a
 *       parameters: {weight: 0.5, density: [1, 0.7, 0.1]}
 *   parameters: {normalize: true, weight: [{filter: mlp, value: 0.3}, {value: 0.5}]}
 *   dtype: bfloat16          # also out_dtype, tokenizer_source: base, name
 *
 * Every key is checked: an unknown one, or one of mergekit's we do not support (slices, tokenizer,
 * chat_template, model+lora references, tokenizer_source union/model) is refused by name, never
 * ignored. Which parameters the method takes is checked against the registry when the plan is
 * resolved (check.ts), since a recipe alone does not know the method's schema. The YAML itself goes
 * through io/yaml-file.ts (core schema only: unknown tags, several documents, reserved keys refused).
 */
import { stringify } from 'yaml';
import { inputError } from '../../errors.js';
import { readTextFile } from '../../io/regular-file.js';
import { parseYaml } from '../../io/yaml-file.js';
import {
  parseMergeDtype, parseTokenizerSource, type ConditionalParameter, type MergeModelRef, type MergePlan, type ParamSetting,
} from './plan.js';

const TOP_KEYS = ['merge_method', 'base_model', 'models', 'parameters', 'dtype', 'out_dtype', 'tokenizer_source', 'name', 'chat_template'];

/** mergekit keys we know and refuse, with what to do instead. */
const REFUSED: Record<string, string> = {
  slices: 'slices are not supported; use models',
  tokenizer: 'the tokenizer block (per-token embedding sources) is not supported; use tokenizer_source: base',
  modules: 'modules (multi-module merges) are not supported',
  input_model_parameters: 'input_model_parameters are not supported; set parameters under each model',
};

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isScalar = (v: unknown): v is number | boolean | string =>
  (typeof v === 'number' && Number.isFinite(v)) || typeof v === 'boolean' || typeof v === 'string';

function checkKeys(o: Obj, valid: readonly string[], file: string, where: string): void {
  for (const k of Object.keys(o)) {
    if (valid.includes(k)) continue;
    if (REFUSED[k]) throw inputError('E_INPUT', `${where}${REFUSED[k]}`, file);
    throw inputError('E_INPUT', `${where}unknown key "${k}" (valid: ${valid.join(', ')})`, file);
  }
}

function scalarOrGradient(v: unknown, file: string, where: string): ParamSetting {
  if (isScalar(v)) return v;
  if (Array.isArray(v) && v.length > 0 && v.every(isScalar)) return v;
  throw inputError('E_INPUT', `${where}: expected a number, a list of numbers (a layer gradient) or {filter, value} entries, got ${JSON.stringify(v)}`, file);
}

function conditional(v: Obj, file: string, where: string): ConditionalParameter {
  checkKeys(v, ['filter', 'value'], file, `${where}: `);
  if (!('value' in v)) throw inputError('E_INPUT', `${where}: a {filter, value} entry needs a value`, file);
  if (v.filter !== undefined && v.filter !== null && typeof v.filter !== 'string') {
    throw inputError('E_INPUT', `${where}: filter must be a string (a substring of tensor names), got ${JSON.stringify(v.filter)}`, file);
  }
  const value = scalarOrGradient(v.value, file, `${where}.value`) as ConditionalParameter['value'];
  return typeof v.filter === 'string' ? { filter: v.filter, value } : { value };
}

function setting(v: unknown, file: string, where: string): ParamSetting {
  if (isObj(v)) return conditional(v, file, where);
  if (Array.isArray(v) && v.length > 0 && v.every(isObj)) return v.map((c, i) => conditional(c as Obj, file, `${where}[${i}]`));
  return scalarOrGradient(v, file, where);
}

function params(v: unknown, file: string, where: string): Record<string, ParamSetting> {
  if (v === undefined || v === null) return {};
  if (!isObj(v)) throw inputError('E_INPUT', `${where} must be a mapping of parameter names to values`, file);
  return Object.fromEntries(Object.entries(v).map(([k, s]) => [k, setting(s, file, `${where}.${k}`)]));
}

function modelPath(v: unknown, file: string, where: string): string {
  if (typeof v !== 'string' || v === '') {
    throw inputError('E_INPUT', `${where} must be a model folder path, got ${JSON.stringify(v)}`, file);
  }
  if (v.includes('+')) {
    throw inputError('E_INPUT', `${where} ${JSON.stringify(v)}: model+lora references are not supported; fold the adapter into a model first`, file);
  }
  return v;
}

function models(v: unknown, file: string): MergeModelRef[] {
  if (!Array.isArray(v) || v.length === 0) throw inputError('E_INPUT', 'models must be a non-empty list of {model, parameters}', file);
  return v.map((m, i) => {
    const where = `models[${i}]`;
    if (!isObj(m)) throw inputError('E_INPUT', `${where} must be a mapping with a model key, got ${JSON.stringify(m)}`, file);
    checkKeys(m, ['model', 'parameters'], file, `${where}: `);
    return { path: modelPath(m.model, file, `${where}.model`), params: params(m.parameters, file, `${where}.parameters`) };
  });
}

/** Reads a mergekit YAML recipe file (a regular file: a FIFO is refused). */
export async function readMergeRecipe(file: string): Promise<MergePlan> {
  return parseMergeRecipe(await readTextFile(file), file);
}

/** Parses a mergekit YAML recipe (`file` names it in messages), through the one strict YAML loader (io/yaml-file.ts). */
export function parseMergeRecipe(text: string, file = 'recipe'): MergePlan {
  const doc = parseYaml(text, file);
  if (!isObj(doc)) throw inputError('E_INPUT', 'a merge recipe is a YAML mapping (merge_method, models, ...)', file);
  checkKeys(doc, TOP_KEYS, file, '');
  if ('models' in doc && 'slices' in doc) throw inputError('E_INPUT', REFUSED.slices, file);
  if (typeof doc.merge_method !== 'string' || doc.merge_method === '') throw inputError('E_INPUT', 'merge_method is required (e.g. ties)', file);
  if (doc.chat_template !== undefined && doc.chat_template !== null) {
    throw inputError('E_INPUT', 'chat_template is not supported: the tokenizer source\'s chat template is copied as it is', file);
  }
  if (doc.name !== undefined && typeof doc.name !== 'string') throw inputError('E_INPUT', `name must be a string, got ${JSON.stringify(doc.name)}`, file);
  const where = (key: string): string => `${file}: ${key}`;
  const plan: MergePlan = {
    method: doc.merge_method,
    base: doc.base_model === undefined || doc.base_model === null ? undefined : modelPath(doc.base_model, file, 'base_model'),
    models: models(doc.models, file),
    params: params(doc.parameters, file, 'parameters'),
    tokenizerSource: parseTokenizerSource(doc.tokenizer_source, file),
    source: file,
  };
  if (doc.dtype !== undefined && doc.dtype !== null) plan.dtype = parseMergeDtype(doc.dtype, where('dtype'));
  if (doc.out_dtype !== undefined && doc.out_dtype !== null) plan.outDtype = parseMergeDtype(doc.out_dtype, where('out_dtype'));
  if (typeof doc.name === 'string') plan.name = doc.name;
  return plan;
}

const TORCH_NAMES = { bf16: 'bfloat16', f16: 'float16', f32: 'float32' } as const;

/** The plan as a mergekit recipe (written next to a merged model as mergekit_config.yml, as mergekit does). */
export function planToRecipe(plan: MergePlan): string {
  const doc: Record<string, unknown> = { merge_method: plan.method };
  if (plan.base) doc.base_model = plan.base;
  doc.models = plan.models.map((m) => (Object.keys(m.params).length ? { model: m.path, parameters: m.params } : { model: m.path }));
  if (Object.keys(plan.params).length) doc.parameters = plan.params;
  if (plan.dtype) doc.dtype = TORCH_NAMES[plan.dtype];
  if (plan.outDtype) doc.out_dtype = TORCH_NAMES[plan.outDtype];
  if (plan.tokenizerSource) doc.tokenizer_source = plan.tokenizerSource;
  if (plan.name) doc.name = plan.name;
  return stringify(doc);
}
