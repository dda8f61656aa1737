/**
 * A merge plan: what `peft merge` does, whether it came from a mergekit recipe (recipe.ts) or from
 * command-line flags (`planFromFlags`). Both give the same MergePlan, so a recipe and the flags
 * that say the same thing merge the same way. Parameter values keep mergekit's forms (a scalar, a
 * list interpolated over layers, or {filter, value} entries); params.ts evaluates them per tensor.
 * Not here: which parameters a method has (the registry's merger entries), reading models.
 */
import { inputError } from '../../errors.js';

/** A value, or a list of values spread over the layers (mergekit's "gradient"). */
export type ScalarOrGradient = number | boolean | string | readonly (number | boolean | string)[];

/** `{filter: substring, value}`: applies to tensors whose name contains `filter` (no filter: any tensor). */
export interface ConditionalParameter {
  filter?: string;
  value: ScalarOrGradient;
}

export type ParamSetting = ScalarOrGradient | ConditionalParameter | readonly ConditionalParameter[];

export type MergeDtype = 'bf16' | 'f16' | 'f32';

export interface MergeModelRef {
  /** Model folder, as written in the recipe (relative paths are relative to the working directory, as mergekit). */
  path: string;
  /** Per-model parameters (mergekit's `models[i].parameters`). */
  params: Record<string, ParamSetting>;
}

export interface MergePlan {
  /** Merge method name (a registered merger). */
  method: string;
  base?: string;
  models: MergeModelRef[];
  /** Top-level parameters: global ones, and per-model ones that apply to every model. */
  params: Record<string, ParamSetting>;
  /** mergekit's `dtype` (of the computation there; here math is f32 and it is the output dtype). */
  dtype?: MergeDtype;
  /** Output dtype; defaults to `dtype`, then to each tensor's dtype in the base (or first) model. */
  outDtype?: MergeDtype;
  /** `base`: copy the base model's tokenizer; null (mergekit's default): the base's, else the first model's. */
  tokenizerSource: 'base' | null;
  name?: string;
  /** Where the plan comes from, for messages: the recipe file, or "command line". */
  source: string;
}

const DTYPE_NAMES: Record<string, MergeDtype> = {
  bfloat16: 'bf16', bf16: 'bf16', float16: 'f16', fp16: 'f16', f16: 'f16', half: 'f16', float32: 'f32', fp32: 'f32', f32: 'f32', float: 'f32',
};

/** mergekit's dtype names (`bfloat16`, `torch.float16`, ...) and ours (`bf16`, `f16`, `f32`). */
export function parseMergeDtype(value: unknown, where: string): MergeDtype {
  const key = typeof value === 'string' ? value.replace(/^torch\./, '') : '';
  const d = DTYPE_NAMES[key];
  if (!d) throw inputError('E_INPUT', `${where}: unsupported dtype ${JSON.stringify(value)} (use bfloat16, float16 or float32)`);
  return d;
}

/** tokenizer_source: base or none; mergekit's union / model:X need vocabulary permutation, refused by name. */
export function parseTokenizerSource(value: unknown, where: string): 'base' | null {
  if (value === null || value === undefined || value === 'base') return (value as 'base') ?? null;
  if (value === 'union' || (typeof value === 'string' && value.startsWith('model:'))) {
    throw inputError('E_INPUT', `${where}: tokenizer_source ${JSON.stringify(value)} is not supported (it needs a vocabulary permutation of the embeddings); use base or leave it out`);
  }
  throw inputError('E_INPUT', `${where}: tokenizer_source must be base (or absent), got ${JSON.stringify(value)}`);
}

export interface MergeFlags {
  method: string;
  base?: string;
  /** Model folders, or folders with their own parameters. */
  models: readonly (string | { path: string; params?: Record<string, unknown> })[];
  /**
   * Top-level parameters as typed on a command line (`--weight 0.5 --density 0.5`): numbers, booleans
   * or strings; a comma-separated string of numbers ("0,0.5,1") is a layer gradient.
   */
  params?: Record<string, unknown>;
  dtype?: string;
  outDtype?: string;
  tokenizerSource?: string | null;
}

function flagValue(key: string, v: unknown): ParamSetting {
  if (typeof v === 'number' || typeof v === 'boolean') return v;
  if (typeof v === 'string' && v.includes(',')) {
    const parts = v.split(',').map((s) => s.trim());
    const nums = parts.map(Number);
    if (parts.some((p) => p === '') || nums.some((x) => !Number.isFinite(x))) {
      throw inputError('E_INPUT', `--${key.replace(/_/g, '-')}: ${JSON.stringify(v)} is not a number or a comma-separated list of numbers`);
    }
    return nums;
  }
  if (typeof v === 'string') {
    // the same types a recipe would carry: 0.5, true, 'sum'
    if (v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
    return v === 'true' ? true : v === 'false' ? false : v;
  }
  throw inputError('E_INPUT', `--${key}: unsupported value ${JSON.stringify(v)}`);
}

function flagParams(params: Record<string, unknown> | undefined): Record<string, ParamSetting> {
  const out: Record<string, ParamSetting> = {};
  for (const [k, v] of Object.entries(params ?? {})) if (v !== undefined) out[k] = flagValue(k, v);
  return out;
}

/** The plan `peft merge --method M --base B --model M1 --model M2 --weight 0.5 ...` describes. */
export function planFromFlags(f: MergeFlags): MergePlan {
  if (!f.method) throw inputError('E_INPUT', '--method is required without a recipe');
  if (!f.models.length) throw inputError('E_INPUT', 'no models to merge: pass --model at least once');
  return {
    method: f.method,
    base: f.base,
    models: f.models.map((m) => (typeof m === 'string' ? { path: m, params: {} } : { path: m.path, params: flagParams(m.params) })),
    params: flagParams(f.params),
    dtype: f.dtype === undefined ? undefined : parseMergeDtype(f.dtype, '--dtype'),
    outDtype: f.outDtype === undefined ? undefined : parseMergeDtype(f.outDtype, '--out-dtype'),
    tokenizerSource: parseTokenizerSource(f.tokenizerSource ?? null, 'command line'),
    source: 'command line',
  };
}
