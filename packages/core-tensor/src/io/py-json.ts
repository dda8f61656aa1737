/**
 * JSON text laid out the way Python's `json.dumps(obj, indent=2, sort_keys=True)` writes it
 * (ensure_ascii on), which is what transformers uses for config.json and the shard index.
 * Writing byte-identical files keeps diffs against transformers' output empty.
 * Not a general serializer: plain JSON values only (no Date, Map, undefined in arrays).
 */

/** Python's ensure_ascii: every non-ASCII UTF-16 unit becomes \uXXXX (lowercase hex). */
function pyString(s: string): string {
  return JSON.stringify(s).replace(/[\u007f-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

/**
 * Python prints integral floats as `1.0`. JS cannot tell 1 from 1.0, so keys known to hold
 * floats are passed in (`floatKeys`): transformers type-checks some (BitsAndBytesConfig raises
 * on an integer `llm_int8_threshold`).
 */
function pyNumber(n: number, asFloat: boolean): string {
  if (!Number.isFinite(n)) return Number.isNaN(n) ? 'NaN' : n > 0 ? 'Infinity' : '-Infinity';
  const s = JSON.stringify(n);
  return asFloat && /^-?\d+$/.test(s) ? `${s}.0` : s;
}

/** Config keys transformers documents as floats, always written with a decimal point. */
export const HF_FLOAT_KEYS: readonly string[] = [
  'llm_int8_threshold', 'rms_norm_eps', 'rope_theta', 'initializer_range', 'attention_dropout', 'factor',
  'low_freq_factor', 'high_freq_factor', 'layer_norm_eps', 'hidden_dropout', 'mlp_dropout',
];

/** Keys whose value is written as a float literal (with `.` or an exponent) in existing JSON text. */
export function floatKeysOf(jsonText: string): Set<string> {
  const keys = new Set<string>();
  for (const m of jsonText.matchAll(/"((?:[^"\\]|\\.)*)"\s*:\s*-?\d+(?:\.\d+[eE][-+]?\d+|\.\d+|[eE][-+]?\d+)/g)) keys.add(m[1]);
  return keys;
}

/** Python sorts keys by code point; JS default sort compares UTF-16 units, which differs only for astral chars. */
function codePointCompare(a: string, b: string): number {
  const ia = [...a], ib = [...b];
  for (let i = 0; i < Math.min(ia.length, ib.length); i++) {
    const d = ia[i].codePointAt(0)! - ib[i].codePointAt(0)!;
    if (d !== 0) return d;
  }
  return ia.length - ib.length;
}

function dump(v: unknown, indent: string, floatKeys: ReadonlySet<string>, key?: string): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return pyNumber(v, key !== undefined && floatKeys.has(key));
  if (typeof v === 'string') return pyString(v);
  const inner = indent + '  ';
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    return '[\n' + v.map((x) => inner + dump(x, inner, floatKeys, key)).join(',\n') + '\n' + indent + ']';
  }
  const keys = Object.keys(v as object).filter((k) => (v as Record<string, unknown>)[k] !== undefined).sort(codePointCompare);
  if (keys.length === 0) return '{}';
  const body = keys.map((k) => inner + pyString(k) + ': ' + dump((v as Record<string, unknown>)[k], inner, floatKeys, k));
  return '{\n' + body.join(',\n') + '\n' + indent + '}';
}

/** `json.dumps(value, indent=2, sort_keys=True)` plus the trailing newline transformers appends. */
export function pyJsonDumps(value: unknown, opts: { floatKeys?: Iterable<string> } = {}): string {
  return dump(value, '', new Set([...HF_FLOAT_KEYS, ...(opts.floatKeys ?? [])])) + '\n';
}
