/**
 * `peft train --recipe FILE.yaml`, parsed in core like merge recipes: a recipe holds the same
 * settings as the flags (snake_case or kebab-case keys), plus `options` (the method's, as --set gives
 * them) and `optimizer_options`. The CLI lets flags win over the recipe; unknown keys are refused by
 * name, and the YAML goes through the one strict loader (io/yaml-file.ts).
 *
 *   method: lora
 *   options: { r: 16, lora_alpha: 32, target_modules: [q_proj, v_proj] }
 *   data: train.jsonl
 *   steps: 200
 *   lr: 2.0e-4
 *
 * Not here: what the settings do (train-run.ts), flag handling (the CLI).
 */
import { inputError } from '../errors.js';
import { readTextFile } from '../io/regular-file.js';
import { parseYamlMapping } from '../io/yaml-file.js';

/** Recipe keys (snake_case) and the type each must have. */
export const TRAIN_RECIPE_KEYS = {
  data: 'string', out: 'string', method: 'string', optimizer: 'string', schedule: 'string', val_data: 'string',
  steps: 'number', epochs: 'number', lr: 'number', batch: 'number', grad_accum: 'number', seq_len: 'number', seed: 'number', max_row_bytes: 'number',
  warmup_steps: 'number', warmup_ratio: 'number', max_grad_norm: 'number', val_split: 'number', eval_every: 'number', save_every: 'number',
  packing: 'boolean', options: 'object', optimizer_options: 'object',
} as const;

export type TrainRecipeKey = keyof typeof TRAIN_RECIPE_KEYS;

export type TrainRecipe = Partial<Record<TrainRecipeKey, unknown>> & {
  options?: Record<string, unknown>;
  optimizer_options?: Record<string, unknown>;
};

const isKey = (k: string): k is TrainRecipeKey => Object.prototype.hasOwnProperty.call(TRAIN_RECIPE_KEYS, k);

/** Parses a train recipe (`file` names it in messages). */
export function parseTrainRecipe(text: string, file = 'recipe'): TrainRecipe {
  const doc = parseYamlMapping(text, file, 'a train recipe');
  const out: TrainRecipe = {};
  for (const [raw, value] of Object.entries(doc)) {
    const key = raw.replace(/-/g, '_');
    if (!isKey(key)) throw inputError('E_INPUT', `unknown key "${raw}" (valid: ${Object.keys(TRAIN_RECIPE_KEYS).join(', ')})`, file);
    const want = TRAIN_RECIPE_KEYS[key];
    const isObject = value !== null && typeof value === 'object' && !Array.isArray(value);
    if (want === 'object' ? !isObject : typeof value !== want) {
      throw inputError('E_INPUT', `"${raw}" must be ${want === 'object' ? 'a mapping' : `a ${want}`}, got ${JSON.stringify(value)}`, file);
    }
    if (key in out) throw inputError('E_INPUT', `"${raw}" is given twice (snake_case and kebab-case spellings of one key)`, file);
    (out as Record<string, unknown>)[key] = value;
  }
  return out;
}

/** Reads a train recipe file (a regular file: a FIFO is refused). */
export async function readTrainRecipe(file: string): Promise<TrainRecipe> {
  return parseTrainRecipe(await readTextFile(file), file);
}
