/**
 * The adapter-method contract: what `registry.method(...)` takes (LoRA, DoRA, prompt tuning, ...).
 * A method rewrites a loaded model for training (`attach`), names exactly the tensors that train,
 * saves them in the field's format (a PEFT folder), applies a saved folder for inference
 * (`loadAdapter`), and, where its update is a low-rank ΔW, exposes it (`delta` / `fromDelta`) so
 * merging, folding and compression work on any such method without importing it.
 * Not here: the training loop (train/), optimizers, reading/writing PEFT folders (io/peft-adapter.ts).
 */
import type { TrainKernels } from '../backend/train-kernels.js';
import type { NamedRawTensor } from '../dtype.js';
import type { PeftAdapter } from '../io/peft-adapter.js';
import type { Llama } from '../models/llama.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ParamGroup } from './optimizer.js';
import type { EntryBase } from './registry.js';
import type { ResolvedOptions } from './options.js';

export interface MethodContext {
  /** The folder the base model was read from (`base_model_name_or_path` is derived from it, never absolute). */
  baseModelDir: string;
  /** Seed of every random initialisation the method does. */
  seed: number;
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

export interface MethodDef extends EntryBase {
  /** The PEFT `peft_type` this method reads and writes, e.g. "LORA". */
  peftType: string;
  /** Rewrites `model` in place for training (e.g. wraps target Linear modules). */
  attach(model: Llama, options: ResolvedOptions, ctx: MethodContext): Promise<AttachedAdapter>;
  /** Applies a saved adapter folder to `model` for inference (eval / generate --adapter). */
  loadAdapter(model: Llama, dir: string, config: Record<string, unknown>): Promise<void>;
  /** The per-module low-rank updates of a saved adapter (merging, folding, compression). */
  delta?(adapter: PeftAdapter): LowRankDelta[];
  /** An adapter (config + PEFT-keyed tensors) holding `deltas` exactly; `like` is the config to start from. */
  fromDelta?(deltas: readonly LowRankDelta[], like: Record<string, unknown>): { config: Record<string, unknown>; tensors: NamedRawTensor[] };
}
