/**
 * Parameter values per tensor, as mergekit resolves them (mergekit/config.py evaluate_setting and
 * ConfigReader.parameter; mergekit/plan.py for the layer position):
 * - a scalar is itself;
 * - a list of numbers is a gradient over the layers: at position t in [0, 1],
 *   x = t (len - 1), i = floor(x), value = (1 - frac) s[i] + frac s[min(i + 1, len - 1)];
 *   a list of other scalars takes s[floor(t (len - 1))];
 * - {filter, value} entries: the first whose filter is absent, "*", or a substring of the tensor
 *   name; none matching means "not set here", so the next level is asked.
 * Levels: a model's own parameters, then the top-level ones, then the method's default.
 * Layer position: layer i of L has t = i / (L - 1) (t = 1 when L = 1); tensors outside the layers
 * are mergekit's pre-weights (embeddings, t = 0) or post-weights (final norm, lm_head, t = 1).
 * Not here: parsing recipes (recipe.ts), the method's checks (MergerDef.checkParams).
 */
import { inputError } from '../../errors.js';
import type { MergeParams, MergerDef } from '../../plugin/merger.js';
import { resolveOptions, type OptionValue, type ResolvedOptions } from '../../plugin/options.js';
import type { ConditionalParameter, MergeModelRef, MergePlan, ParamSetting } from './plan.js';

const isScalar = (v: unknown): v is number | boolean | string => typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string';

function matches(c: ConditionalParameter, tensorName: string): boolean {
  return c.filter === undefined || c.filter === '*' || tensorName.includes(c.filter);
}

/** The value of `s` for tensor `tensorName` at layer position `t`; undefined when no filter matches. */
export function evaluateSetting(s: ParamSetting, tensorName: string, t: number): OptionValue | undefined {
  if (isScalar(s)) return s;
  if (Array.isArray(s)) {
    if (s.every((x) => typeof x === 'number')) {
      const nums = s as readonly number[];
      const scaled = t * (nums.length - 1);
      const i0 = Math.trunc(scaled);
      const i1 = Math.min(nums.length - 1, i0 + 1);
      const frac = scaled - i0;
      return (1 - frac) * nums[i0] + frac * nums[i1];
    }
    if (s.every(isScalar)) return s[Math.trunc(t * (s.length - 1))] as OptionValue;
    const hit = (s as readonly ConditionalParameter[]).find((c) => matches(c, tensorName));
    return hit ? evaluateSetting(hit.value, tensorName, t) : undefined;
  }
  const c = s as ConditionalParameter;
  return matches(c, tensorName) ? evaluateSetting(c.value, tensorName, t) : undefined;
}

const LAYER = /(?:^|\.)layers\.(\d+)\./;

/** mergekit's t of a tensor in a model of `numLayers` layers. */
export function layerPosition(name: string, numLayers: number): number {
  const m = LAYER.exec(name);
  if (!m) return /embed/.test(name) ? 0 : 1;
  return numLayers > 1 ? Number(m[1]) / (numLayers - 1) : 1;
}

/** Refuses parameter names the method does not have, by name, before any tensor is looked at. */
export function checkParamNames(def: MergerDef, plan: MergePlan, models: readonly MergeModelRef[]): void {
  const global = Object.keys(def.options);
  const perModel = Object.keys(def.perModelOptions);
  const valid = `global: ${global.join(', ') || 'none'}; per model: ${perModel.join(', ') || 'none'}`;
  for (const k of Object.keys(plan.params)) {
    if (!global.includes(k) && !perModel.includes(k)) {
      throw inputError('E_INPUT', `parameters: ${def.name} has no parameter "${k}" (${valid})`, plan.source);
    }
  }
  for (const m of models) {
    for (const k of Object.keys(m.params)) {
      if (perModel.includes(k)) continue;
      const why = global.includes(k) ? `"${k}" is a global parameter of ${def.name}; set it under the top-level parameters` : `${def.name} has no parameter "${k}" (${valid})`;
      throw inputError('E_INPUT', `model ${m.path}: ${why}`, plan.source);
    }
  }
}

function evaluated(settings: Record<string, ParamSetting>[], keys: readonly string[], name: string, t: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    for (const level of settings) {
      if (!(k in level)) continue;
      const v = evaluateSetting(level[k], name, t);
      if (v !== undefined) {
        out[k] = v;
        break;
      }
    }
  }
  return out;
}

function requireSet(def: MergerDef, plan: MergePlan, o: ResolvedOptions, keys: readonly string[], tensor: string, model?: string): void {
  for (const k of def.required ?? []) {
    if (keys.includes(k) && o[k] === undefined) {
      const whose = model ? ` for model ${model}` : '';
      throw inputError('E_INPUT', `${def.name} needs parameter "${k}"${whose} (tensor ${tensor}); set it in parameters`, plan.source);
    }
  }
}

/** Global and per-model options of one tensor, defaults filled, types and required names checked. */
export function resolveTensorParams(
  def: MergerDef, plan: MergePlan, models: readonly MergeModelRef[], name: string, shape: readonly number[], t: number,
): MergeParams {
  const globalKeys = Object.keys(def.options);
  const modelKeys = Object.keys(def.perModelOptions);
  const global = resolveOptions(`${plan.source}: ${def.name}`, def.options, evaluated([plan.params], globalKeys, name, t));
  requireSet(def, plan, global, globalKeys, name);
  const perModel = models.map((m) => {
    const given = evaluated([m.params, plan.params], modelKeys, name, t);
    const o = resolveOptions(`${plan.source}: ${def.name} (model ${m.path})`, def.perModelOptions, given);
    requireSet(def, plan, o, modelKeys, name, m.path);
    return o;
  });
  return { name, shape, global, perModel };
}
