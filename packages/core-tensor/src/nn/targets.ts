/**
 * PEFT target matching, for every adapter method: which modules of a model an adapter wraps
 * (huggingface/peft src/peft/tuners/tuners_utils.py check_target_module_exists,
 * _maybe_include_all_linear_layers, inject_adapter; utils/other.py match_target_against_key):
 *   target_modules list    a module matches a name exactly or as a dotted suffix (`key.endswith("." + t)`)
 *   target_modules regex   re.fullmatch(pattern, name)
 *   "all-linear"           every Linear except the output layer (lm_head)
 *   layers_to_transform    list targets only: the module's layer index must be listed; the index is the
 *                          number after `<layers_pattern>.` (any name when there is no pattern)
 *   exclude_modules        a list or a regex, matched like target_modules; an excluded module never matches
 * Rules come from a method's options (`parseTargets`: one string with regex syntax is a regex, one plain
 * name a list of one) or from a saved adapter_config.json (`peftTargetRules`: PEFT's types decide, a
 * string is a regex). JS and Python regexes agree on the syntax these patterns use (classes, groups,
 * alternation, quantifiers); Python-only syntax such as (?P<name>...) is refused as invalid.
 * Not here: what a method does to the modules (the method), rank / alpha patterns (the method).
 */
import { inputError, PeftError } from '../errors.js';
import { isLinear } from './linear.js';
import type { Module } from './module.js';

export type TargetSpec =
  | { kind: 'names'; names: string[] }
  | { kind: 'regex'; pattern: string; re: RegExp }
  | { kind: 'all-linear' };

export interface TargetRules {
  targets: TargetSpec;
  /** layers_to_transform; absent or empty = every layer. */
  layers?: readonly number[];
  /** layers_pattern, compiled: `^.*?\.<pattern>\.(\d+)\.` each (PEFT's re.match); absent = any name. */
  layerRes?: readonly RegExp[];
  /** exclude_modules ('all-linear' is not an exclusion). */
  exclude?: Exclude<TargetSpec, { kind: 'all-linear' }>;
}

const REGEX_CHARS = /[*+?|()[\]{}^$\\]/;
/** PEFT's default layer index: the first number after a dotted name (lazy, so MoE expert indices are skipped). */
const ANY_LAYER = /^.*?\.[^.]*\.(\d+)\./;

function compile(source: string, what: string, code: 'E_INPUT' | 'E_FORMAT' = 'E_INPUT', where?: string): RegExp {
  try {
    return new RegExp(source);
  } catch (e) {
    throw inputError(code, `${what} is not a valid regular expression (${(e as Error).message})`, where);
  }
}

const fullMatch = (pattern: string, what: string, code?: 'E_INPUT' | 'E_FORMAT', where?: string): TargetSpec =>
  ({ kind: 'regex', pattern, re: compile(`^(?:${pattern})$`, what, code, where) });

/** target_modules as a method option gives it (list, or one string) -> what to match. */
export function parseTargets(value: readonly string[] | string): TargetSpec {
  const list = typeof value === 'string' ? [value] : [...value];
  if (list.length === 0) throw new PeftError('E_INPUT', 'target_modules is empty');
  if (list.length === 1 && list[0].toLowerCase() === 'all-linear') return { kind: 'all-linear' };
  if (list.length === 1 && REGEX_CHARS.test(list[0])) return fullMatch(list[0], `target_modules ${JSON.stringify(list[0])}`);
  for (const n of list) {
    if (!n || REGEX_CHARS.test(n)) throw new PeftError('E_INPUT', `target_modules entry ${JSON.stringify(n)} is not a module name (a regex must be the only entry)`);
  }
  return { kind: 'names', names: [...new Set(list)].sort() };
}

const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/**
 * The rules of a saved PEFT config (adapter_config.json): target_modules (a string is a regex or
 * all-linear, a list is names; absent = `fallback`, PEFT's per-architecture default of the method),
 * layers_to_transform, layers_pattern, exclude_modules. A field of the wrong type is E_FORMAT.
 */
export function peftTargetRules(config: Record<string, unknown>, fallback: readonly string[], where: string): TargetRules {
  const bad = (field: string) => inputError('E_FORMAT', `${field} ${JSON.stringify(config[field])} is not what PEFT writes there`, where);
  const tm = config.target_modules ?? [...fallback];
  let targets: TargetSpec;
  if (typeof tm === 'string') targets = tm.toLowerCase() === 'all-linear' ? { kind: 'all-linear' } : fullMatch(tm, `target_modules ${JSON.stringify(tm)}`, 'E_FORMAT', where);
  else if (isStrings(tm)) targets = { kind: 'names', names: [...new Set(tm)].sort() };
  else throw bad('target_modules');
  const rules: TargetRules = { targets };
  const lt = config.layers_to_transform;
  if (Number.isSafeInteger(lt)) rules.layers = [lt as number];
  else if (Array.isArray(lt) && lt.every(Number.isSafeInteger)) rules.layers = lt as number[];
  else if (lt !== undefined && lt !== null) throw bad('layers_to_transform');
  const lp = config.layers_pattern;
  const patterns = typeof lp === 'string' ? (lp ? [lp] : []) : isStrings(lp) ? lp : lp === undefined || lp === null ? [] : undefined;
  if (!patterns) throw bad('layers_pattern');
  if (patterns.length) rules.layerRes = patterns.map((p) => compile(`^.*?\\.${p}\\.(\\d+)\\.`, `layers_pattern ${JSON.stringify(p)}`, 'E_FORMAT', where));
  const ex = config.exclude_modules;
  if (typeof ex === 'string' && ex) rules.exclude = fullMatch(ex, `exclude_modules ${JSON.stringify(ex)}`, 'E_FORMAT', where) as TargetRules['exclude'];
  else if (isStrings(ex) && ex.length) rules.exclude = { kind: 'names', names: [...ex] };
  else if (ex !== undefined && ex !== null && !(isStrings(ex) || ex === '')) throw bad('exclude_modules');
  return rules;
}

const asRules = (r: TargetRules | TargetSpec): TargetRules => ('targets' in r ? r : { targets: r });

function nameHit(spec: TargetSpec, name: string): boolean {
  if (spec.kind === 'regex') return spec.re.test(name);
  if (spec.kind === 'names') return spec.names.some((t) => name === t || name.endsWith(`.${t}`));
  return false;
}

/** The layer index PEFT reads from `name` under `rules`, or undefined. */
function layerIndex(rules: TargetRules, name: string): number | undefined {
  for (const re of rules.layerRes ?? [ANY_LAYER]) {
    const m = re.exec(name);
    if (m) return Number(m[1]);
  }
  return undefined;
}

function isExcluded(r: TargetRules, name: string): boolean {
  return !!r.exclude && nameHit(r.exclude, name);
}

/**
 * check_target_module_exists for module `name`: excluded modules never match; all-linear matches a
 * Linear (`linear`, by name alone: true) other than lm_head; layers_to_transform filters list
 * matches that are not exact names.
 */
export function matchesTarget(rules: TargetRules | TargetSpec, name: string, linear = true): boolean {
  const r = asRules(rules);
  if (isExcluded(r, name)) return false;
  const t = r.targets;
  if (t.kind === 'all-linear') return linear && name !== 'lm_head';
  if (t.kind === 'regex') return t.re.test(name);
  if (t.names.includes(name)) return true;
  if (!nameHit(t, name)) return false;
  if (!r.layers?.length) return true;
  const index = layerIndex(r, name);
  return index !== undefined && r.layers.includes(index);
}

export function describeTargets(spec: TargetSpec): string {
  return spec.kind === 'names' ? spec.names.join(',') : spec.kind === 'regex' ? JSON.stringify(spec.pattern) : 'all-linear';
}

function layerNote(r: TargetRules): string {
  return r.layers?.length ? ` (layers_to_transform ${r.layers.join(',')})` : '';
}

/**
 * The HF paths of the modules an adapter wraps, in model order, as inject_adapter chooses them.
 * Refuses a match that is not a Linear, the LM head (the chunked loss reads its weight directly), and
 * matching nothing (PEFT raises NoMatchingPeftModuleError there too). `label` names the method in messages.
 */
export function selectTargets(model: Module, rules: TargetRules | TargetSpec, label = 'an adapter'): string[] {
  const r = asRules(rules);
  const out: string[] = [];
  let excluded = 0;
  for (const [name, m] of model.namedModules()) {
    if (name === '') continue;
    const linear = isLinear(m);
    if (!matchesTarget(r, name, linear)) {
      if (isExcluded(r, name) && matchesTarget({ ...r, exclude: undefined }, name, linear)) excluded++;
      continue;
    }
    if (name === 'lm_head') throw new PeftError('E_INPUT', `lm_head cannot be ${label} target (the loss reads the head weight directly); all-linear leaves it out, as PEFT does`);
    if (!(isLinear(m))) throw new PeftError('E_INPUT', `target_modules matches ${name}, which is not a Linear layer`);
    out.push(name);
  }
  if (out.length) return out;
  if (excluded) throw new PeftError('E_INPUT', `every module target_modules ${describeTargets(r.targets)} matches is in exclude_modules (PEFT: "All modules were excluded")`);
  const linears = model.namedModules().filter(([, m]) => isLinear(m)).map(([n]) => n.slice(n.lastIndexOf('.') + 1));
  throw new PeftError('E_INPUT', `target_modules ${describeTargets(r.targets)}${layerNote(r)} matched no module (Linear layers here: ${[...new Set(linears)].join(', ')}); ` +
    'PEFT refuses this too ("Target modules ... not found in the base model")');
}

/** target_modules as PEFT saves it: the sorted names, the regex, or all-linear expanded to full paths. */
export function targetsForConfig(spec: TargetSpec, wrapped: readonly string[]): string[] | string {
  if (spec.kind === 'names') return [...spec.names];
  if (spec.kind === 'regex') return spec.pattern;
  return [...wrapped].sort();
}
