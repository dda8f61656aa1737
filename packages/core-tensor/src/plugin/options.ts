/**
 * Options schemas: how a plugin declares the knobs of a method, quantizer, merger, ...
 * The CLI validates `--set key=value` pairs and recipe values against a schema with
 * `resolveOptions` and prints the schema in `peft methods`. Values from the command line
 * arrive as strings; values from recipes/JSON arrive typed. Both go through the same coercion.
 */
import { PeftError } from '../errors.js';
import { isReservedKey, reservedKeyError } from '../reserved-keys.js';

export type OptionSpec =
  | { type: 'integer' | 'number'; description: string; default?: number; min?: number; max?: number; powerOfTwo?: boolean }
  | { type: 'boolean'; description: string; default?: boolean }
  | { type: 'string'; description: string; default?: string }
  | { type: 'enum'; description: string; choices: readonly string[]; default?: string }
  | { type: 'list'; description: string; default?: readonly string[] };

export type OptionsSchema = Readonly<Record<string, OptionSpec>>;

export type OptionValue = number | boolean | string | readonly string[];
export type ResolvedOptions = Record<string, OptionValue | undefined>;

/** One line per option, e.g. `blocksize  integer 32..4096, power of two (default 64)  Block size of ...` */
export function describeOption(spec: OptionSpec): string {
  switch (spec.type) {
    case 'integer':
    case 'number': {
      const range = spec.min !== undefined || spec.max !== undefined ? ` ${spec.min ?? '-inf'}..${spec.max ?? 'inf'}` : '';
      return `${spec.type}${range}${spec.powerOfTwo ? ', power of two' : ''}`;
    }
    case 'enum':
      return spec.choices.join('|');
    case 'list':
      return 'comma-separated list';
    default:
      return spec.type;
  }
}

function bad(owner: string, key: string, spec: OptionSpec, got: unknown): PeftError {
  return new PeftError('E_INPUT', `${owner}: invalid value ${JSON.stringify(got)} for option "${key}": expected ${describeOption(spec)}`);
}

function coerce(owner: string, key: string, spec: OptionSpec, raw: unknown): OptionValue {
  switch (spec.type) {
    case 'integer':
    case 'number': {
      const v = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
      if (!Number.isFinite(v) || (spec.type === 'integer' && !Number.isInteger(v))) throw bad(owner, key, spec, raw);
      if ((spec.min !== undefined && v < spec.min) || (spec.max !== undefined && v > spec.max)) throw bad(owner, key, spec, raw);
      if (spec.powerOfTwo && (v & (v - 1)) !== 0) throw bad(owner, key, spec, raw);
      return v;
    }
    case 'boolean': {
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1' || raw === 'yes') return true;
      if (raw === 'false' || raw === '0' || raw === 'no') return false;
      throw bad(owner, key, spec, raw);
    }
    case 'enum': {
      if (typeof raw !== 'string' || !spec.choices.includes(raw)) throw bad(owner, key, spec, raw);
      return raw;
    }
    case 'list': {
      if (Array.isArray(raw) && raw.every((s) => typeof s === 'string')) return raw as string[];
      if (typeof raw === 'string') return raw.split(',').map((s) => s.trim()).filter(Boolean);
      throw bad(owner, key, spec, raw);
    }
    case 'string': {
      // Recipes arrive typed: a scalar stands for its text (`init_lora_weights: false`), a mapping for
      // its JSON (`rank_pattern: {q_proj: 4}`); the method parses the string either way.
      if (typeof raw === 'string') return raw;
      if (typeof raw === 'number' || typeof raw === 'boolean') return String(raw);
      if (raw !== null && typeof raw === 'object' && !Array.isArray(raw)) return JSON.stringify(raw);
      throw bad(owner, key, spec, raw);
    }
  }
}

/**
 * Validate and complete `given` against `schema`: unknown keys are refused with the valid names
 * listed; defaults fill what is not given. `owner` names the method in messages ("nf4", "lora").
 */
export function resolveOptions(owner: string, schema: OptionsSchema, given: Record<string, unknown>): ResolvedOptions {
  const out: ResolvedOptions = {};
  for (const key of Object.keys(given)) {
    if (isReservedKey(key)) throw reservedKeyError(key, owner);
    if (!Object.prototype.hasOwnProperty.call(schema, key)) {
      const valid = Object.keys(schema);
      throw new PeftError('E_INPUT', `${owner}: unknown option "${key}" (valid: ${valid.length ? valid.join(', ') : 'none'})`);
    }
  }
  for (const [key, spec] of Object.entries(schema)) {
    const raw = given[key];
    out[key] = raw === undefined ? spec.default : coerce(owner, key, spec, raw);
  }
  return out;
}

/**
 * Parse repeated `key=value` strings (from `--set`) into a map; a malformed pair or a reserved key
 * (`__proto__=...` would set the map's prototype, not an option) is exit 2.
 */
export function parseSetPairs(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new PeftError('E_INPUT', `--set expects key=value, got "${p}"`);
    const key = p.slice(0, eq).trim();
    if (isReservedKey(key)) throw reservedKeyError(key, '--set');
    out[key] = p.slice(eq + 1).trim();
  }
  return out;
}
