/**
 * The optimizer contract: what `registry.optimizer(...)` takes (adamw and sgd are core, in
 * builtin-optimizers.ts; GaLore and friends come from plugins), the context a run creates one in (its
 * kernels, seed and step count), and the parameter groups a method may declare (torch's param_groups:
 * own options and an lr multiplier). `createOptimizer` is the one way to make one: it resolves the
 * groups and calls the entry's `create`. The run-time Optimizer and its state are optim/types.ts.
 */
import type { TrainKernels } from '../backend/train-kernels.js';
import { PeftError } from '../errors.js';
import type { Optimizer } from '../optim/types.js';
import type { Tensor } from '../tensor/tensor.js';
import { resolveOptions, type ResolvedOptions } from './options.js';
import type { EntryBase } from './registry.js';

/** Parameters that want their own optimizer settings (DePT's prompt_lr / lora_lr), as a method declares them. */
export interface ParamGroup {
  /** [a-z][a-z0-9_-]*, not "default"; unique. */
  name: string;
  /** Names as AttachedAdapter.parameters() gives them; a parameter is in at most one group. */
  params: readonly string[];
  /** Multiplies the schedule's lr for these parameters (default 1). */
  lrScale?: number;
  /** Overrides of the optimizer's options for these parameters (keys of its schema, checked like --set values). */
  options?: Readonly<Record<string, unknown>>;
}

/** A group as an optimizer receives it: the tensors, complete options, the lr multiplier. */
export interface OptimizerGroup {
  name: string;
  params: readonly [string, Tensor][];
  options: ResolvedOptions;
  lrScale: number;
}

export interface OptimizerContext {
  /** The run's training kernels (`--backend`): every kernel the optimizer calls comes from here. */
  kernels: TrainKernels;
  /** The run's seed (random projections, sampling); derive per-step seeds from it so a resumed run repeats them. */
  seed: number;
  /** Optimizer steps of the whole run (schedules of the optimizer's own, OwLore's resampling). */
  totalSteps: number;
  /**
   * Every parameter in exactly one group: groups[0] is "default" (the run's options, lrScale 1, every
   * parameter no ParamGroup names; possibly empty), then the method's groups in their order. An optimizer
   * honours each group's options and lrScale (createParamOptimizer does, with one UpdateRule per group).
   */
  groups: readonly OptimizerGroup[];
}

export interface OptimizerDef extends EntryBase {
  /**
   * `params`: all trainable tensors by name (AttachedAdapter.parameters()); `options`: the run's options
   * (the default group's), resolved against `this.options`. Called through createOptimizer.
   */
  create(params: readonly [string, Tensor][], options: ResolvedOptions, ctx: OptimizerContext): Optimizer;
}

const GROUP_NAME = /^[a-z][a-z0-9_-]*$/;

/** `groups` checked and resolved against `params` and `def`'s schema; the default group first. E_INPUT when malformed. */
export function optimizerGroups(def: OptimizerDef, params: readonly [string, Tensor][], options: ResolvedOptions,
  groups: readonly ParamGroup[] = []): OptimizerGroup[] {
  const bad = (msg: string) => new PeftError('E_INPUT', `${def.name}: ${msg}`);
  const byName = new Map(params);
  const owner = new Map<string, string>();
  const names = new Set<string>();
  const named = groups.map((g) => {
    if (typeof g.name !== 'string' || !GROUP_NAME.test(g.name) || g.name === 'default' || names.has(g.name)) {
      throw bad(`parameter group name ${JSON.stringify(g.name)} must be unique, match ${GROUP_NAME} and not be "default"`);
    }
    names.add(g.name);
    const lrScale = g.lrScale ?? 1;
    if (!(Number.isFinite(lrScale) && lrScale > 0)) throw bad(`parameter group "${g.name}": lrScale must be a number > 0, got ${g.lrScale}`);
    const tensors = g.params.map((p): [string, Tensor] => {
      const t = byName.get(p);
      if (!t) throw bad(`parameter group "${g.name}" names "${p}", which is not trained`);
      if (owner.has(p)) throw bad(`parameter "${p}" is in groups "${owner.get(p)}" and "${g.name}"`);
      owner.set(p, g.name);
      return [p, t];
    });
    const resolved = resolveOptions(`${def.name} (group "${g.name}")`, def.options, { ...options, ...g.options });
    return { name: g.name, params: tensors, options: resolved, lrScale };
  });
  const rest = params.filter(([p]) => !owner.has(p));
  return [{ name: 'default', params: rest, options, lrScale: 1 }, ...named];
}

/** Creates `def`'s optimizer over `params` in the run's context; `ctx.groups` as the method declares them. */
export function createOptimizer(def: OptimizerDef, params: readonly [string, Tensor][], options: ResolvedOptions,
  ctx: Omit<OptimizerContext, 'groups'> & { groups?: readonly ParamGroup[] }): Optimizer {
  const { groups, ...rest } = ctx;
  return def.create(params, options, { ...rest, groups: optimizerGroups(def, params, options, groups) });
}
