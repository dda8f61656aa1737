/**
 * The one implementation behind the core optimizers (tinygrad's "SGD is LARS with different settings"):
 * per-parameter f32 state slots named as torch names them (exp_avg, exp_avg_sq, momentum_buffer), held in
 * allocator memory (native, 64-byte aligned, when the kernels are built), a per-parameter step count, and
 * the state dict a checkpoint round-trips bit for bit. An optimizer is this plus an `UpdateRule` over flat
 * arrays. Not here: the rules themselves (adamw.ts, sgd.ts), learning-rate schedules (schedule.ts).
 */
import { PeftError } from '../errors.js';
import type { Optimizer, OptimizerState } from '../plugin/optimizer.js';
import { getAllocator, type Allocator } from '../tensor/allocator.js';
import type { Tensor } from '../tensor/tensor.js';

export type Hyper = Readonly<Record<string, number | boolean>>;

export interface UpdateRule {
  /** The registry name, recorded in the state dict so a checkpoint is never loaded into another optimizer. */
  name: string;
  /** State arrays per parameter (each as long as the parameter), in the order `update` receives them. */
  slots: readonly string[];
  /** Saved with the state and checked on load: a resumed run must update with the same settings. */
  hyper: Hyper;
  /**
   * Updates p (n,) in place from g (n,). `state`: the slots, in order; `step`: the 1-based number of
   * this parameter's update (torch counts per parameter; a step without grad does not count).
   */
  update(p: Float32Array, g: Float32Array, state: Float32Array[], lr: number, step: number): void;
}

interface ParamEntry {
  name: string;
  tensor: Tensor;
  state: Float32Array[];
  step: number;
}

/** Zeroed f32 memory from the tensor allocator, with the buffer kept to free it. */
function allocSlot(allocator: Allocator, n: number): { data: Float32Array; buffer?: ArrayBuffer } {
  if (n === 0) return { data: new Float32Array(0) };
  const buffer = allocator.alloc(n * 4);
  return { data: new Float32Array(buffer, 0, n), buffer };
}

function checkParams(owner: string, params: readonly [string, Tensor][]): void {
  const seen = new Set<string>();
  for (const [name, t] of params) {
    if (seen.has(name)) throw new PeftError('E_INPUT', `${owner}: parameter "${name}" is listed twice`);
    seen.add(name);
    if (t.dtype !== 'f32') {
      throw new PeftError('E_INPUT', `${owner}: parameter "${name}" is ${t.dtype}; the optimizers update f32 parameters only`);
    }
  }
}

export const stepKey = (param: string): string => `${param}.step`;

function checkMeta(rule: UpdateRule, meta: OptimizerState['meta']): void {
  if (meta.optimizer !== rule.name) {
    throw new PeftError('E_INPUT', `optimizer state is for "${String(meta.optimizer)}", this run uses "${rule.name}"`);
  }
  for (const [key, value] of Object.entries(rule.hyper)) {
    if (meta[key] !== value) {
      throw new PeftError('E_INPUT',
        `${rule.name}: option "${key}" is ${String(value)} but the saved optimizer state was made with ${String(meta[key])}`);
    }
  }
}

/** An Optimizer over `params` (trainable f32 tensors by name) that applies `rule` to each parameter with a grad. */
export function createParamOptimizer(params: readonly [string, Tensor][], rule: UpdateRule): Optimizer {
  checkParams(rule.name, params);
  const allocator = getAllocator();
  const buffers: ArrayBuffer[] = [];
  const entries: ParamEntry[] = params.map(([name, tensor]) => ({
    name, tensor, step: 0,
    state: rule.slots.map(() => {
      const { data, buffer } = allocSlot(allocator, tensor.size);
      if (buffer) buffers.push(buffer);
      return data;
    }),
  }));
  let disposed = false;
  const live = () => {
    if (disposed) throw new PeftError('E_RUNTIME', `${rule.name}: optimizer used after dispose()`);
  };

  return {
    step(lr: number): void {
      live();
      if (!Number.isFinite(lr)) throw new PeftError('E_INPUT', `${rule.name}: learning rate must be finite, got ${lr}`);
      for (const e of entries) {
        const g = e.tensor.grad;
        if (!g) continue;
        if (g.dtype !== 'f32') throw new PeftError('E_RUNTIME', `${rule.name}: grad of "${e.name}" is ${g.dtype}, expected f32`);
        e.step++;
        rule.update(e.tensor.data as Float32Array, g.data as Float32Array, e.state, lr, e.step);
      }
    },
    stateDict(): OptimizerState {
      live();
      const tensors = new Map<string, Float32Array>();
      const meta: OptimizerState['meta'] = { optimizer: rule.name, ...rule.hyper };
      for (const e of entries) {
        rule.slots.forEach((slot, k) => tensors.set(`${e.name}.${slot}`, e.state[k].slice()));
        meta[stepKey(e.name)] = e.step;
      }
      return { tensors, meta };
    },
    loadStateDict(state: OptimizerState): void {
      live();
      loadInto(rule, entries, state);
    },
    dispose(): void {
      if (disposed) return;
      disposed = true;
      for (const b of buffers) allocator.free(b);
      buffers.length = 0;
    },
  };
}

/** Validates everything first, then copies: a bad state leaves the optimizer as it was. */
function loadInto(rule: UpdateRule, entries: ParamEntry[], state: OptimizerState): void {
  checkMeta(rule, state.meta);
  const expected = new Set<string>();
  for (const e of entries) {
    const step = state.meta[stepKey(e.name)];
    if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 0) {
      throw new PeftError('E_FORMAT', `${rule.name} state: no valid step count for parameter "${e.name}"`);
    }
    rule.slots.forEach((slot) => {
      const key = `${e.name}.${slot}`;
      expected.add(key);
      const got = state.tensors.get(key);
      if (!got) throw new PeftError('E_FORMAT', `${rule.name} state: missing "${key}"`);
      if (got.length !== e.tensor.size) {
        throw new PeftError('E_FORMAT', `${rule.name} state: "${key}" has ${got.length} values, the parameter has ${e.tensor.size}`);
      }
    });
  }
  for (const key of state.tensors.keys()) {
    if (!expected.has(key)) throw new PeftError('E_FORMAT', `${rule.name} state: "${key}" belongs to no parameter of this run`);
  }
  for (const e of entries) {
    e.step = state.meta[stepKey(e.name)] as number;
    rule.slots.forEach((slot, k) => e.state[k].set(state.tensors.get(`${e.name}.${slot}`)!));
  }
}
