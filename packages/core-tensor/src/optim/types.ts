/**
 * What an optimizer is at run time: it owns the state of the parameters it was created for, updates
 * them from their `.grad` at the learning rate the trainer's schedule gives, and round-trips its state
 * (tensors of their own dtype and shape, plus JSON scalars) through checkpoints so `--resume` continues
 * bit for bit. Not here: the registry entry that creates one (plugin/optimizer.ts), the core rules
 * (adamw.ts, sgd.ts), the shared per-parameter implementation (param-state.ts).
 */
import { numel } from '../dtype.js';

/**
 * The dtypes a state tensor may have (safetensors names): F32 values, or U8 codes, as 8-bit
 * optimizers keep their moments (bitsandbytes blockwise: U8 codes + F32 absmax per block).
 */
export type StateDtype = 'F32' | 'U8';
export type StateArray = Float32Array | Uint8Array;

/** A state tensor's dtype and shape: what a checkpoint must hold for it. */
export interface StateSpec {
  dtype: StateDtype;
  shape: readonly number[];
}

export type StateTensor =
  | { dtype: 'F32'; shape: readonly number[]; data: Float32Array }
  | { dtype: 'U8'; shape: readonly number[]; data: Uint8Array };

export interface OptimizerState {
  /** Named state tensors (e.g. `<param>.exp_avg`), saved to the checkpoint's optimizer.safetensors. */
  tensors: Map<string, StateTensor>;
  /** Scalars (step counts, settings), saved as JSON in trainer_state.json. */
  meta: Record<string, number | string | boolean>;
}

export interface Optimizer {
  /** One update of every parameter from its grad (a parameter without grad is skipped). */
  step(lr: number): void;
  /**
   * Optional, for optimizers that update only some parameters at a step (OwLore's sampled layers): the
   * names of the parameters step `step` (1-based, the trainer's global step) will update. The trainer
   * asks before the step's forward pass and computes grads for these only (the others have
   * requiresGrad off for that step, so no grad buffers and no weight-gradient GEMMs); undefined, or no
   * such method, means all. A pure function of the step and the optimizer's settings, so a resumed run
   * asks again and gets the same answer.
   */
  activeParams?(step: number): ReadonlySet<string> | undefined;
  /** The dtype and shape of every tensor stateDict() gives, by name (a checkpoint is checked against it before it is read). */
  stateSpec(): Map<string, StateSpec>;
  /** A snapshot (copies), not a view of the live state. */
  stateDict(): OptimizerState;
  /** Checks everything first (names, dtypes, shapes, settings), then copies: a bad state changes nothing. */
  loadStateDict(state: OptimizerState): void;
  /** Frees the native state buffers now. */
  dispose(): void;
}

const show = (s: StateSpec) => `${s.dtype} [${s.shape.join(', ')}]`;
const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * The first difference between the state tensors an optimizer keeps (`expected`) and those offered
 * (`got`: a checkpoint's header, or a state dict), as an error code and a message naming the tensor.
 */
export function stateSpecMismatch(expected: ReadonlyMap<string, StateSpec>,
  got: Iterable<readonly [string, { dtype: string; shape: readonly number[] }]>): { code: 'E_FORMAT' | 'E_SHAPE'; message: string } | undefined {
  const seen = new Set<string>();
  for (const [name, spec] of got) {
    seen.add(name);
    const want = expected.get(name);
    if (!want) return { code: 'E_FORMAT', message: `optimizer state "${name}" belongs to no parameter of this run` };
    if (spec.dtype !== want.dtype || !sameShape(spec.shape, want.shape)) {
      return { code: 'E_SHAPE', message: `optimizer state "${name}" is ${show(spec as StateSpec)}, this run's optimizer keeps ${show(want)}` };
    }
  }
  for (const name of expected.keys()) {
    if (!seen.has(name)) return { code: 'E_FORMAT', message: `missing optimizer state "${name}"` };
  }
  return undefined;
}

/** Whether `t.data` is the typed array its dtype says, as long as its shape says. */
export function stateTensorIsConsistent(t: StateTensor): boolean {
  const typed = t.dtype === 'F32' ? t.data instanceof Float32Array : t.dtype === 'U8' && t.data instanceof Uint8Array;
  return typed && t.data.length === numel(t.shape);
}
