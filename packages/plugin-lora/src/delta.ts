/**
 * The method's ΔW view (core plugin/method.ts): `delta` reads a saved LoRA adapter as per-module
 * low-rank updates ΔW = scale·B·A (scale = alpha / r or alpha / sqrt r from the config and its
 * patterns; DoRA's magnitude passed through), and `fromDelta` writes updates back as a PEFT LoRA
 * adapter holding them exactly: factors as given, and r / lora_alpha (+ rank_pattern / alpha_pattern
 * for modules that differ) chosen so PEFT recomputes each module's scale.
 * A ΔW cannot carry a trained bias: delta() refuses adapters that have one. A LoftQ adapter's ΔW is
 * relative to its LoftQ-quantized base, not the original weights.
 * Not here: merging the deltas (plugin-merge), applying them to a model (load.ts).
 */
import {
  bytesOf, getBackend, inputError, parsePeftKey, PeftError, peftKey, toF32,
  type LowRankDelta, type NamedRawTensor, type PeftAdapter, type RawTensor,
} from '@peft/core-tensor';
import { PEFT_VERSION, settingsFromPeftConfig } from './config.js';
import { moduleRank } from './targets.js';

const f32Of = (key: string, t: RawTensor) => Float32Array.from(toF32(getBackend(), { ...t, name: key } as RawTensor));

export function loraDelta(adapter: PeftAdapter): LowRankDelta[] {
  const where = `${adapter.dir}/adapter_config.json`;
  const s = settingsFromPeftConfig(adapter.config, where);
  const file = `${adapter.dir}/adapter_model.safetensors`;
  const byModule = new Map<string, Partial<Record<string, [string, RawTensor]>>>();
  for (const [key, t] of adapter.tensors) {
    const k = parsePeftKey(key);
    if (!k) throw inputError('E_INPUT', `${key}: a low-rank ΔW cannot carry this tensor (trained biases or extra modules)`, file);
    if (k.kind.startsWith('lora_embedding')) throw inputError('E_FORMAT', `${key}: embedding LoRA is not supported`, file);
    byModule.set(k.module, { ...byModule.get(k.module), [k.kind]: [key, t] });
  }
  return [...byModule].sort(([a], [b]) => a.localeCompare(b)).map(([module, p]) => {
    if (!p.lora_A || !p.lora_B) throw inputError('E_FORMAT', `${module}: lora_A and lora_B must both be present`, file);
    const [aKey, a] = p.lora_A;
    const [bKey, b] = p.lora_B;
    const [r, inF] = a.shape;
    const out = b.shape[0];
    if (a.shape.length !== 2 || b.shape.length !== 2 || b.shape[1] !== r) {
      throw inputError('E_FORMAT', `${bKey} [${b.shape.join(', ')}] does not fit ${aKey} [${a.shape.join(', ')}]`, file);
    }
    const rank = moduleRank(s, module);
    if (rank.r !== r) throw inputError('E_FORMAT', `${aKey} has rank ${r}, adapter_config.json gives ${module} r = ${rank.r}`, file);
    const d: LowRankDelta = { module, inFeatures: inF, outFeatures: out, r, A: f32Of(aKey, a), B: f32Of(bKey, b), scale: rank.scale };
    if (p.lora_magnitude_vector) {
      const [mKey, m] = p.lora_magnitude_vector;
      if (m.shape.length !== 1 || m.shape[0] !== out) throw inputError('E_FORMAT', `${mKey} has shape [${m.shape.join(', ')}], expected [${out}]`, file);
      d.magnitude = f32Of(mKey, m);
    }
    return d;
  });
}

/** The most common value (ties: the smallest), the base r / alpha the patterns deviate from. */
function mode(values: number[]): number {
  const counts = new Map<number, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts].sort((x, y) => y[1] - x[1] || x[0] - y[0])[0][0];
}

function checkDelta(d: LowRankDelta): void {
  const ok = d.A.length === d.r * d.inFeatures && d.B.length === d.outFeatures * d.r && Number.isFinite(d.scale) && d.r > 0
    && (!d.magnitude || d.magnitude.length === d.outFeatures);
  if (!ok) throw new PeftError('E_SHAPE', `fromDelta: ${d.module}: A/B/magnitude do not fit r=${d.r}, [${d.outFeatures}, ${d.inFeatures}]`);
}

export function loraFromDelta(deltas: readonly LowRankDelta[], like: Record<string, unknown>): { config: Record<string, unknown>; tensors: NamedRawTensor[] } {
  if (deltas.length === 0) throw new PeftError('E_INPUT', 'fromDelta: no deltas');
  const dora = deltas.filter((d) => d.magnitude).length;
  if (dora !== 0 && dora !== deltas.length) throw new PeftError('E_INPUT', 'fromDelta: some deltas carry a DoRA magnitude and some do not; one adapter cannot mix them');
  const rslora = like.use_rslora === true;
  // scale = alpha / r (rsLoRA alpha / sqrt r)  =>  alpha = scale·r (scale·sqrt r)
  // 15 significant digits undo the last-bit noise of (alpha / r)·r, so alpha / r gives back the scale.
  const alphaOf = (d: LowRankDelta) => Number((d.scale * (rslora ? Math.sqrt(d.r) : d.r)).toPrecision(15));
  deltas.forEach(checkDelta);
  const r = mode(deltas.map((d) => d.r));
  const alpha = mode(deltas.map(alphaOf));
  const rankPattern: Record<string, number> = {};
  const alphaPattern: Record<string, number> = {};
  const tensors: NamedRawTensor[] = [];
  for (const d of deltas) {
    // Keys are regexes matched as `(.*\.)?(key)$`: the escaped full path names exactly this module.
    const key = d.module.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    if (d.r !== r) rankPattern[key] = d.r;
    if (alphaOf(d) !== alpha) alphaPattern[key] = alphaOf(d);
    tensors.push({ name: peftKey(d.module, 'lora_A'), dtype: 'F32', shape: [d.r, d.inFeatures], data: bytesOf(d.A) });
    tensors.push({ name: peftKey(d.module, 'lora_B'), dtype: 'F32', shape: [d.outFeatures, d.r], data: bytesOf(d.B) });
    if (d.magnitude) tensors.push({ name: peftKey(d.module, 'lora_magnitude_vector'), dtype: 'F32', shape: [d.outFeatures], data: bytesOf(d.magnitude) });
  }
  const targets = [...new Set(deltas.map((d) => d.module.slice(d.module.lastIndexOf('.') + 1)))].sort();
  const config: Record<string, unknown> = {
    peft_version: PEFT_VERSION, task_type: 'CAUSAL_LM', ...like, peft_type: 'LORA', r, lora_alpha: alpha, rank_pattern: rankPattern,
    alpha_pattern: alphaPattern, target_modules: targets, use_dora: dora > 0, use_rslora: rslora, init_lora_weights: true,
    bias: 'none', fan_in_fan_out: false,
  };
  return { config, tensors };
}
