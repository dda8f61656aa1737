/**
 * LoRA's side of target matching: which modules get LoRA is the core's PEFT matching (core
 * nn/targets.ts: target_modules names / regex / all-linear, layers_to_transform, exclude_modules);
 * here are what LoRA adds, with PEFT's rules (huggingface/peft src/peft/utils/other.py
 * get_pattern_key, tuners/lora/model.py _create_and_replace):
 *   one LoRA adapter per model   a model that already has LoraLinear modules is refused
 *   rank/alpha_pattern           the first key with re.match(rf"(.*\.)?({key})$", name) gives the value
 * Not here: what wrapping does (attach.ts), the options schema (config.ts).
 */
import { PeftError, selectTargets as selectModules, type Module, type TargetRules, type TargetSpec } from '@peft/core-tensor';
import { LoraLinear } from './layer.js';

export { parseTargets, targetsForConfig, type TargetSpec } from '@peft/core-tensor';

/** The HF paths of the modules to wrap, in model order (core selectTargets); refuses a model that already has LoRA. */
export function selectTargets(model: Module, rules: TargetRules | TargetSpec): string[] {
  const wrapped = model.namedModules().find(([, m]) => m instanceof LoraLinear);
  if (wrapped) throw new PeftError('E_INPUT', `lora: the model already has an adapter (${wrapped[0]}); one LoRA adapter per model`);
  return selectModules(model, rules, 'a LoRA');
}

function compile(source: string, what: string): RegExp {
  try {
    return new RegExp(source);
  } catch (e) {
    throw new PeftError('E_INPUT', `lora: ${what} is not a valid regular expression (${(e as Error).message})`);
  }
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
