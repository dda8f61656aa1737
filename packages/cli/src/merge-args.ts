/**
 * How `peft merge` reads its mergekit parameters from flags: a flag given once is a global
 * parameter (`--weight 0.5`), given once per input it is per input, in order (`--model A --model B
 * --weight 0.7 --weight 0.3`). Values stay strings/booleans here; the core coerces and checks them
 * against the method's schema (so "0,0.5,1" can be a layer gradient).
 */
export const MERGE_PARAM_FLAGS = ['weight', 'density', 'lambda', 't', 'epsilon', 'gamma'] as const;

export interface SplitParams {
  global: Record<string, unknown>;
  /** One object per input. */
  perInput: Record<string, unknown>[];
}

/** `fail` builds the exit-2 error (the core's PeftError, imported lazily by the command). */
export type Fail = (message: string) => Error;

export function splitParams(values: Partial<Record<string, readonly string[]>>, inputs: number, set: Record<string, unknown>, fail: Fail): SplitParams {
  const global: Record<string, unknown> = { ...set };
  const perInput = Array.from({ length: inputs }, () => ({}) as Record<string, unknown>);
  for (const [key, list] of Object.entries(values)) {
    if (!list || list.length === 0) continue;
    if (list.length === 1) global[key] = list[0];
    else if (list.length === inputs) list.forEach((v, i) => (perInput[i][key] = v));
    else throw fail(`--${key} given ${list.length} times for ${inputs} inputs (give it once, or once per input)`);
  }
  return { global, perInput };
}

/** Numbers from flag strings (adapter merges take numbers, not gradients). */
export function numbers(flag: string, list: readonly string[] | undefined, fail: Fail): number[] | undefined {
  if (!list) return undefined;
  return list.map((s) => {
    const v = Number(s);
    if (s.trim() === '' || !Number.isFinite(v)) throw fail(`--${flag} must be a number, got ${JSON.stringify(s)}`);
    return v;
  });
}
