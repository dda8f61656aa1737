/**
 * LoRA options: the schema `peft train --set key=value` and recipes are checked against, the typed
 * settings the method works with, and the two directions to and from PEFT's adapter_config.json
 * (LoraConfig in huggingface/peft src/peft/tuners/lora/config.py; field names and defaults as PEFT
 * 0.17 writes them). Only what this plugin implements is accepted: LoRA, rsLoRA, DoRA and the inits
 * true | false | gaussian | pissa | pissa_niter_K | olora | loftq.
 * Not here: which modules match (core nn/targets.ts, targets.ts), the layer math (layer.ts, variants/), file I/O (save.ts, load.ts).
 */
import { peftTargetRules, PeftError, resolveOptions, type OptionsSchema, type ResolvedOptions, type TargetRules } from '@peft/core-tensor';
import { parsePattern, parseTargets, type TargetSpec } from './targets.js';

/** What init_lora_weights asks for; `pissa_niter_K` is accepted and done with the exact SVD. */
export type InitKind = 'default' | 'random' | 'gaussian' | 'pissa' | 'olora' | 'loftq';

export interface LoraSettings {
  r: number;
  loraAlpha: number;
  dropout: number;
  targets: TargetSpec;
  rankPattern: Record<string, number>;
  alphaPattern: Record<string, number>;
  bias: 'none' | 'all' | 'lora_only';
  useRslora: boolean;
  useDora: boolean;
  init: InitKind;
  /** init_lora_weights as PEFT's config spells it (true, false, "gaussian", "pissa_niter_16", ...). */
  initValue: boolean | string;
  loftqIter: number;
  loftqBits: number;
}

/** PEFT's default for Llama (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING["llama"]). */
export const DEFAULT_TARGETS = ['q_proj', 'v_proj'] as const;
/** The PEFT release whose adapter_config.json layout save() writes. */
export const PEFT_VERSION = '0.17.0';

export const LORA_OPTIONS = {
  r: { type: 'integer', min: 1, default: 8, description: 'LoRA rank' },
  lora_alpha: { type: 'number', min: 0, default: 8, description: 'Scaling numerator: scaling = lora_alpha / r (rsLoRA: / sqrt r)' },
  lora_dropout: { type: 'number', min: 0, max: 0.99, default: 0, description: 'Dropout on the LoRA input' },
  target_modules: {
    type: 'list', default: DEFAULT_TARGETS,
    description: 'Module names (exact or dotted suffix), one regex (full match, as PEFT), or all-linear (every Linear but lm_head)',
  },
  rank_pattern: { type: 'string', default: '', description: 'Per-module ranks: "q_proj=4,down_proj=16" or a JSON object string; keys are regexes matched at a name boundary' },
  alpha_pattern: { type: 'string', default: '', description: 'Per-module lora_alpha, same syntax as rank_pattern' },
  bias: { type: 'enum', choices: ['none', 'all', 'lora_only'], default: 'none', description: 'Which biases also train (and are saved)' },
  use_rslora: { type: 'boolean', default: false, description: 'Rank-stabilized scaling lora_alpha / sqrt(r)' },
  use_dora: { type: 'boolean', default: false, description: 'DoRA: a trainable magnitude per output row' },
  init_lora_weights: {
    type: 'string', default: 'true',
    description: 'true | false | gaussian | pissa | pissa_niter_K (exact SVD) | olora | loftq',
  },
  loftq_iter: { type: 'integer', min: 1, default: 1, description: 'LoftQ alternating iterations' },
  loftq_bits: { type: 'integer', min: 2, max: 8, default: 4, description: 'LoftQ bits (4 = NF4, the only one supported)' },
} as const satisfies OptionsSchema;

const REGEX_CHARS = /[*+?|()[\]{}^$\\]/;

/**
 * resolveOptions for LoRA, accepting what recipes carry beyond the core's scalar option types:
 * rank_pattern / alpha_pattern as objects ({q_proj: 4}), init_lora_weights as a boolean, and a
 * target_modules regex containing commas (kept whole instead of being split as a list). Everything
 * else goes through the core unchanged. Callers holding raw recipe values should use this rather
 * than the core's resolveOptions (which refuses objects and booleans for string options).
 */
export function resolveLoraOptions(given: Record<string, unknown>): ResolvedOptions {
  const g = { ...given };
  for (const key of ['rank_pattern', 'alpha_pattern']) {
    const v = g[key];
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) g[key] = JSON.stringify(v);
  }
  if (typeof g.target_modules === 'string' && REGEX_CHARS.test(g.target_modules)) g.target_modules = [g.target_modules];
  if (typeof g.init_lora_weights === 'boolean') g.init_lora_weights = String(g.init_lora_weights); // PEFT's own spelling
  return resolveOptions('lora', LORA_OPTIONS, g);
}

function parseInit(raw: unknown): { init: InitKind; initValue: boolean | string } {
  const v = typeof raw === 'boolean' ? String(raw) : String(raw ?? 'true').trim();
  const lower = v.toLowerCase();
  if (lower === 'true') return { init: 'default', initValue: true };
  if (lower === 'false') return { init: 'random', initValue: false };
  if (lower === 'gaussian' || lower === 'olora' || lower === 'loftq') return { init: lower, initValue: lower };
  if (lower === 'pissa' || /^pissa_niter_\d+$/.test(lower)) return { init: 'pissa', initValue: lower };
  throw new PeftError('E_INPUT', `lora: init_lora_weights ${JSON.stringify(v)} is not supported (true, false, gaussian, pissa, pissa_niter_K, olora, loftq)`);
}

const num = (o: ResolvedOptions, k: string) => o[k] as number;

/** The typed settings of resolved options (resolveOptions / resolveLoraOptions output). */
export function settingsFromOptions(o: ResolvedOptions): LoraSettings {
  const s: LoraSettings = {
    r: num(o, 'r'), loraAlpha: num(o, 'lora_alpha'), dropout: num(o, 'lora_dropout'),
    targets: parseTargets(o.target_modules as readonly string[] | string | undefined ?? DEFAULT_TARGETS),
    rankPattern: parsePattern(o.rank_pattern, 'rank_pattern', true),
    alphaPattern: parsePattern(o.alpha_pattern, 'alpha_pattern', false),
    bias: (o.bias ?? 'none') as LoraSettings['bias'], useRslora: o.use_rslora === true, useDora: o.use_dora === true,
    ...parseInit(o.init_lora_weights), loftqIter: num(o, 'loftq_iter') ?? 1, loftqBits: num(o, 'loftq_bits') ?? 4,
  };
  if (s.init === 'loftq' && s.loftqBits !== 4) {
    throw new PeftError('E_INPUT', `lora: loftq_bits ${s.loftqBits} is not supported: only 4 (NF4, bitsandbytes' layout); PEFT's 2/8-bit LoftQ uses its own non-bitsandbytes quantizer`);
  }
  return s;
}

/** Python's `json` writes these PEFT fields as given; absent ones get LoraConfig's defaults. */
function loftqConfig(s: LoraSettings): Record<string, number> {
  return s.init === 'loftq' ? { loftq_bits: s.loftqBits, loftq_iter: s.loftqIter } : {};
}

export interface ConfigExtras {
  /** target_modules as saved: a sorted list of names, a regex string, or the expanded all-linear list. */
  targetModules: string[] | string;
  baseModelName: string;
}

/**
 * adapter_config.json as PEFT 0.17's LoraConfig.to_dict() + save_pretrained write it (every field,
 * its default where we do not use it). `inference_mode: true` and the base-model name are also
 * enforced by core's writePeftAdapter.
 */
export function peftConfig(s: LoraSettings, x: ConfigExtras): Record<string, unknown> {
  return {
    alpha_pattern: { ...s.alphaPattern }, auto_mapping: null, base_model_name_or_path: x.baseModelName, bias: s.bias,
    corda_config: null, eva_config: null, exclude_modules: null, fan_in_fan_out: false, inference_mode: true,
    init_lora_weights: s.initValue, layer_replication: null, layers_pattern: null, layers_to_transform: null,
    loftq_config: loftqConfig(s), lora_alpha: s.loraAlpha, lora_bias: false, lora_dropout: s.dropout,
    megatron_config: null, megatron_core: 'megatron.core', modules_to_save: null, peft_type: 'LORA',
    peft_version: PEFT_VERSION, qalora_group_size: 16, r: s.r, rank_pattern: { ...s.rankPattern }, revision: null,
    target_modules: x.targetModules, target_parameters: null, task_type: 'CAUSAL_LM', trainable_token_indices: null,
    use_dora: s.useDora, use_qalora: false, use_rslora: s.useRslora,
  };
}

/** The modules a saved config chooses (PEFT's rules; no target_modules = PEFT's Llama default, q_proj and v_proj). */
export function loraTargetRules(c: Record<string, unknown>, where: string): TargetRules {
  return peftTargetRules(c, DEFAULT_TARGETS, where);
}

/** What loading and delta() read from a saved config; `rules` choose the modules, as PEFT's inject_adapter does. */
export type SavedLoraSettings = Pick<LoraSettings, 'r' | 'loraAlpha' | 'rankPattern' | 'alphaPattern' | 'useRslora' | 'useDora' | 'bias'> & { rules: TargetRules };

/**
 * Reads the fields loading and delta() need from a PEFT LoRA config, refusing what we cannot apply.
 * No target_modules means PEFT's default for the architecture (DEFAULT_TARGETS for the Llama family).
 */
export function settingsFromPeftConfig(c: Record<string, unknown>, where: string): SavedLoraSettings {
  const bad = (msg: string) => new PeftError('E_FORMAT', `${where}: ${msg}`);
  if (c.peft_type !== 'LORA') throw bad(`peft_type is ${JSON.stringify(c.peft_type)}, not "LORA"`);
  if (c.fan_in_fan_out === true) throw bad('fan_in_fan_out adapters (GPT-2 Conv1D layout) are not supported');
  const positive = (k: string, dflt: number) => {
    const v = c[k] ?? dflt;
    if (typeof v !== 'number' || !(v > 0)) throw bad(`${k} must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  };
  const pattern = (k: string, integer: boolean) => {
    try {
      return parsePattern(c[k] ?? {}, k, integer);
    } catch (e) {
      throw bad((e as Error).message);
    }
  };
  return {
    r: positive('r', 8), loraAlpha: positive('lora_alpha', 8), rankPattern: pattern('rank_pattern', true),
    alphaPattern: pattern('alpha_pattern', false), useRslora: c.use_rslora === true, useDora: c.use_dora === true,
    bias: (['all', 'lora_only'].includes(c.bias as string) ? c.bias : 'none') as LoraSettings['bias'],
    rules: loraTargetRules(c, where),
  };
}
