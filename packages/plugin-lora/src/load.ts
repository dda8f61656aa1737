/**
 * `loadAdapter`: applies a saved LoRA / rsLoRA / DoRA adapter folder (ours or PEFT's) to a loaded
 * model for inference, as PeftModel.from_pretrained does: wrap every module the weights name, load
 * lora_A / lora_B (/ lora_magnitude_vector) as f32 whatever their stored float dtype, load trained
 * biases, no gradients anywhere. Ranks come from the tensors and must agree with the config
 * (r / rank_pattern); the scaling comes from the config (lora_alpha / alpha_pattern / use_rslora).
 * A shape that does not fit the module, an unknown key or an unsupported kind (embedding LoRA,
 * modules_to_save) is E_FORMAT naming the key. A LoftQ folder's loftq_base.safetensors replaces the
 * wrapped modules' base weights first (save.ts).
 * Not here: training-time wrapping (attach.ts), reading the folder's bytes (core io/peft-adapter.ts).
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import {
  asF32, decodeQuantState, frozenTensor, getBackend, isLinear, keep, parsePeftKey, readPeftAdapter, SafetensorsFile, tensor, toF32,
  inputError, type Llama, type PeftKeyKind, type RawTensor, type Tensor,
} from '@peft/core-tensor';
import { settingsFromPeftConfig } from './config.js';
import { LoraLinear } from './layer.js';
import { LOFTQ_BASE_FILE } from './save.js';
import { moduleRank } from './targets.js';

type Parts = Partial<Record<PeftKeyKind, { key: string; t: RawTensor }>>;

/** Splits the adapter's tensors into per-module LoRA parts and bias keys; anything else is refused. */
function sortKeys(tensors: ReadonlyMap<string, RawTensor>, file: string): { modules: Map<string, Parts>; biases: Map<string, { key: string; t: RawTensor }> } {
  const modules = new Map<string, Parts>();
  const biases = new Map<string, { key: string; t: RawTensor }>();
  for (const [key, t] of tensors) {
    const k = parsePeftKey(key);
    if (k && (k.kind === 'lora_embedding_A' || k.kind === 'lora_embedding_B')) throw inputError('E_FORMAT', `${key}: embedding LoRA is not supported`, file);
    if (k) {
      const parts = modules.get(k.module) ?? {};
      parts[k.kind] = { key, t };
      modules.set(k.module, parts);
      continue;
    }
    const b = /^base_model\.model\.(.+?)(\.base_layer)?\.bias$/.exec(key);
    if (!b) throw inputError('E_FORMAT', `${key}: not a LoRA tensor (modules_to_save and other extras are not supported)`, file);
    biases.set(b[1], { key, t });
  }
  return { modules, biases };
}

function values(p: { key: string; t: RawTensor }, shape: readonly number[], file: string): Float32Array {
  const ok = p.t.shape.length === shape.length && p.t.shape.every((v, i) => v === shape[i]);
  if (!ok) throw inputError('E_FORMAT', `${p.key} has shape [${p.t.shape.join(', ')}], the model needs [${shape.join(', ')}]`, file);
  return Float32Array.from(toF32(getBackend(), { ...p.t, name: p.key } as RawTensor));
}

/** A loaded value as an f32 tensor that never trains, owned by the model (not by any scope). */
const constant = (v: Float32Array, shape: readonly number[]): Tensor => keep(tensor(v, shape));

/** Replaces base weights by the NF4 weights of a LoftQ folder's loftq_base.safetensors, when there is one. */
async function applyLoftqBase(model: Llama, dir: string): Promise<void> {
  const path = join(dir, LOFTQ_BASE_FILE);
  if (!(await fsp.stat(path).catch(() => undefined))) return;
  const f = await SafetensorsFile.open(path);
  try {
    for (const t of f.tensors) {
      if (!t.name.endsWith('.weight.quant_state.bitsandbytes__nf4')) continue;
      const P = t.name.slice(0, -'.quant_state.bitsandbytes__nf4'.length);
      const module = P.slice(0, -'.weight'.length);
      const lin = model.getModule(module);
      if (!isLinear(lin)) throw inputError('E_FORMAT', `${P}: the model has no Linear ${module}`, path);
      const s = decodeQuantState(t.name, await f.read(t.name));
      if (s.shape.join() !== lin.weight.shape.join()) throw inputError('E_FORMAT', `${P} has shape [${s.shape.join(', ')}], the model needs [${lin.weight.shape.join(', ')}]`, path);
      const packed = (await f.read(P)).slice();
      const absmax = asF32((await f.read(`${P}.absmax`)).slice());
      lin.setParameter('weight', keep(frozenTensor({ kind: 'nf4', packed, absmax, blocksize: s.blocksize }, s.shape))).dispose();
    }
  } finally {
    await f.close();
  }
}

export async function loadLoraAdapter(model: Llama, dir: string, config: Record<string, unknown>): Promise<void> {
  const file = join(dir, 'adapter_model.safetensors');
  const s = settingsFromPeftConfig(config, join(dir, 'adapter_config.json'));
  const adapter = await readPeftAdapter(dir);
  const { modules, biases } = sortKeys(adapter.tensors, file);
  const plans = [...modules].map(([module, parts]) => {
    const base = model.getModule(module);
    if (base instanceof LoraLinear) throw inputError('E_INPUT', `${module} already has an adapter`, dir);
    if (!isLinear(base)) throw inputError('E_FORMAT', `${parts.lora_A?.key ?? module}: the model has no Linear ${module}`, file);
    if (!parts.lora_A || !parts.lora_B) throw inputError('E_FORMAT', `${module}: lora_A and lora_B must both be present`, file);
    if (s.useDora !== !!parts.lora_magnitude_vector) throw inputError('E_FORMAT', `${module}: use_dora is ${s.useDora} but lora_magnitude_vector is ${parts.lora_magnitude_vector ? 'present' : 'missing'}`, file);
    const { r, alpha, scale } = moduleRank(s, module);
    if (parts.lora_A.t.shape[0] !== r) throw inputError('E_FORMAT', `${parts.lora_A.key} has rank ${parts.lora_A.t.shape[0]}, adapter_config.json gives ${module} r = ${r}`, file);
    const [out, inF] = base.weight.shape;
    return { module, base, r, alpha, scale, A: values(parts.lora_A, [r, inF], file), B: values(parts.lora_B, [out, r], file),
      m: parts.lora_magnitude_vector && values(parts.lora_magnitude_vector, [out], file) };
  });
  const params = new Map(model.namedParameters());
  const biasValues = [...biases].map(([path, b]) => {
    const cur = params.get(`${path}.bias`);
    if (!cur) throw inputError('E_FORMAT', `${b.key}: the model has no bias ${path}.bias`, file);
    return { path, v: values(b, cur.shape, file) };
  });
  await applyLoftqBase(model, adapter.dir);
  // Everything is read and checked: now change the model.
  plans.forEach((p, index) => {
    const spec = { module: p.module, index, r: p.r, alpha: p.alpha, scale: p.scale, dropout: 0 };
    const m = p.m && constant(p.m, [p.m.length]);
    model.replace(p.module, new LoraLinear(p.base, spec, constant(p.A, [p.r, p.A.length / p.r]), constant(p.B, [p.B.length / p.r, p.r]), m));
  });
  for (const { path, v } of biasValues) {
    const owner = model.getModule(path);
    const lin = owner instanceof LoraLinear ? owner.base_layer : owner;
    lin?.setParameter('bias', constant(v, [v.length])).dispose();
  }
}
