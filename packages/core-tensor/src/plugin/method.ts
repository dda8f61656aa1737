/**
 * The adapter-method contract: what `registry.method(...)` takes (LoRA, DoRA, prompt tuning, ...).
 * A method rewrites a loaded model for training (`attach`), names exactly the tensors that train,
 * saves them in the field's format (a PEFT folder), applies a saved folder for inference
 * (`loadAdapter`), and, where its update is a low-rank ΔW, exposes it (`delta` / `fromDelta`) so
 * merging, folding and compression work on any such method without importing it. It declares how
 * its tensors are named (`keys`, io/peft-keys.ts) and the `peft_type` it owns; the registry holds one
 * method per peft_type and per key prefix, and `registry.methodFor(peftType)` is the one lookup.
 * Methods that wrap modules choose them with the core's target matching (nn/targets.ts) and read base
 * weights through nn/frozen-weight.ts.
 * Not here: the training loop (train/), optimizers, reading/writing PEFT folders (io/peft-adapter.ts).
 */
import type { TrainKernels } from '../backend/train-kernels.js';
import type { NamedRawTensor } from '../dtype.js';
import type { PeftAdapter } from '../io/peft-adapter.js';
import type { AdapterKeys } from '../io/peft-keys.js';
import type { Llama } from '../models/llama.js';
import type { TargetRules } from '../nn/targets.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ParamGroup } from './optimizer.js';
import type { EntryBase } from './registry.js';
import type { ResolvedOptions } from './options.js';

export interface MethodContext {
  /** The folder the base model was read from (`base_model_name_or_path` is derived from it, never absolute). */
  baseModelDir: string;
  /** Seed of every random initialisation the method does. */
  seed: number;
  /** The run's learning rate (--lr), for options that give a group's rate absolutely (DePT's prompt_lr / lora_lr -> lrScale). */
  lr?: number;
  kernels?: TrainKernels;
  /** Long initialisations (PiSSA / LoftQ SVDs) report here: what, done of total. */
  onProgress?: (what: string, done: number, total: number) => void;
  /** `peft train`'s output folder: a method may keep run files there beside the adapter (QST's feature cache). */
  outDir?: string;
  /** Token ids in the training and validation examples: what per-token state a method keeps (a feature cache) will cost. */
  dataTokens?: number;
}

export interface AdapterSummary {
  trainableParams: number;
  /** HF module paths the method wrapped. */
  modules: string[];
}

/** A method attached to a model: the handle the trainer works through. */
export interface AttachedAdapter {
  /** The trainable tensors by stable names (their PEFT keys); the trainer optimizes exactly these. */
  parameters(): [string, Tensor][];
  /** Parameters that want their own optimizer settings (e.g. two learning rates); the rest form the "default" group. */
  paramGroups?(): ParamGroup[];
  /** Writes the adapter (adapter_config.json + adapter_model.safetensors) into `dir`, an existing empty folder. */
  save(dir: string): Promise<void>;
  summary(): AdapterSummary;
}

/** One module's update ΔW = scale · B · A, f32 row-major. */
export interface LowRankDelta {
  /** HF module path, e.g. `model.layers.0.self_attn.q_proj`. */
  module: string;
  inFeatures: number;
  outFeatures: number;
  r: number;
  /** [r, in] */
  A: Float32Array;
  /** [out, r] */
  B: Float32Array;
  scale: number;
  /** DoRA: magnitude [out]; the folded weight is m / ||W + ΔW||_row · (W + ΔW). */
  magnitude?: Float32Array;
}

/**
 * What loadAdapter applied and what it left out, by PEFT's rules (tuners_utils.py inject_adapter wraps
 * only the modules target_modules matches; save_and_load.py set_peft_model_state_dict loads with
 * strict=False, so tensors of other modules are dropped without a word).
 */
export interface AdapterLoadReport {
  /** HF module paths the adapter now changes. */
  modules: string[];
  /** File keys of tensors not applied: their modules are not matched by target_modules & co. */
  unused: string[];
  /** Matched modules the file holds no tensors for (PEFT warns "Found missing adapter keys"); they stay unchanged. */
  missing: string[];
}

export interface MethodDef extends EntryBase {
  /** The PEFT `peft_type` this method reads and writes, upper case as PEFT's PeftType, e.g. "LORA". */
  peftType: string;
  /** How its tensors are named in adapter_model.safetensors (prefix unique among methods, as PEFT's). */
  keys: AdapterKeys;
  /**
   * How a saved config chooses modules (PEFT tuners: nn/targets.ts peftTargetRules over target_modules
   * & co., with the method's default); absent for methods that wrap no modules (prompt tuning).
   */
  targets?(config: Record<string, unknown>, where: string): TargetRules;
  /** Rewrites `model` in place for training (e.g. wraps target Linear modules). */
  attach(model: Llama, options: ResolvedOptions, ctx: MethodContext): Promise<AttachedAdapter>;
  /** Applies a saved adapter folder to `model` for inference (eval / generate --adapter). */
  loadAdapter(model: Llama, dir: string, config: Record<string, unknown>): Promise<AdapterLoadReport | void>;
  /**
   * The per-module low-rank updates of a saved adapter (merging, folding, compression): only the modules
   * its config targets, as loading applies them; the core reports the tensors of the others as unused.
   */
  delta?(adapter: PeftAdapter): LowRankDelta[];
  /** An adapter (config + PEFT-keyed tensors) holding `deltas` exactly; `like` is the config to start from. */
  fromDelta?(deltas: readonly LowRankDelta[], like: Record<string, unknown>): { config: Record<string, unknown>; tensors: NamedRawTensor[] };
}
