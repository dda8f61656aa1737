/**
 * The plugin registry: the one place where methods become known. The CLI builds a registry,
 * registers the core's built-ins, then fires the oclif hook `peft:register` with `{ registry }`;
 * every installed plugin adds its entries. Library users do the same with `createRegistry()`
 * and `plugin.register(registry)`. Names are unique per kind: a second entry with a taken name
 * is refused, so two plugins can never silently shadow each other; so are a method's `peft_type`
 * and key prefix (PEFT's register_peft_method refuses a taken name or prefix), and `methodFor` is
 * the one lookup from an adapter's peft_type to its method, as `quantizerFor` is from a folder's
 * quantization_config to its quantizer.
 */
import { inputError, PeftError } from '../errors.js';
import { findQuantizer } from '../quant/lookup.js';
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
  /**
   * The method owning `peftType`, matched exactly as PEFT does (PEFT_TYPE_TO_CONFIG_MAPPING[peft_type] in
   * src/peft/config.py: "lora" is not "LORA"), or undefined.
   */
  findMethod(peftType: unknown): MethodDef | undefined;
  /** findMethod, or E_INPUT naming `where` when no installed method reads `peftType`. */
  methodFor(peftType: unknown, where?: string): MethodDef;
  /**
   * The quantizer reading a folder's `quantization_config` (quant/lookup.ts findQuantizer: its
   * quant_method, then `matches`); E_INPUT naming the quant_method and the plugin to install when
   * none does. A Registry is the QuantizerLookup loaders take (FolderOptions.quantizers).
   */
  quantizerFor(qc: unknown, where?: string): QuantizerDef;
}

const NAME_RE = /^[a-z][a-z0-9_-]*$/;
/** PeftType values are upper-case identifiers (src/peft/utils/peft_types.py). */
const PEFT_TYPE_RE = /^[A-Z][A-Z0-9_]*$/;

/** A method's peft_type and key prefix, checked against the methods registered before it. */
function checkMethod(def: MethodDef, others: readonly MethodDef[]): void {
  const fail = (m: string) => new PeftError('E_RUNTIME', `method "${def.name}": ${m}`);
  if (typeof def.peftType !== 'string' || !PEFT_TYPE_RE.test(def.peftType)) throw fail(`peftType ${JSON.stringify(def.peftType)} must match ${PEFT_TYPE_RE}`);
  const prefix = def.keys?.prefix;
  if (typeof prefix !== 'string' || !prefix || !def.keys.parts || typeof def.keys.parts !== 'object') throw fail('keys needs a prefix and a parts table');
  const stray = Object.keys(def.keys.parts).find((p) => !p.startsWith(prefix));
  if (stray) throw fail(`key part "${stray}" does not start with the prefix "${prefix}"`);
  for (const o of others) {
    if (o.peftType === def.peftType) throw fail(`peft_type ${def.peftType} is already read by method "${o.name}" (two plugins claim it)`);
    if (o.keys.prefix === prefix && !(o.keys.shared && def.keys.shared)) throw fail(`key prefix "${prefix}" is already method "${o.name}"'s`);
  }
}

/** The functions a quantizer's folders are read with are there, and its quant_method is a name. */
function checkQuantizer(def: QuantizerDef): void {
  const fail = (m: string) => new PeftError('E_RUNTIME', `quantizer "${def.name}": ${m}`);
  for (const f of ['quantize', 'dequantize', 'config'] as const) if (typeof def[f] !== 'function') throw fail(`${f} must be a function`);
  for (const f of ['matches', 'layout', 'frozen', 'optionsFromConfig'] as const) {
    if (def[f] !== undefined && typeof def[f] !== 'function') throw fail(`${f} must be a function when given`);
  }
  if (def.quantMethod !== undefined && (typeof def.quantMethod !== 'string' || !def.quantMethod)) {
    throw fail(`quantMethod ${JSON.stringify(def.quantMethod)} must be a non-empty string`);
  }
}

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
    if (kind === 'method') checkMethod(def as MethodDef, [...table.values()] as MethodDef[]);
    if (kind === 'quantizer') checkQuantizer(def as QuantizerDef);
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
    findMethod: (peftType) => ([...tables.get('method')!.values()] as MethodDef[]).find((d) => d.peftType === peftType),
    methodFor(peftType, where) {
      const m = registry.findMethod(peftType);
      if (m) return m;
      const near = typeof peftType === 'string' && registry.findMethod(peftType.toUpperCase());
      const hint = near ? ` (PEFT's types are upper case: ${near.peftType})` : '; install the plugin that provides it';
      throw inputError('E_INPUT', `no adapter method registered for ${typeof peftType === 'string' ? peftType : JSON.stringify(peftType)}${hint}`, where);
    },
    quantizerFor: (qc, where) => findQuantizer(registry.list('quantizer'), qc, where),
  };
  return registry;
}
