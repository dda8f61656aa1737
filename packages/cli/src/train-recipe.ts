/**
 * `peft train --recipe FILE.yaml`: a recipe holds the same settings as the flags (snake_case or
 * kebab-case keys), plus `options` (the method's, as --set gives them) and `optimizer_options`.
 * Flags given on the command line win over the recipe; unknown keys are refused by name.
 *
 *   method: lora
 *   options: { r: 16, lora_alpha: 32, target_modules: [q_proj, v_proj] }
 *   data: train.jsonl
 *   steps: 200
 *   lr: 2.0e-4
 */
import { readFile } from 'node:fs/promises';

/** Recipe keys (snake_case) and the type each must have. */
export const RECIPE_KEYS = {
  data: 'string', out: 'string', method: 'string', optimizer: 'string', schedule: 'string', val_data: 'string',
  steps: 'number', epochs: 'number', lr: 'number', batch: 'number', grad_accum: 'number', seq_len: 'number', seed: 'number', max_row_bytes: 'number',
  warmup_steps: 'number', warmup_ratio: 'number', max_grad_norm: 'number', val_split: 'number', eval_every: 'number', save_every: 'number',
  packing: 'boolean', options: 'object', optimizer_options: 'object',
} as const;

export type Recipe = Partial<Record<keyof typeof RECIPE_KEYS, unknown>> & {
  options?: Record<string, unknown>;
  optimizer_options?: Record<string, unknown>;
};

export async function readRecipe(file: string): Promise<Recipe> {
  const core = await import('@peft/core-tensor');
  const { parse } = await import('yaml');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw core.inputError('E_NOT_FOUND', (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such recipe file' : (e as Error).message, file);
  }
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (e) {
    throw core.inputError('E_INPUT', `not valid YAML (${(e as Error).message.split('\n')[0]})`, file);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw core.inputError('E_INPUT', 'a recipe is a YAML mapping of settings', file);
  const out: Recipe = {};
  for (const [raw, value] of Object.entries(doc as Record<string, unknown>)) {
    const key = raw.replace(/-/g, '_') as keyof typeof RECIPE_KEYS;
    const want = RECIPE_KEYS[key];
    if (!want) throw core.inputError('E_INPUT', `unknown key "${raw}" (valid: ${Object.keys(RECIPE_KEYS).join(', ')})`, file);
    const isObject = value !== null && typeof value === 'object' && !Array.isArray(value);
    if (want === 'object' ? !isObject : typeof value !== want) {
      throw core.inputError('E_INPUT', `"${raw}" must be ${want === 'object' ? 'a mapping' : `a ${want}`}, got ${JSON.stringify(value)}`, file);
    }
    (out as Record<string, unknown>)[key] = value;
  }
  return out;
}
