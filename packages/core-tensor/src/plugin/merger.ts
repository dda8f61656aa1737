/**
 * The merge-method contract: what `registry.merger(...)` takes (mergekit's linear, ties, dare, slerp,
 * ...). A merger combines one tensor of several models (and a base) into one; reading, streaming,
 * parameter resolution per tensor (scalars, layer gradients, filters), checks and writing are the
 * driver's job, not the merger's.
 */
import type { EntryBase } from './registry.js';
import type { OptionsSchema, ResolvedOptions } from './options.js';

export interface MergeTensorInput {
  /** Tensor name, e.g. `model.layers.3.mlp.up_proj.weight`. */
  name: string;
  shape: readonly number[];
  /** The base model's tensor (methods that take none get undefined). */
  base?: Float32Array;
  /** One tensor per model, same shape as `shape`. */
  models: readonly Float32Array[];
  /** Global options resolved for this tensor. */
  global: ResolvedOptions;
  /** Per-model options resolved for this tensor, one per model. */
  perModel: readonly ResolvedOptions[];
  /** Seed of this tensor's randomness (derived from the job seed and the tensor name). */
  seed: number;
}

export interface MergerDef extends EntryBase {
  /** The paper, shown in `peft methods`. */
  paper?: string;
  /** Options that may differ per model (mergekit's per-model `parameters`, e.g. weight, density). */
  perModelOptions: OptionsSchema;
  /** Whether the method reads a base model. */
  base: 'required' | 'optional' | 'none';
  /** How many (non-base) models it combines. */
  models: { min: number; max?: number };
  mergeTensor(input: MergeTensorInput): Float32Array;
}
