/**
 * `loadAdapter`: applies a saved LoRA / rsLoRA / DoRA adapter folder (ours or PEFT's) to a loaded
 * model for inference, as PeftModel.from_pretrained does: wrap the modules the config's target_modules
 * (& layers_to_transform, exclude_modules) match in this model (tuners_utils.py inject_adapter; none
 * matched is refused, as PEFT raises), load their lora_A / lora_B (/ lora_magnitude_vector) as f32
 * whatever their stored float dtype, load trained biases, no gradients anywhere. Tensors of modules
 * not targeted are not applied (set_peft_model_state_dict drops them) and reported, with the targeted
 * modules the file has nothing for, in the returned AdapterLoadReport. Ranks come from the tensors and
 * must agree with the config (r / rank_pattern); the scaling comes from the config (lora_alpha /
 * alpha_pattern / use_rslora). A shape that does not fit the module, an unknown key, an unsupported kind
 * (embedding LoRA, modules_to_save), a DoRA config without magnitudes or a non-finite value is E_FORMAT
 * naming the key (keys.ts). A LoftQ folder's loftq_base.safetensors replaces the wrapped modules' base
 * weights first (save.ts).
 * Not here: training-time wrapping (attach.ts), reading the folder's bytes (core io/peft-adapter.ts).
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import {
  asF32, decodeQuantState, frozenTensor, isLinear, keep, readPeftAdapter, SafetensorsFile, tensor, type Linear,
  inputError, type AdapterLoadReport, type KeyedTensor, type Llama, type Tensor,
} from '@peft/core-tensor';
import { settingsFromPeftConfig } from './config.js';
import { checkScale, f32Values, sortLoraTensors } from './keys.js';
import { LoraLinear } from './layer.js';
import { LOFTQ_BASE_FILE } from './save.js';
import { moduleRank, selectTargets } from './targets.js';

/** Trained biases by module path (`<module>.bias` or `<module>.base_layer.bias`); any other key is refused. */
function biasKeys(other: readonly KeyedTensor[], file: string): Map<string, KeyedTensor> {
  const biases = new Map<string, KeyedTensor>();
  for (const p of other) {
    const b = /^base_model\.model\.(.+?)(\.base_layer)?\.bias$/.exec(p.key);
    if (!b) throw inputError('E_FORMAT', `${p.key}: not a LoRA tensor (modules_to_save and other extras are not supported)`, file);
    biases.set(b[1], p);
  }
  return biases;
}

function values(p: KeyedTensor, shape: readonly number[], file: string): Float32Array {
  const ok = p.t.shape.length === shape.length && p.t.shape.every((v, i) => v === shape[i]);
  if (!ok) throw inputError('E_FORMAT', `${p.key} has shape [${p.t.shape.join(', ')}], the model needs [${shape.join(', ')}]`, file);
  return f32Values(p, file);
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

export async function loadLoraAdapter(model: Llama, dir: string, config: Record<string, unknown>): Promise<AdapterLoadReport> {
  const file = join(dir, 'adapter_model.safetensors');
  const s = settingsFromPeftConfig(config, join(dir, 'adapter_config.json'));
  const adapter = await readPeftAdapter(dir);
  const targets = selectTargets(model, s.rules);
  const targetSet = new Set(targets);
  const sorted = sortLoraTensors(adapter.tensors, s.useDora, file, (m) => targetSet.has(m));
  const biases = biasKeys(sorted.other, file);
  const plans = sorted.modules.map(({ module, A, B, magnitude }) => {
    const base = model.getModule(module) as Linear;
    const { r, alpha, scale } = moduleRank(s, module);
    checkScale(module, scale, alpha, join(dir, 'adapter_config.json'));
    if (A.t.shape[0] !== r) throw inputError('E_FORMAT', `${A.key} has rank ${A.t.shape[0]}, adapter_config.json gives ${module} r = ${r}`, file);
    const [out, inF] = base.weight.shape;
    return { module, base, r, alpha, scale, A: values(A, [r, inF], file), B: values(B, [out, r], file), m: magnitude && values(magnitude, [out], file) };
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
  const applied = new Set(plans.map((p) => p.module));
  return { modules: [...applied], unused: sorted.unused, missing: targets.filter((t) => !applied.has(t)) };
}
