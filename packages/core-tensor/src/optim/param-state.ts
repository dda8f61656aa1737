/**
 * The one implementation behind the core optimizers (tinygrad's "SGD is LARS with different settings"),
 * and what plugin optimizers build on: parameters in groups (torch's param_groups), each group with an
 * `UpdateRule` over flat arrays and an lr scale; per-parameter state slots whose dtype and shape the rule
 * declares from the parameter's shape (`slotShapes`: AdamW's moments are shaped like the parameter,
 * GaLore's projected moments r x n, 8-bit moments U8 codes + F32 absmax per block), zeroed at creation
 * and held in allocator memory (native, 64-byte aligned, when the kernels are built); a per-parameter
 * step count; and the state dict a checkpoint round-trips bit for bit.
 * Not here: the rules themselves (adamw.ts, sgd.ts), schedules (schedule.ts), option schemas and the
 * groups a method declares (plugin/optimizer.ts).
 */
import { DTYPE_SIZES, numel } from '../dtype.js';
import { PeftError } from '../errors.js';
import { getAllocator, type Allocator } from '../tensor/allocator.js';
import type { Tensor } from '../tensor/tensor.js';
import {
  stateSpecMismatch, stateTensorIsConsistent, type Optimizer, type OptimizerState, type StateArray, type StateSpec,
  type StateTensor,
} from './types.js';

export type Hyper = Readonly<Record<string, number | boolean | string>>;
type Meta = OptimizerState['meta'];

export interface SlotSpec extends StateSpec {
  /** As torch names it (exp_avg, exp_avg_sq, momentum_buffer); the state key is `<param>.<name>`. */
  name: string;
}

export interface UpdateRule {
  /** Recorded per group in the state dict, so a checkpoint is never loaded into another rule. */
  name: string;
  /** The slots of a parameter of shape `paramShape`, in the order `update` receives them. */
  slotShapes(paramShape: readonly number[]): readonly SlotSpec[];
  /** Saved with the state and checked on load: a resumed run must update with the same settings. */
  hyper: Hyper;
  /**
   * Updates p (the parameter, flat, of `shape`) in place from g (same length). `state`: the slots, in
   * order; `lr`: the schedule's lr times the group's lrScale; `step`: the 1-based number of this
   * parameter's update (torch counts per parameter; a step without grad does not count); `name`: the
   * parameter's (rules that draw random numbers seed them from it and the step, so a resumed run repeats them).
   */
  update(p: Float32Array, g: Float32Array, state: StateArray[], lr: number, step: number, shape: readonly number[], name: string): void;
}

/** Parameters updated by one rule at one lr scale (a torch param group). */
export interface RuleGroup {
  /** Unique within the optimizer, without '.' (it is part of the state's keys). */
  name: string;
  params: readonly [string, Tensor][];
  rule: UpdateRule;
  /** Multiplies the lr step() is given (default 1). */
  lrScale?: number;
}

interface GroupEntry {
  name: string;
  rule: UpdateRule;
  lrScale: number;
}

interface ParamEntry {
  name: string;
  tensor: Tensor;
  group: GroupEntry;
  slots: readonly SlotSpec[];
  state: StateArray[];
  step: number;
}

export const stepKey = (param: string): string => `${param}.step`;
const groupKey = (group: string, key: string): string => `group.${group}.${key}`;
const memberKey = (param: string): string => `${param}.group`;

function checkGroups(owner: string, groups: readonly RuleGroup[]): void {
  const bad = (msg: string) => new PeftError('E_INPUT', `${owner}: ${msg}`);
  if (groups.length === 0) throw bad('no parameter groups');
  const names = new Set<string>();
  const params = new Set<string>();
  for (const g of groups) {
    if (!/^[A-Za-z0-9_:-]+$/.test(g.name) || names.has(g.name)) throw bad(`group name "${g.name}" is taken or not [A-Za-z0-9_:-]+`);
    names.add(g.name);
    if (!(Number.isFinite(g.lrScale ?? 1) && (g.lrScale ?? 1) > 0)) throw bad(`group "${g.name}": lrScale must be > 0, got ${g.lrScale}`);
    for (const [name, t] of g.params) {
      if (params.has(name)) throw bad(`parameter "${name}" is listed twice`);
      params.add(name);
      if (t.dtype !== 'f32') throw bad(`parameter "${name}" is ${t.dtype}; the optimizers update f32 parameters only`);
    }
  }
}

/** The rule's slots for `t`, checked (a malformed declaration is the rule's bug). */
function slotsOf(rule: UpdateRule, name: string, t: Tensor): readonly SlotSpec[] {
  const slots = rule.slotShapes(t.shape);
  for (const s of slots) {
    const ok = (s.dtype === 'F32' || s.dtype === 'U8') && s.shape.every((d) => Number.isSafeInteger(d) && d >= 0);
    if (!ok) throw new PeftError('E_RUNTIME', `${rule.name}: slot "${s.name}" of "${name}" is declared as ${s.dtype} [${s.shape.join(', ')}]`);
  }
  return slots;
}

/** Zeroed memory from the tensor allocator, with the buffer kept to free it. */
function allocSlot(allocator: Allocator, spec: StateSpec, buffers: ArrayBuffer[]): StateArray {
  const n = numel(spec.shape);
  const View = spec.dtype === 'F32' ? Float32Array : Uint8Array;
  if (n === 0) return new View(0);
  const buffer = allocator.alloc(n * DTYPE_SIZES[spec.dtype]);
  buffers.push(buffer);
  return new View(buffer, 0, n);
}

/** The settings part of the state (no step counts): optimizer name, each group's rule, lr scale and hyper, memberships. */
function settingsMeta(name: string, groups: readonly GroupEntry[], entries: readonly ParamEntry[]): Meta {
  const meta: Meta = { optimizer: name };
  for (const g of groups) {
    meta[groupKey(g.name, 'rule')] = g.rule.name;
    meta[groupKey(g.name, 'lr_scale')] = g.lrScale;
    for (const [key, value] of Object.entries(g.rule.hyper)) meta[groupKey(g.name, key)] = value;
  }
  if (groups.length > 1) for (const e of entries) meta[memberKey(e.name)] = e.group.name;
  return meta;
}

function settingMismatch(key: string, want: unknown, got: unknown, oneGroup: boolean): string {
  const g = /^group\.([^.]+)\.(.+)$/.exec(key);
  if (g) {
    const where = oneGroup ? '' : ` of group "${g[1]}"`;
    return `option "${g[2]}"${where} is ${String(want)} but the saved optimizer state was made with ${String(got)}`;
  }
  return `parameter "${key.slice(0, -'.group'.length)}" is in group "${String(want)}" but the saved state has it in ${JSON.stringify(got) ?? 'none'}`;
}

/**
 * An Optimizer over `groups` (trainable f32 tensors, each in one group): each parameter with a grad is
 * updated by its group's rule at lr * lrScale. `name` is the registry name, recorded in the state so a
 * checkpoint never loads into another optimizer.
 */
export function createParamOptimizer(name: string, groups: readonly RuleGroup[]): Optimizer {
  checkGroups(name, groups);
  const allocator = getAllocator();
  const buffers: ArrayBuffer[] = [];
  const groupEntries: GroupEntry[] = groups.map((g) => ({ name: g.name, rule: g.rule, lrScale: g.lrScale ?? 1 }));
  const entries: ParamEntry[] = groups.flatMap((g, i) => g.params.map(([pname, tensor]) => {
    const slots = slotsOf(g.rule, pname, tensor);
    return { name: pname, tensor, group: groupEntries[i], slots, step: 0, state: slots.map((s) => allocSlot(allocator, s, buffers)) };
  }));
  const spec = new Map<string, StateSpec>();
  for (const e of entries) for (const s of e.slots) spec.set(`${e.name}.${s.name}`, { dtype: s.dtype, shape: [...s.shape] });
  const settings = settingsMeta(name, groupEntries, entries);
  let disposed = false;
  const live = () => {
    if (disposed) throw new PeftError('E_RUNTIME', `${name}: optimizer used after dispose()`);
  };

  return {
    step(lr: number): void {
      live();
      if (!Number.isFinite(lr)) throw new PeftError('E_INPUT', `${name}: learning rate must be finite, got ${lr}`);
      for (const e of entries) {
        const g = e.tensor.grad;
        if (!g) continue;
        if (g.dtype !== 'f32') throw new PeftError('E_RUNTIME', `${name}: grad of "${e.name}" is ${g.dtype}, expected f32`);
        e.step++;
        e.group.rule.update(e.tensor.data as Float32Array, g.data as Float32Array, e.state, lr * e.group.lrScale, e.step, e.tensor.shape, e.name);
      }
    },
    stateSpec: () => new Map(spec),
    stateDict(): OptimizerState {
      live();
      const tensors = new Map<string, StateTensor>();
      const meta: Meta = { ...settings };
      for (const e of entries) {
        e.slots.forEach((s, k) => tensors.set(`${e.name}.${s.name}`, { dtype: s.dtype, shape: [...s.shape], data: e.state[k].slice() } as StateTensor));
        meta[stepKey(e.name)] = e.step;
      }
      return { tensors, meta };
    },
    loadStateDict(state: OptimizerState): void {
      live();
      checkState(name, settings, spec, entries, state, groups.length === 1);
      for (const e of entries) {
        e.step = state.meta[stepKey(e.name)] as number;
        e.slots.forEach((s, k) => e.state[k].set(state.tensors.get(`${e.name}.${s.name}`)!.data));
      }
    },
    dispose(): void {
      if (disposed) return;
      disposed = true;
      for (const b of buffers) allocator.free(b);
      buffers.length = 0;
    },
  };
}

/** Everything a state must satisfy before any of it is copied in. */
function checkState(name: string, settings: Meta, spec: ReadonlyMap<string, StateSpec>, entries: readonly ParamEntry[],
  state: OptimizerState, oneGroup: boolean): void {
  const { meta, tensors } = state;
  if (meta.optimizer !== name) throw new PeftError('E_INPUT', `optimizer state is for "${String(meta.optimizer)}", this run uses "${name}"`);
  for (const [key, want] of Object.entries(settings)) {
    if (meta[key] !== want) throw new PeftError('E_INPUT', `${name}: ${settingMismatch(key, want, meta[key], oneGroup)}`);
  }
  const steps = new Set(entries.map((e) => stepKey(e.name)));
  for (const key of Object.keys(meta)) {
    if (key in settings || steps.has(key)) continue;
    const group = /^group\.([^.]+)\./.exec(key)?.[1];
    if (group) throw new PeftError('E_INPUT', `${name}: the saved optimizer state has a parameter group "${group}", this run has none`);
    throw new PeftError('E_FORMAT', `${name} state: "${key}" belongs to no parameter of this run`);
  }
  for (const e of entries) {
    const step = meta[stepKey(e.name)];
    if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 0) {
      throw new PeftError('E_FORMAT', `${name} state: no valid step count for parameter "${e.name}"`);
    }
  }
  const bad = stateSpecMismatch(spec, tensors);
  if (bad) throw new PeftError(bad.code, `${name}: ${bad.message}`);
  for (const [key, t] of tensors) {
    if (!stateTensorIsConsistent(t)) throw new PeftError('E_FORMAT', `${name}: optimizer state "${key}" holds ${t.data.length} values of ${t.data.constructor.name}, not ${t.dtype} [${t.shape.join(', ')}]`);
  }
}
