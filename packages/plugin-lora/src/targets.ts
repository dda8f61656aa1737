/**
 * Which modules get LoRA, and per-module rank / alpha, with PEFT's matching rules
 * (huggingface/peft src/peft/tuners/tuners_utils.py check_target_module_exists,
 * _maybe_include_all_linear_layers; utils/other.py get_pattern_key):
 *   target_modules list    a module matches a name exactly or as a dotted suffix (`key.endswith("." + t)`)
 *   target_modules regex   re.fullmatch(pattern, name)
 *   "all-linear"           every Linear except the output layer (lm_head)
 *   rank/alpha_pattern     the first key with re.match(rf"(.*\.)?({key})$", name) gives the value
 * A single target containing regex syntax (* + ? | ( ) [ ] { } ^ $ \) is a regex (PEFT's str form);
 * a single plain name is a list of one (as a regex it could never match a dotted module path).
 * JS and Python regexes agree on the syntax these patterns use (classes, groups, alternation,
 * quantifiers); Python-only syntax such as (?P<name>...) is refused as invalid.
 * Not here: what wrapping does (attach.ts), the options schema (config.ts).
 */
import { isLinear, PeftError, type Llama } from '@peft/core-tensor';
import { LoraLinear } from './layer.js';

export type TargetSpec =
  | { kind: 'names'; names: string[] }
  | { kind: 'regex'; pattern: string; re: RegExp }
  | { kind: 'all-linear' };

const REGEX_CHARS = /[*+?|()[\]{}^$\\]/;

function compile(source: string, what: string): RegExp {
  try {
    return new RegExp(source);
  } catch (e) {
    throw new PeftError('E_INPUT', `lora: ${what} is not a valid regular expression (${(e as Error).message})`);
  }
}

/** target_modules as given (list, or one string) -> what to match. */
export function parseTargets(value: readonly string[] | string): TargetSpec {
  const list = typeof value === 'string' ? [value] : [...value];
  if (list.length === 0) throw new PeftError('E_INPUT', 'lora: target_modules is empty');
  if (list.length === 1 && list[0].toLowerCase() === 'all-linear') return { kind: 'all-linear' };
  if (list.length === 1 && REGEX_CHARS.test(list[0])) {
    return { kind: 'regex', pattern: list[0], re: compile(`^(?:${list[0]})$`, `target_modules ${JSON.stringify(list[0])}`) };
  }
  for (const n of list) {
    if (!n || REGEX_CHARS.test(n)) throw new PeftError('E_INPUT', `lora: target_modules entry ${JSON.stringify(n)} is not a module name (a regex must be the only entry)`);
  }
  return { kind: 'names', names: [...new Set(list)].sort() };
}

export function matchesTarget(spec: TargetSpec, name: string): boolean {
  if (spec.kind === 'regex') return spec.re.test(name);
  if (spec.kind === 'names') return spec.names.some((t) => name === t || name.endsWith(`.${t}`));
  return false;
}

/**
 * The HF paths of the modules to wrap, in model order. Refuses a match that is not a Linear, the LM
 * head (the chunked loss reads its weight directly), a module already wrapped, and matching nothing.
 */
export function selectTargets(model: Llama, spec: TargetSpec): string[] {
  const modules = model.namedModules();
  const wrapped = modules.find(([, m]) => m instanceof LoraLinear);
  if (wrapped) throw new PeftError('E_INPUT', `lora: the model already has an adapter (${wrapped[0]}); one LoRA adapter per model`);
  const out: string[] = [];
  for (const [name, m] of modules) {
    if (name === '') continue;
    const hit = spec.kind === 'all-linear' ? isLinear(m) && name !== 'lm_head' : matchesTarget(spec, name);
    if (!hit) continue;
    if (name === 'lm_head') throw new PeftError('E_INPUT', 'lora: lm_head cannot be a LoRA target (the loss reads the head weight directly); all-linear leaves it out, as PEFT does');
    if (!isLinear(m)) throw new PeftError('E_INPUT', `lora: target_modules matches ${name}, which is not a Linear layer`);
    out.push(name);
  }
  if (out.length === 0) {
    const linears = model.namedModules().filter(([, m]) => isLinear(m)).map(([n]) => n.slice(n.lastIndexOf('.') + 1));
    throw new PeftError('E_INPUT', `lora: target_modules ${describeTargets(spec)} matched no module (Linear layers here: ${[...new Set(linears)].join(', ')})`);
  }
  return out;
}

export function describeTargets(spec: TargetSpec): string {
  return spec.kind === 'names' ? spec.names.join(',') : spec.kind === 'regex' ? JSON.stringify(spec.pattern) : 'all-linear';
}

/** target_modules as PEFT saves it: the sorted names, the regex, or all-linear expanded to full paths. */
export function targetsForConfig(spec: TargetSpec, wrapped: readonly string[]): string[] | string {
  if (spec.kind === 'names') return [...spec.names];
  if (spec.kind === 'regex') return spec.pattern;
  return [...wrapped].sort();
}

/**
 * rank_pattern / alpha_pattern: an object, a JSON object string, or "key=value,key=value". Keys must
 * compile as regexes; values are positive (integers for ranks).
 */
export function parsePattern(raw: unknown, what: string, integer: boolean): Record<string, number> {
  let obj: Record<string, unknown>;
  if (raw === undefined || raw === null || raw === '') return {};
  if (typeof raw === 'object' && !Array.isArray(raw)) obj = raw as Record<string, unknown>;
  else if (typeof raw === 'string' && raw.trim().startsWith('{')) {
    try {
      obj = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      throw new PeftError('E_INPUT', `lora: ${what} is not valid JSON: ${raw}`);
    }
  } else if (typeof raw === 'string') {
    obj = {};
    for (const pair of raw.split(',').map((p) => p.trim()).filter(Boolean)) {
      const eq = pair.lastIndexOf('=');
      if (eq <= 0) throw new PeftError('E_INPUT', `lora: ${what} entry ${JSON.stringify(pair)} is not key=value`);
      obj[pair.slice(0, eq).trim()] = Number(pair.slice(eq + 1));
    }
  } else throw new PeftError('E_INPUT', `lora: ${what} must be key=value pairs or an object, got ${JSON.stringify(raw)}`);
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (typeof v !== 'number' || !(v > 0) || (integer && !Number.isInteger(v))) {
      throw new PeftError('E_INPUT', `lora: ${what}["${k}"] must be a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(v)}`);
    }
    compile(k, `${what} key ${JSON.stringify(k)}`);
    out[k] = v;
  }
  return out;
}

/** PEFT's get_pattern_key: the value of the first key matching `name` at a dotted boundary, else undefined. */
export function patternValue(pattern: Readonly<Record<string, number>>, name: string): number | undefined {
  for (const [key, v] of Object.entries(pattern)) if (new RegExp(`^(?:.*\\.)?(?:${key})$`).test(name)) return v;
  return undefined;
}

/** A module's rank, alpha and scaling under `s` (LoraModel._create_and_replace + LoraLayer.update_layer). */
export function moduleRank(
  s: { r: number; loraAlpha: number; rankPattern: Record<string, number>; alphaPattern: Record<string, number>; useRslora: boolean },
  name: string,
): { r: number; alpha: number; scale: number } {
  const r = patternValue(s.rankPattern, name) ?? s.r;
  const alpha = patternValue(s.alphaPattern, name) ?? s.loraAlpha;
  return { r, alpha, scale: s.useRslora ? alpha / Math.sqrt(r) : alpha / r };
}
