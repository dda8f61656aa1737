/**
 * A minimal LoRA method for the adapter-job tests, written from PEFT's definitions
 * (tuners/lora/config.py, layer.py): ΔW = s · B · A with s = lora_alpha / r, or lora_alpha / √r
 * with use_rslora; rank_pattern / alpha_pattern keys match a module by `(.*\.)?(key)$`; DoRA's
 * magnitude is `lora_magnitude_vector`; when the config has target_modules, only the modules it
 * matches give updates (core matching). Only delta() / fromDelta(): it cannot train or load.
 * The jobs find it in the registry by peft_type, as they find plugin-lora.
 */
import {
  asF32, matchesTarget, parsePeftKey, peftKey, peftTargetRules, type AdapterKeys, type LowRankDelta, type MethodDef, type NamedRawTensor,
  type PeftAdapter,
} from '../src/index.js';

/** PEFT's LoRA key names (save_and_load.py): factors with `.weight`, DoRA's magnitude without. */
export const TEST_LORA_KEYS: AdapterKeys = {
  prefix: 'lora_',
  parts: { lora_A: { saved: '.weight' }, lora_B: { saved: '.weight' }, lora_magnitude_vector: { saved: '', inMemory: '.default.weight' } },
};
export const loraKey = (module: string, part: 'lora_A' | 'lora_B' | 'lora_magnitude_vector') => peftKey(TEST_LORA_KEYS, module, part);

function pattern(p: unknown, module: string): number | undefined {
  if (!p || typeof p !== 'object') return undefined;
  for (const [key, v] of Object.entries(p as Record<string, number>)) if (new RegExp(`(.*\\.)?(${key})$`).test(module)) return v;
  return undefined;
}

function deltaOf(adapter: PeftAdapter): LowRankDelta[] {
  const c = adapter.config;
  // A config without target_modules: every module of the file (a test double, not PEFT's per-model default).
  const rules = c.target_modules === undefined ? undefined : peftTargetRules(c, [], adapter.dir);
  const modules = new Set<string>();
  for (const k of adapter.tensors.keys()) {
    const p = parsePeftKey(TEST_LORA_KEYS, k);
    if (p?.part === 'lora_A' && (!rules || matchesTarget(rules, p.module))) modules.add(p.module);
  }
  return [...modules].sort().map((module) => {
    const A = adapter.tensors.get(loraKey(module, 'lora_A'))!;
    const B = adapter.tensors.get(loraKey(module, 'lora_B'))!;
    const m = adapter.tensors.get(loraKey(module, 'lora_magnitude_vector'));
    const r = pattern(c.rank_pattern, module) ?? (c.r as number);
    const alpha = pattern(c.alpha_pattern, module) ?? (c.lora_alpha as number);
    const scale = alpha / (c.use_rslora ? Math.sqrt(r) : r);
    return {
      module, r: A.shape[0], inFeatures: A.shape[1], outFeatures: B.shape[0],
      A: Float32Array.from(asF32(A.data)), B: Float32Array.from(asF32(B.data)), scale,
      ...(m ? { magnitude: Float32Array.from(asF32(m.data)) } : {}),
    };
  });
}

function fromDelta(deltas: readonly LowRankDelta[], like: Record<string, unknown>) {
  const r = Math.max(...deltas.map((d) => d.r));
  const rankPattern: Record<string, number> = {};
  const alphaPattern: Record<string, number> = {};
  const tensors: NamedRawTensor[] = [];
  for (const d of deltas) {
    if (d.r !== r) rankPattern[d.module] = d.r;
    if (d.r * d.scale !== r) alphaPattern[d.module] = d.r * d.scale;
    tensors.push({ name: loraKey(d.module, 'lora_A'), dtype: 'F32', shape: [d.r, d.inFeatures], data: new Uint8Array(Float32Array.from(d.A).buffer) });
    tensors.push({ name: loraKey(d.module, 'lora_B'), dtype: 'F32', shape: [d.outFeatures, d.r], data: new Uint8Array(Float32Array.from(d.B).buffer) });
  }
  const config = { ...like, r, lora_alpha: r, use_rslora: false, rank_pattern: rankPattern, alpha_pattern: alphaPattern };
  return { config, tensors };
}

export const testLora: MethodDef = {
  name: 'test-lora',
  description: 'LoRA delta()/fromDelta() for tests',
  options: {},
  peftType: 'LORA',
  keys: TEST_LORA_KEYS,
  attach: () => Promise.reject(new Error('test-lora cannot train')),
  loadAdapter: () => Promise.reject(new Error('test-lora cannot load')),
  delta: deltaOf,
  fromDelta,
};

/** s · B · A of `d` as f64 [out, in] (the test's own product, not the job's). */
export function denseDelta(d: LowRankDelta): Float64Array {
  const out = new Float64Array(d.outFeatures * d.inFeatures);
  for (let i = 0; i < d.outFeatures; i++) {
    for (let j = 0; j < d.inFeatures; j++) {
      let s = 0;
      for (let k = 0; k < d.r; k++) s += d.B[i * d.r + k] * d.A[k * d.inFeatures + j];
      out[i * d.inFeatures + j] = d.scale * s;
    }
  }
  return out;
}

/** ||x − y||_F / ||y||_F */
export function relFrobenius(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let e = 0, n = 0;
  for (let i = 0; i < y.length; i++) {
    e += (x[i] - y[i]) ** 2;
    n += y[i] ** 2;
  }
  return Math.sqrt(e / n);
}
