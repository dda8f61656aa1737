/**
 * The merge-method contract: what `registry.merger(...)` takes (mergekit's linear, ties, dare, slerp,
 * ...). A merger combines one tensor of several models (and a base) into one; reading, streaming,
 * parameter resolution per tensor (scalars, layer gradients, filters), checks and writing are the
 * driver's job (tasks/merge/), not the merger's.
 *
 * Options: `options` are mergekit's global parameters (`normalize`, `lambda`, `t`, ...),
 * `perModelOptions` its tensor parameters (`weight`, `density`, ...). A recipe's top-level
 * `parameters` may set both (per-model ones then apply to every model); a model's `parameters`
 * only per-model ones. Options without a default that must be set are listed in `required`.
 * Values arrive resolved for the tensor at hand (a layer gradient or a filter already evaluated).
 *
 * Adapter merges (`peft merge --adapter A --adapter B`) run a merger on each module's dense update
 * ΔWᵢ = sᵢ Bᵢ Aᵢ and truncate the result by SVD; a merger that can combine the factors themselves
 * exactly (cat) also offers `mergeFactors`, which adapter merges then use instead.
 */
import { Xoshiro128 } from '../random/rng.js';
import type { LowRankDelta } from './method.js';
import type { EntryBase } from './registry.js';
import type { OptionsSchema, ResolvedOptions } from './options.js';

/** One tensor's resolved parameters: what `checkParams` sees before any tensor is read. */
export interface MergeParams {
  /** Tensor name, e.g. `model.layers.3.mlp.up_proj.weight`. */
  name: string;
  shape: readonly number[];
  /** Global options resolved for this tensor. */
  global: ResolvedOptions;
  /** Per-model options resolved for this tensor, one per (non-base) model, in recipe order. */
  perModel: readonly ResolvedOptions[];
}

export interface MergeTensorInput extends MergeParams {
  /** The base model's tensor, f32, numel(shape) long; never modified (methods without a base get undefined). */
  base?: Float32Array;
  /**
   * One f32 tensor per (non-base) model, same length as `base`. The merger may overwrite them
   * (e.g. to turn them into task vectors in place): the driver refills them for every tensor.
   */
  models: readonly Float32Array[];
  /** numel(shape) long, contents undefined: the merger writes its result here and returns it (or scratch use before that). */
  out: Float32Array;
  /** Seed of this tensor's randomness (derived from the job seed and the tensor name); see `mergeRng`. */
  seed: number;
}

/** One module's low-rank updates in an adapter merge, for a merger that combines factors exactly. */
export interface MergeFactorsInput {
  /** HF module path. */
  module: string;
  outFeatures: number;
  inFeatures: number;
  /** The adapters holding this module, in input order, each with its per-model options (weight, ...). */
  parts: readonly { delta: LowRankDelta; options: ResolvedOptions }[];
  global: ResolvedOptions;
}

export interface MergerDef extends EntryBase {
  /** The paper, shown in `peft methods`. */
  paper?: string;
  /** Options that may differ per model (mergekit's per-model `parameters`, e.g. weight, density). */
  perModelOptions: OptionsSchema;
  /** Names (in `options` or `perModelOptions`) that have no default and must be set, e.g. `weight`, `t`. */
  required?: readonly string[];
  /** Whether the method reads a base model. */
  base: 'required' | 'optional' | 'none';
  /** How many (non-base) models it combines. */
  models: { min: number; max?: number };
  /**
   * Checks one tensor's parameters (ranges that depend on each other or on the shape, e.g. a density
   * that keeps no element); throws a PeftError E_INPUT naming the tensor and the value. Called for every
   * tensor before anything is read or written.
   */
  checkParams?(p: MergeParams): void;
  mergeTensor(input: MergeTensorInput): Float32Array;
  /** Exact adapter merge of one module's factors (no dense product, no SVD); its ΔW must equal mergeTensor's. */
  mergeFactors?(input: MergeFactorsInput): LowRankDelta;
}

/**
 * The random stream a merger draws from for model `stream` of a tensor: xoshiro128** seeded by
 * splitmix32 (random/rng.ts), so the reference script (scripts/ref/merge_reference.py) reproduces
 * the same masks from the same seed. `nextFloat()` is uniform in [0, 1) with 24 bits.
 */
export function mergeRng(seed: number, stream = 0): { nextU32(): number; nextFloat(): number } {
  return new Xoshiro128(seed >>> 0, stream >>> 0);
}
