/**
 * The plugin registry: the one place where methods become known. The CLI builds a registry,
 * registers the core's built-ins, then fires the oclif hook `peft:register` with `{ registry }`;
 * every installed plugin adds its entries. Library users do the same with `createRegistry()`
 * and `plugin.register(registry)`. Names are unique per kind: a second entry with a taken name
 * is refused, so two plugins can never silently shadow each other.
 */
import { PeftError } from '../errors.js';
import type { CompressorDef } from './compressor.js';
import type { MergerDef } from './merger.js';
import type { MethodDef } from './method.js';
import type { OptimizerDef } from './optimizer.js';
import type { QuantizerDef } from './quantizer.js';
import type { OptionsSchema } from './options.js';

/** What every registered entry has; each kind adds the functions that do its work. */
export interface EntryBase {
  name: string;
  /** One line, shown in `peft methods`. */
  description: string;
  options: OptionsSchema;
}

/** Kinds as DESIGN.md lists them; each has its typed contract in its own file (transfer: to come). */
export type EntryKind = 'method' | 'optimizer' | 'quantizer' | 'merger' | 'compressor' | 'transfer';
export const ENTRY_KINDS: readonly EntryKind[] = ['method', 'optimizer', 'quantizer', 'merger', 'compressor', 'transfer'];

interface KindTypes {
  quantizer: QuantizerDef;
  method: MethodDef;
  optimizer: OptimizerDef;
  merger: MergerDef;
  compressor: CompressorDef;
  transfer: EntryBase;
}

export interface Registry {
  quantizer(def: QuantizerDef): void;
  method(def: MethodDef): void;
  optimizer(def: OptimizerDef): void;
  merger(def: MergerDef): void;
  compressor(def: CompressorDef): void;
  transfer(def: EntryBase): void;
  list<K extends EntryKind>(kind: K): KindTypes[K][];
  get<K extends EntryKind>(kind: K, name: string): KindTypes[K];
  has(kind: EntryKind, name: string): boolean;
}

const NAME_RE = /^[a-z][a-z0-9_-]*$/;

export function createRegistry(): Registry {
  const tables = new Map<EntryKind, Map<string, EntryBase>>(ENTRY_KINDS.map((k) => [k, new Map()]));
  function add(kind: EntryKind, def: EntryBase): void {
    if (!def || typeof def.name !== 'string' || !NAME_RE.test(def.name)) {
      throw new PeftError('E_RUNTIME', `${kind} name ${JSON.stringify(def?.name)} must match ${NAME_RE}`);
    }
    const table = tables.get(kind)!;
    if (table.has(def.name)) {
      throw new PeftError('E_RUNTIME', `${kind} "${def.name}" is registered twice (two plugins claim the name)`);
    }
    table.set(def.name, def);
  }

  const registry: Registry = {
    quantizer: (def) => add('quantizer', def),
    method: (def) => add('method', def),
    optimizer: (def) => add('optimizer', def),
    merger: (def) => add('merger', def),
    compressor: (def) => add('compressor', def),
    transfer: (def) => add('transfer', def),
    list: (kind) => [...tables.get(kind)!.values()].sort((a, b) => a.name.localeCompare(b.name)) as never,
    get(kind, name) {
      const entry = tables.get(kind)!.get(name);
      if (!entry) {
        const known = [...tables.get(kind)!.keys()].sort();
        throw new PeftError('E_INPUT', `unknown ${kind} "${name}" (available: ${known.join(', ') || 'none'})`);
      }
      return entry as never;
    },
    has: (kind, name) => tables.get(kind)!.has(name),
  };
  return registry;
}
