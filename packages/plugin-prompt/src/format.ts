/**
 * Reading and writing this plugin's adapter folders, through core io/peft-adapter.ts (the one module here
 * that touches files): adapter_config.json (json.dumps(indent=2, sort_keys=True), inference_mode true) and
 * adapter_model.safetensors (metadata {"format": "pt"}), F32 tensors.
 *
 *   PROMPT_TUNING, P_TUNING        prompt_embeddings [N, D]            (PEFT: one key, no prefix, encoder output)
 *   PREFIX_TUNING                  prompt_embeddings [N, L*2*D]        (hooks.ts: the column order)
 *   PROMPT_TUNING_LORA (DePT)      prompt_embeddings [N, D], prompt_encoder.lora_embedding_A [max_length, r],
 *                                  prompt_encoder.lora_embedding_B [r, D]   (DePT's save_and_load.py keys)
 *   NTK_PREFIX                     base_model.model.model.layers.<l>.self_attn.ntk_phi_k [H, hd] and
 *                                  .ntk_phi_kv [H, hd, hd]              (ours: no published convention)
 * Core functions used: readPeftAdapter, writePeftAdapter, ADAPTER_CONFIG, ADAPTER_WEIGHTS, toF32, getBackend,
 * bytesOf, inputError.
 * Not here: what the config fields hold (peft-config.ts), what the tensors do (the methods).
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import {
  ADAPTER_CONFIG, ADAPTER_WEIGHTS, bytesOf, getBackend, inputError, readPeftAdapter, toF32, writePeftAdapter,
  type AdapterKeys, type NamedRawTensor, type RawTensor, type Tensor,
} from '@peft/core-tensor';

export const PROMPT_KEY = 'prompt_embeddings';
export const DEPT_A_KEY = 'prompt_encoder.lora_embedding_A';
export const DEPT_B_KEY = 'prompt_encoder.lora_embedding_B';
export const ntkKey = (layer: number, part: 'ntk_phi_k' | 'ntk_phi_kv'): string => `base_model.model.model.layers.${layer}.self_attn.${part}`;

/** The key naming each method declares (MethodDef.keys): PEFT's bare prompt_embeddings is shared by the prompt-learning types. */
export const PROMPT_KEYS: AdapterKeys = { prefix: 'prompt_', parts: { [PROMPT_KEY]: { saved: '' } }, shared: true };
export const DEPT_KEYS: AdapterKeys = {
  prefix: 'prompt_', parts: { [PROMPT_KEY]: { saved: '' }, [DEPT_A_KEY]: { saved: '' }, [DEPT_B_KEY]: { saved: '' } }, shared: true,
};
export const NTK_KEYS: AdapterKeys = { prefix: 'ntk_', parts: { ntk_phi_k: { saved: '' }, ntk_phi_kv: { saved: '' } } };

/** Config fields Python prints as floats (`0.0`) in these configs. */
const FLOAT_KEYS = ['encoder_dropout', 'init_std'];

/** A tensor's current values as an F32 file entry (PEFT saves prompt encoders' outputs in f32). */
export function f32Entry(name: string, t: Tensor): NamedRawTensor {
  return { name, dtype: 'F32', shape: [...t.shape], data: bytesOf(Float32Array.from(t.data)) };
}

/**
 * Writes adapter_config.json + adapter_model.safetensors INTO `dir`, leaving the rest of it alone (the
 * trainer keeps its checkpoint files there): core's atomic writer builds them in a hidden subfolder first.
 */
export async function saveInto(dir: string, config: Record<string, unknown>, tensors: NamedRawTensor[]): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  const tmp = join(dir, `.prompt-save-${process.pid}-${Date.now()}`);
  try {
    await writePeftAdapter(tmp, { config, tensors, floatKeys: FLOAT_KEYS });
    for (const f of [ADAPTER_CONFIG, ADAPTER_WEIGHTS]) await fsp.rename(join(tmp, f), join(dir, f));
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true });
  }
}

export interface AdapterFolder {
  dir: string;
  /** adapter_model.safetensors, for messages. */
  file: string;
  tensors: ReadonlyMap<string, RawTensor>;
  /** The keys not yet taken by `take`: loaders refuse leftovers. */
  left: Set<string>;
}

/** Reads the folder's tensors (the config was read by the caller's registry lookup). */
export async function readFolder(dir: string): Promise<AdapterFolder> {
  const a = await readPeftAdapter(dir);
  return { dir: a.dir, file: join(a.dir, ADAPTER_WEIGHTS), tensors: a.tensors, left: new Set(a.tensors.keys()) };
}

/** The f32 values of `key`, which must be stored with shape `shape` (-1: any size, returned in `shape`). */
export function take(f: AdapterFolder, key: string, shape: number[]): { values: Float32Array; shape: number[] } {
  const t = f.tensors.get(key);
  if (!t) throw inputError('E_FORMAT', `no tensor ${key}`, f.file);
  const fits = t.shape.length === shape.length && t.shape.every((v, i) => shape[i] === -1 || v === shape[i]);
  if (!fits) {
    throw inputError('E_FORMAT', `${key} has shape [${t.shape.join(', ')}], this model needs [${shape.map((v) => (v < 0 ? 'N' : v)).join(', ')}]`, f.file);
  }
  f.left.delete(key);
  return { values: Float32Array.from(toF32(getBackend(), { ...t, name: key } as RawTensor)), shape: [...t.shape] };
}

/** Refuses tensors no loader took (modules_to_save copies and the like are not applied silently). */
export function checkAllTaken(f: AdapterFolder, method: string): void {
  const [first] = f.left;
  if (first !== undefined) throw inputError('E_FORMAT', `${first}: not a ${method} tensor (${f.left.size} unexpected key(s))`, f.file);
}
