/**
 * `defineMergeMethod`: the one way a merge method is written here (mergekit's easy_define habit).
 * A method gives its name, a one-line description, the paper, its parameters (global and per
 * model) and the per-tensor function; this fills the MergerDef the registry takes.
 * Not here: parameter resolution or streaming (core tasks/merge/), the math (one file per method).
 */
import { PeftError, type MergeParams, type MergerDef, type MergeTensorInput, type OptionsSchema } from '@peft/core-tensor';

export interface MergeMethodMeta {
  name: string;
  description: string;
  paper?: string;
  base: MergerDef['base'];
  models: MergerDef['models'];
  /** mergekit's global parameters. */
  options?: OptionsSchema;
  /** mergekit's tensor (per-model) parameters. */
  perModelOptions?: OptionsSchema;
  required?: readonly string[];
  checkParams?: (p: MergeParams) => void;
}

export function defineMergeMethod(meta: MergeMethodMeta, mergeTensor: (input: MergeTensorInput) => Float32Array): MergerDef {
  return {
    name: meta.name,
    description: meta.description,
    paper: meta.paper,
    options: meta.options ?? {},
    perModelOptions: meta.perModelOptions ?? {},
    required: meta.required ?? [],
    base: meta.base,
    models: meta.models,
    checkParams: meta.checkParams,
    mergeTensor,
  };
}

/** The weight every weighted method takes (mergekit: required, any sign). */
export const WEIGHT = { type: 'number', description: 'Weight of this model (relative when normalize is on)' } as const;

/** A resolved number option (the driver has already checked types and required names). */
export function num(o: Record<string, unknown>, key: string): number {
  return o[key] as number;
}

/** E_INPUT for one tensor's parameters: `<method>: tensor <name>: <message>`. */
export function paramError(method: string, p: MergeParams, message: string): PeftError {
  return new PeftError('E_INPUT', `${method}: tensor ${p.name}: ${message}`);
}

/** f32 rounding, as torch does after every f32 op. */
export const f32 = Math.fround;
