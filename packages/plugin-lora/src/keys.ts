/**
 * LoRA's tensors in an adapter file, shared by loading (load.ts) and the ΔW view (delta.ts) so both
 * apply the same rules: the key naming PEFT saves (save_and_load.py get_peft_model_state_dict: the
 * adapter name dropped, and DoRA's magnitude saved without its `.weight`), which modules apply (the
 * ones the config targets, as inject_adapter wraps; the others' tensors are unused, as
 * set_peft_model_state_dict drops them), and per applied module: lora_A and lora_B present, a
 * lora_magnitude_vector exactly when use_dora (refused otherwise, naming the tensor), no embedding
 * LoRA, values finite and a scaling float32 can hold.
 * Not here: applying the tensors (load.ts), the ΔW (delta.ts), the file (core io/).
 */
import {
  checkFinite, getBackend, groupAdapterTensors, inputError, peftKey, toF32,
  type AdapterKeys, type KeyedTensor, type RawTensor,
} from '@peft/core-tensor';

/** PEFT_TYPE_TO_PREFIX_MAPPING[LORA] = "lora_"; parts as LoraLayer names them. */
export const LORA_KEYS: AdapterKeys = {
  prefix: 'lora_',
  parts: {
    lora_A: { saved: '.weight' },
    lora_B: { saved: '.weight' },
    lora_magnitude_vector: { saved: '', inMemory: '.default.weight' },
    lora_embedding_A: { saved: '' },
    lora_embedding_B: { saved: '' },
  },
};

export type LoraPart = 'lora_A' | 'lora_B' | 'lora_magnitude_vector';

/** The on-disk key of a LoRA tensor of `module` (HF module path). */
export const loraKey = (module: string, part: LoraPart): string => peftKey(LORA_KEYS, module, part);

export interface LoraModuleTensors {
  module: string;
  A: KeyedTensor;
  B: KeyedTensor;
  magnitude?: KeyedTensor;
}

export interface SortedLoraTensors {
  /** The modules that apply, in file order. */
  modules: LoraModuleTensors[];
  /** Keys of LoRA tensors whose module is not targeted: not applied. */
  unused: string[];
  /** Keys that are not LoRA tensors (trained biases, modules_to_save, ...): the caller decides. */
  other: KeyedTensor[];
}

/**
 * The adapter's LoRA tensors by module under the rules above. `targeted(module)` says whether the
 * config's target_modules & co. choose the module. E_FORMAT naming the key for a broken module.
 */
export function sortLoraTensors(
  tensors: ReadonlyMap<string, RawTensor>, useDora: boolean, file: string, targeted: (module: string) => boolean,
): SortedLoraTensors {
  const { modules, other } = groupAdapterTensors(tensors, LORA_KEYS);
  const out: LoraModuleTensors[] = [];
  const unused: string[] = [];
  for (const [module, parts] of modules) {
    const any = [...parts.values()][0].key;
    if (module === '') throw inputError('E_FORMAT', `${any}: a LoRA tensor must belong to a module (base_model.model.<module>.${any})`, file);
    if (!targeted(module)) {
      for (const p of parts.values()) unused.push(p.key);
      continue;
    }
    if (parts.has('lora_embedding_A') || parts.has('lora_embedding_B')) throw inputError('E_FORMAT', `${any}: embedding LoRA is not supported`, file);
    const A = parts.get('lora_A'), B = parts.get('lora_B'), magnitude = parts.get('lora_magnitude_vector');
    if (!A || !B) throw inputError('E_FORMAT', `${module}: lora_A and lora_B must both be present`, file);
    if (useDora && !magnitude) {
      throw inputError('E_FORMAT', `use_dora is true but lora_magnitude_vector is missing: no tensor ${loraKey(module, 'lora_magnitude_vector')} (a DoRA adapter needs one per module)`, file);
    }
    if (!useDora && magnitude) throw inputError('E_FORMAT', `use_dora is false but lora_magnitude_vector is present: ${magnitude.key}`, file);
    out.push({ module, A, B, magnitude });
  }
  return { modules: out, unused: unused.sort(), other };
}

/** A tensor's values as f32 (a copy, whatever float dtype is stored), refused when not finite. */
export function f32Values(p: KeyedTensor, file: string): Float32Array {
  const v = Float32Array.from(toF32(getBackend(), { ...p.t, name: p.key } as RawTensor));
  checkFinite(v, { what: `tensor ${p.key}`, where: file });
  return v;
}

/** The largest finite float32: LoRA's forward multiplies by the scaling in f32. */
const F32_MAX = 3.4028234663852886e38;

/** Refuses a scaling (lora_alpha / r, or / √r) that float32 cannot hold: every output would be inf / NaN. */
export function checkScale(module: string, scale: number, alpha: number, where: string): void {
  if (!(Math.abs(scale) <= F32_MAX)) {
    throw inputError('E_INPUT', `${module}: lora_alpha ${alpha} gives the scaling ${scale}, which is not a finite float32`, where);
  }
}
