/**
 * The one lookup from a folder's `quantization_config` (config.json) to the quantizer that reads
 * it: the quantizers naming its `quant_method`, narrowed by their `matches` (bitsandbytes' one
 * quant_method is nf4, fp4 or int8 by load_in_4bit / bnb_4bit_quant_type / load_in_8bit).
 * Registry.quantizerFor (plugin/registry.ts) and builtinQuantizers (builtin-formats.ts) call it;
 * every loader goes through one of those.
 * Not here: what a quantizer does with the folder (format.ts).
 */
import { inputError, PeftError } from '../errors.js';
import type { QuantFormat } from './format.js';

export const quantMethodOf = (f: QuantFormat): string => f.quantMethod ?? f.name;

/** Installed quantizers by quant_method, for messages: "bitsandbytes (fp4, int8, nf4), int4-sym". */
function installed(formats: readonly QuantFormat[]): string {
  const by = new Map<string, string[]>();
  for (const f of formats) by.set(quantMethodOf(f), [...(by.get(quantMethodOf(f)) ?? []), f.name]);
  return [...by].map(([m, names]) => (names.length === 1 && names[0] === m ? m : `${m} (${names.sort().join(', ')})`)).join(', ');
}

/** A config for a one-line message: its JSON, cut at 200 characters. */
function brief(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 200 ? `${s.slice(0, 200)}...` : s;
}

/**
 * The quantizer of `qc` among `formats`. Unknown quant_method: E_INPUT (exit 2) naming it and the
 * plugin to install; two quantizers claiming one config: E_RUNTIME (two plugins disagree).
 * `where` (config.json's path) prefixes messages.
 */
export function findQuantizer<Q extends QuantFormat>(formats: readonly Q[], qc: unknown, where?: string): Q {
  if (typeof qc !== 'object' || qc === null || Array.isArray(qc)) {
    throw inputError('E_FORMAT', `quantization_config must be an object, got ${brief(qc)}`, where);
  }
  const config = qc as Readonly<Record<string, unknown>>;
  const method = config.quant_method;
  if (typeof method !== 'string' || method === '' || method.length > 200) {
    throw inputError('E_FORMAT', `quantization_config has no quant_method (got ${brief(method)})`, where);
  }
  const same = formats.filter((f) => quantMethodOf(f) === method);
  if (same.length === 0) {
    throw inputError('E_INPUT', `quantization_config.quant_method "${method}" is not read by any installed quantizer ` +
      `(installed: ${installed(formats) || 'none'}); install the peft plugin that registers a quantizer for "${method}" ` +
      '(peft plugins install <package>)', where);
  }
  const hits = same.filter((f) => f.matches?.(config) ?? true);
  if (hits.length === 1) return hits[0];
  const names = (list: readonly Q[]) => list.map((f) => f.name).sort().join(', ');
  if (hits.length === 0) {
    throw inputError('E_INPUT', `no ${method} quantizer (${names(same)}) reads this quantization_config ${brief(config)}`, where);
  }
  throw new PeftError('E_RUNTIME', `${where ? `${where}: ` : ''}quantizers ${names(hits)} all claim this quant_method "${method}" config ` +
    '(two plugins disagree; uninstall one)');
}
