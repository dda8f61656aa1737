/**
 * The method's ΔW view (core plugin/method.ts): `delta` reads a saved LoRA adapter as per-module
 * low-rank updates ΔW = scale·B·A (scale = alpha / r or alpha / sqrt r from the config and its
 * patterns; DoRA's magnitude passed through), and `fromDelta` writes updates back as a PEFT LoRA
 * adapter holding them exactly: factors as given, and r / lora_alpha (+ rank_pattern / alpha_pattern
 * for modules that differ) chosen so PEFT recomputes each module's scale.
 * Only the modules the config targets give updates (the same rules as loading, keys.ts); the core
 * reports the other modules' tensors as unused. A ΔW cannot carry a trained bias: delta() refuses
 * adapters that have one. A LoftQ adapter's ΔW is relative to its LoftQ-quantized base, not the
 * original weights.
 * Not here: merging the deltas (plugin-merge), applying them to a model (load.ts).
 */
import { bytesOf, inputError, matchesTarget, PeftError, type LowRankDelta, type NamedRawTensor, type PeftAdapter } from '@peft/core-tensor';
import { PEFT_VERSION, settingsFromPeftConfig } from './config.js';
import { checkScale, f32Values, loraKey, sortLoraTensors } from './keys.js';
import { moduleRank } from './targets.js';

/** The updates of the modules the config targets (by name: no model here), in module order. */
export function loraDelta(adapter: PeftAdapter): LowRankDelta[] {
  const where = `${adapter.dir}/adapter_config.json`;
  const s = settingsFromPeftConfig(adapter.config, where);
  const file = `${adapter.dir}/adapter_model.safetensors`;
  const sorted = sortLoraTensors(adapter.tensors, s.useDora, file, (m) => matchesTarget(s.rules, m));
  if (sorted.other.length) throw inputError('E_INPUT', `${sorted.other[0].key}: a low-rank ΔW cannot carry this tensor (trained biases or extra modules)`, file);
  return sorted.modules.sort((x, y) => x.module.localeCompare(y.module)).map(({ module, A, B, magnitude }) => {
    const [r, inF] = A.t.shape;
    const out = B.t.shape[0];
    if (A.t.shape.length !== 2 || B.t.shape.length !== 2 || B.t.shape[1] !== r) {
      throw inputError('E_FORMAT', `${B.key} [${B.t.shape.join(', ')}] does not fit ${A.key} [${A.t.shape.join(', ')}]`, file);
    }
    const rank = moduleRank(s, module);
    if (rank.r !== r) throw inputError('E_FORMAT', `${A.key} has rank ${r}, adapter_config.json gives ${module} r = ${rank.r}`, file);
    checkScale(module, rank.scale, rank.alpha, where);
    const d: LowRankDelta = { module, inFeatures: inF, outFeatures: out, r, A: f32Values(A, file), B: f32Values(B, file), scale: rank.scale };
    if (magnitude) {
      if (magnitude.t.shape.length !== 1 || magnitude.t.shape[0] !== out) throw inputError('E_FORMAT', `${magnitude.key} has shape [${magnitude.t.shape.join(', ')}], expected [${out}]`, file);
      d.magnitude = f32Values(magnitude, file);
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
    tensors.push({ name: loraKey(d.module, 'lora_A'), dtype: 'F32', shape: [d.r, d.inFeatures], data: bytesOf(d.A) });
    tensors.push({ name: loraKey(d.module, 'lora_B'), dtype: 'F32', shape: [d.outFeatures, d.r], data: bytesOf(d.B) });
    if (d.magnitude) tensors.push({ name: loraKey(d.module, 'lora_magnitude_vector'), dtype: 'F32', shape: [d.outFeatures], data: bytesOf(d.magnitude) });
  }
  const targets = [...new Set(deltas.map((d) => d.module.slice(d.module.lastIndexOf('.') + 1)))].sort();
  // The targets must choose every module written: no layer or exclusion filters carried over from `like`.
  const config: Record<string, unknown> = {
    peft_version: PEFT_VERSION, task_type: 'CAUSAL_LM', ...like, peft_type: 'LORA', r, lora_alpha: alpha, rank_pattern: rankPattern,
    alpha_pattern: alphaPattern, target_modules: targets, layers_to_transform: null, layers_pattern: null, exclude_modules: null,
    use_dora: dora > 0, use_rslora: rslora, init_lora_weights: true, bias: 'none', fan_in_fan_out: false,
  };
  return { config, tensors };
}
