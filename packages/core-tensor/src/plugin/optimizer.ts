/**
 * The optimizer contract: what `registry.optimizer(...)` takes (adamw and sgd are core; GaLore
 * and friends come from plugins). An optimizer owns the state of the parameters it was created
 * for, updates them from their `.grad` at the learning rate the trainer's schedule gives, and
 * round-trips its state through checkpoints so `--resume` continues bit for bit.
 */
import type { Tensor } from '../tensor/tensor.js';
import type { EntryBase } from './registry.js';
import type { ResolvedOptions } from './options.js';

export interface OptimizerState {
  /** Named f32 state arrays (e.g. `<param>.exp_avg`), saved to the checkpoint's safetensors. */
  tensors: Map<string, Float32Array>;
  /** Scalars (step counts, ...), saved as JSON. */
  meta: Record<string, number | string | boolean>;
}

export interface Optimizer {
  /** One update of every parameter from its grad (a parameter without grad is skipped). */
  step(lr: number): void;
  stateDict(): OptimizerState;
  loadStateDict(state: OptimizerState): void;
  /** Frees the native state buffers now. */
  dispose(): void;
}

export interface OptimizerDef extends EntryBase {
  /** `params` are the trainable tensors by name, as AttachedAdapter.parameters() gives them. */
  create(params: readonly [string, Tensor][], options: ResolvedOptions): Optimizer;
}
