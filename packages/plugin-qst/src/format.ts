/**
 * The QST / LST adapter folder, PEFT-style so `peft inspect`, `eval --adapter` and `generate --adapter`
 * find it by its peft_type: adapter_config.json (peft_type "QST" or "LST", base_model_name_or_path, every
 * option, and the base's shape the side network was built for) and adapter_model.safetensors (the side
 * network's tensors, F32, under the names ladder.ts lists: the repos' module paths). All reading and
 * writing goes through core io/peft-adapter.ts (readPeftAdapter, writePeftAdapter); this module only
 * maps settings to config fields and back and checks a folder against the base it is applied to.
 * Not here: the tensors' meaning (ladder.ts), applying a folder (load.ts).
 */
import { promises as fsp } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import {
  ADAPTER_CONFIG, ADAPTER_WEIGHTS, bytesOf, getBackend, inputError, readPeftAdapter, toF32, writePeftAdapter,
  type LlamaConfig, type NamedRawTensor, type RawTensor, type Tensor,
} from '@peft/core-tensor';
import type { ParamSource } from './modules.js';
import type { DownsampleKind, Ladder, SideSettings } from './options.js';

export const PEFT_TYPES: Record<Ladder, string> = { qst: 'QST', lst: 'LST' };

/** The base's shape as recorded in the config: an adapter only fits a base with the same values. */
function baseShape(c: LlamaConfig): Record<string, string | number> {
  return {
    base_model_type: c.modelType, base_hidden_size: c.hiddenSize, base_intermediate_size: c.intermediateSize,
    base_num_hidden_layers: c.numLayers, base_num_attention_heads: c.numHeads, base_num_key_value_heads: c.numKvHeads,
  };
}

export function adapterConfig(s: SideSettings, base: LlamaConfig, side: LlamaConfig, baseModelDir: string): Record<string, unknown> {
  return {
    peft_type: PEFT_TYPES[s.method], task_type: 'CAUSAL_LM', base_model_name_or_path: basename(resolve(baseModelDir)),
    r: s.r, adapter_dim: s.adapterDim, downsample: s.downsample,
    ...(s.method === 'lst' ? { gate_alpha: s.gateAlpha, gate_t: s.gateT } : {}),
    cache_features: s.cacheFeatures, cache_max_mb: s.cacheMaxMb,
    ...baseShape(base),
    side_hidden_size: side.hiddenSize, side_intermediate_size: side.intermediateSize, side_head_dim: side.headDim,
  };
}

/** Writes adapter_config.json + adapter_model.safetensors INTO `dir` (the trainer adds checkpoint files beside them). */
export async function writeSideAdapter(dir: string, config: Record<string, unknown>, params: readonly [string, Tensor][]): Promise<void> {
  const tensors: NamedRawTensor[] = params.map(([name, t]) => ({ name, dtype: 'F32', shape: [...t.shape], data: bytesOf(Float32Array.from(t.data)) }));
  await fsp.mkdir(dir, { recursive: true });
  const tmp = join(dir, `.side-save-${process.pid}-${Date.now()}`);
  try {
    await writePeftAdapter(tmp, { config, tensors, floatKeys: ['gate_alpha', 'gate_t'] });
    for (const f of [ADAPTER_CONFIG, ADAPTER_WEIGHTS]) await fsp.rename(join(tmp, f), join(dir, f));
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true });
  }
}

/** The settings a saved config describes (E_FORMAT naming the field when one is missing or wrong). */
export function settingsFromConfig(method: Ladder, config: Record<string, unknown>, file: string): SideSettings {
  const int = (k: string) => {
    const v = config[k];
    if (!Number.isSafeInteger(v) || (v as number) < 1) throw inputError('E_FORMAT', `${k} must be a positive integer, got ${JSON.stringify(v)}`, file);
    return v as number;
  };
  const num = (k: string, fallback: number) => {
    const v = config[k] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw inputError('E_FORMAT', `${k} must be a number, got ${JSON.stringify(v)}`, file);
    return v;
  };
  const downsample = config.downsample;
  if (!['adapter', 'linear', 'maxpool', 'avgpool'].includes(downsample as string)) {
    throw inputError('E_FORMAT', `downsample must be adapter, linear, maxpool or avgpool, got ${JSON.stringify(downsample)}`, file);
  }
  const gateT = num('gate_t', 0.1);
  if (method === 'lst' && !(gateT > 0)) throw inputError('E_FORMAT', `gate_t must be positive, got ${gateT}`, file);
  return {
    method, r: int('r'), adapterDim: int('adapter_dim'), downsample: downsample as DownsampleKind, gateAlpha: num('gate_alpha', 0), gateT,
    cacheFeatures: false, cacheMaxMb: 0,
  };
}

/** Refuses (E_INPUT) a folder made for a base of another architecture or shape than `base`. */
export function checkBase(config: Record<string, unknown>, base: LlamaConfig, dir: string): void {
  const want = baseShape(base);
  const diff = Object.entries(want).filter(([k, v]) => config[k] !== v);
  if (diff.length === 0) return;
  const text = (o: (k: string) => unknown) => diff.map(([k]) => `${k.replace(/^base_/, '')} ${JSON.stringify(o(k))}`).join(', ');
  throw inputError('E_INPUT', `the adapter was trained on a base with ${text((k) => config[k])}; this base has ${text((k) => want[k])}`, dir);
}

/** The folder's tensors as a ParamSource (each read once, shape-checked, as an f32 constant); `left()` lists the unread keys. */
export function loadedSource(tensors: ReadonlyMap<string, RawTensor>, file: string, make: (v: Float32Array, shape: readonly number[]) => Tensor):
  { source: ParamSource; left(): string[] } {
  const used = new Set<string>();
  const source: ParamSource = (name, shape) => {
    const t = tensors.get(name);
    if (!t) throw inputError('E_FORMAT', `${name} is missing (the side network needs [${shape.join(', ')}])`, file);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw inputError('E_FORMAT', `${name} has shape [${t.shape.join(', ')}], the side network needs [${shape.join(', ')}]`, file);
    }
    used.add(name);
    const v = Float32Array.from(toF32(getBackend(), { ...t, name } as RawTensor));
    const bad = v.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) throw inputError('E_FORMAT', `${name} holds a non-finite value (${v[bad]} at element ${bad})`, file);
    return make(v, shape);
  };
  return { source, left: () => [...tensors.keys()].filter((k) => !used.has(k)) };
}

export { readPeftAdapter };
