/**
 * How a method's tensors are named in adapter_model.safetensors, declared by the method
 * (MethodDef.keys) so the core reads any method's adapter without knowing its kinds of tensors.
 * PEFT's convention (src/peft/utils/save_and_load.py get_peft_model_state_dict /
 * set_peft_model_state_dict): a module's tensor is `base_model.model.<HF module path>.<part><suffix>`,
 * saved without the adapter name, held in memory with it (`<part>.default...`); a model-level tensor
 * (prompt tuning's `prompt_embeddings`) is the bare part name. Every part starts with the method's
 * state-dict prefix (PEFT_TYPE_TO_PREFIX_MAPPING, e.g. "lora_"), which no two methods share.
 * Not here: what the parts mean (the method), reading the file (peft-adapter.ts).
 */
import type { RawTensor } from '../dtype.js';

export interface PeftKeyPart {
  /** After `<part>` on disk: ".weight" for an nn.Linear's weight, "" for a bare nn.Parameter. */
  saved: string;
  /** After `<part>` in PEFT's in-memory state dict (default `.default` + saved). */
  inMemory?: string;
}

export interface AdapterKeys {
  /** PEFT's state-dict prefix of the method, e.g. "lora_" (PEFT_TYPE_TO_PREFIX_MAPPING). */
  prefix: string;
  /**
   * The method's tensor kinds by name, e.g. lora_A: { saved: '.weight' }. Empty for a method whose
   * tensors are not PEFT module keys (a side network names its own modules): it reads them itself.
   */
  parts: Readonly<Record<string, PeftKeyPart>>;
  /**
   * PEFT's prompt-learning methods have no state-dict prefix of their own: PROMPT_TUNING, P_TUNING and
   * PREFIX_TUNING all save one bare `prompt_embeddings` (utils/save_and_load.py). Methods that all mark
   * their keys shared may declare the same prefix; an adapter's peft_type alone picks the method.
   */
  shared?: boolean;
}

const MODEL_PREFIX = 'base_model.model.';

/** The on-disk key of `part` of `module` (HF module path; '' for a model-level tensor). */
export function peftKey(keys: AdapterKeys, module: string, part: string): string {
  const p = keys.parts[part];
  if (!p) throw new Error(`peftKey: "${part}" is not a part of the "${keys.prefix}" keys`);
  return module === '' ? `${part}${p.saved}` : `${MODEL_PREFIX}${module}.${part}${p.saved}`;
}

/** Inverse of peftKey; also accepts PEFT's in-memory names. Keys that are not the method's: undefined. */
export function parsePeftKey(keys: AdapterKeys, key: string): { module: string; part: string } | undefined {
  for (const [part, p] of Object.entries(keys.parts)) {
    for (const tail of [`${part}${p.saved}`, `${part}${p.inMemory ?? `.default${p.saved}`}`]) {
      if (key === tail) return { module: '', part };
      if (key.startsWith(MODEL_PREFIX) && key.endsWith(`.${tail}`)) {
        const module = key.slice(MODEL_PREFIX.length, -tail.length - 1);
        if (module) return { module, part };
      }
    }
  }
  return undefined;
}

export interface KeyedTensor {
  key: string;
  t: RawTensor;
}

export interface GroupedTensors {
  /** Module path ('' = model level) -> part -> its tensor, modules in file order. */
  modules: Map<string, Map<string, KeyedTensor>>;
  /** Keys that are none of the method's parts (biases, modules_to_save, ...): the method decides. */
  other: KeyedTensor[];
}

/** An adapter's tensors by module and part, as `keys` names them. */
export function groupAdapterTensors(tensors: ReadonlyMap<string, RawTensor>, keys: AdapterKeys): GroupedTensors {
  const modules = new Map<string, Map<string, KeyedTensor>>();
  const other: KeyedTensor[] = [];
  for (const [key, t] of tensors) {
    const k = parsePeftKey(keys, key);
    if (!k) {
      other.push({ key, t });
      continue;
    }
    const parts = modules.get(k.module) ?? new Map<string, KeyedTensor>();
    parts.set(k.part, { key, t });
    modules.set(k.module, parts);
  }
  return { modules, other };
}
