/**
 * The module tree. Every module registers its children and parameters under the names the
 * checkpoint uses, so a built model answers `namedModules()` with Hugging Face paths
 * (`model.layers.0.self_attn.q_proj`) and adapters can find and `replace` modules by name.
 * Registration maps are the source of truth; `replace` also updates a same-named field, so
 * `this.q_proj = this.addModule('q_proj', ...)` stays in sync.
 * Not here: forward signatures (each module defines its own), loading (io/ + models/).
 */
import { PeftError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';

export interface ParameterFilter {
  /** true: only parameters that require grad; false: only frozen ones; omitted: all. */
  trainable?: boolean;
}

export class Module {
  /** Dropout and the like read this; set by train() / eval(). */
  training = true;
  readonly #modules = new Map<string, Module>();
  readonly #params = new Map<string, Tensor>();

  /** Registers (or re-registers) a child under its checkpoint name; returns it. */
  protected addModule<M extends Module>(name: string, m: M): M {
    if (name === '' || name.includes('.')) throw new PeftError('E_INPUT', `bad module name '${name}'`);
    this.#modules.set(name, m);
    return m;
  }

  /** Registers a parameter (trainable or frozen) under its checkpoint name; returns it. */
  protected addParameter(name: string, t: Tensor): Tensor {
    if (name === '' || name.includes('.')) throw new PeftError('E_INPUT', `bad parameter name '${name}'`);
    this.#params.set(name, t);
    return t;
  }

  /** The direct child `name` (undefined when there is none). */
  child(name: string): Module | undefined {
    return this.#modules.get(name);
  }

  /** The direct parameter `name`. */
  parameter(name: string): Tensor | undefined {
    return this.#params.get(name);
  }

  children(): [string, Module][] {
    return [...this.#modules];
  }

  /** This module ('' or prefix) and every descendant, depth first, with dotted names. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [name, m] of this.#modules) for (const entry of m.namedModules(prefix ? `${prefix}.${name}` : name)) out.push(entry);
    return out;
  }

  /** Every parameter with its full dotted name (e.g. `model.layers.0.self_attn.q_proj.weight`). */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [path, m] of this.namedModules(prefix)) {
      for (const [name, t] of m.#params) out.push([path ? `${path}.${name}` : name, t]);
    }
    return out;
  }

  parameters(filter?: ParameterFilter): Tensor[] {
    const all = this.namedParameters().map(([, t]) => t);
    return filter?.trainable === undefined ? all : all.filter((t) => t.requiresGrad === filter.trainable);
  }

  /** The descendant at a dotted path ('' is this module). */
  getModule(path: string): Module | undefined {
    let m: Module | undefined = this;
    for (const part of path === '' ? [] : path.split('.')) m = m === undefined ? undefined : m.#modules.get(part);
    return m;
  }

  /** Swaps the module at `path` for `m` (e.g. a Linear for its LoRA wrapper); returns the old one. */
  replace(path: string, m: Module): Module {
    const dot = path.lastIndexOf('.');
    const parent = this.getModule(dot < 0 ? '' : path.slice(0, dot));
    const name = path.slice(dot + 1);
    const old = parent === undefined ? undefined : parent.#modules.get(name);
    if (!parent || !old) throw new PeftError('E_INPUT', `no module named '${path}'`);
    parent.#modules.set(name, m);
    if (Object.hasOwn(parent, name)) (parent as unknown as Record<string, unknown>)[name] = m;
    return old;
  }

  /** Replaces the direct parameter `name` (same name must exist); returns the old tensor, not disposed. */
  setParameter(name: string, t: Tensor): Tensor {
    const old = this.#params.get(name);
    if (!old) throw new PeftError('E_INPUT', `no parameter named '${name}'`);
    this.#params.set(name, t);
    return old;
  }

  train(on = true): this {
    for (const [, m] of this.namedModules()) m.training = on;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Makes every float parameter trainable or frozen (frozen-dtype weights stay frozen). */
  requiresGrad(on: boolean): this {
    for (const t of this.parameters()) if (t.dtype === 'f32' || t.dtype === 'f64') t.requiresGrad = on;
    return this;
  }

  /** Drops every parameter's gradient. */
  zeroGrad(): void {
    for (const t of this.parameters()) {
      t.grad?.dispose();
      t.grad = undefined;
    }
  }

  /** Disposes every parameter (and its gradient). */
  dispose(): void {
    for (const t of this.parameters()) t.dispose();
  }
}

/** Children named '0', '1', ... (HF's nn.ModuleList, e.g. `model.layers`). */
export class ModuleList<M extends Module = Module> extends Module {
  #length = 0;

  constructor(items: readonly M[] = []) {
    super();
    for (const m of items) this.push(m);
  }

  push(m: M): M {
    return this.addModule(String(this.#length++), m);
  }

  get length(): number {
    return this.#length;
  }

  at(i: number): M {
    const m = this.child(String(i));
    if (!m) throw new PeftError('E_INPUT', `ModuleList index ${i} out of range (length ${this.#length})`);
    return m as M;
  }

  *[Symbol.iterator](): Iterator<M> {
    for (let i = 0; i < this.#length; i++) yield this.at(i);
  }
}
