/**
 * Generalized task arithmetic (mergekit/merge_methods/generalized_task_arithmetic.py): the one
 * implementation behind task_arithmetic, ties, dare_*, breadcrumbs*, della*; each is a preset of
 * `TaskArithmeticSettings` (task-arithmetic-family.ts). Per tensor, with θ the model tensors:
 *
 *   δᵢ = θᵢ - θ_base, sparsified per model (sparsify.ts, own density / gamma / epsilon)
 *   Wᵢ = wᵢ δᵢ
 *   consensus "sum":   M = sign(Σ Wᵢ) (0 counts as +),  "count": M = sign(Σ sign Wᵢ)
 *   maskᵢ = (sign Wᵢ == M);  mixed = Σ maskᵢ Wᵢ;  divisor = Σ maskᵢ wᵢ (0 -> 1)
 *   no consensus:            mixed = Σ Wᵢ;        divisor = Σ wᵢ (|·| < 1e-8 -> 1)
 *   normalize: mixed /= divisor;  mixed *= lambda;  out = θ_base + mixed
 *
 * f32 throughout in torch's order (products rounded, sums accumulated model by model in f32), so
 * sign decisions agree with mergekit bit for bit. `int8_mask` only changes mergekit's mask dtype:
 * accepted, no effect. `consensus_method` is an addition (mergekit fixes "sum" per preset).
 * Deviation: a merge without consensus whose weights sum to 0 with normalize on is refused
 * (mergekit silently divides by 1 instead).
 */
import { mergeRng, type MergeParams, type MergerDef, type MergeTensorInput, type OptionsSchema } from '@peft/core-tensor';
import { defineMergeMethod, f32, num, paramError, WEIGHT } from './define.js';
import { sparsify, type SparsifyMethod } from './sparsify.js';

export interface TaskArithmeticSettings {
  name: string;
  description: string;
  paper: string;
  consensus: 'sum' | null;
  sparsification: SparsifyMethod | null;
  defaultNormalize: boolean;
  defaultRescale: boolean;
}

function perModelOptions(s: TaskArithmeticSettings): OptionsSchema {
  return {
    weight: WEIGHT,
    density: { type: 'number', min: 0, max: 1, default: 1, description: 'Fraction of the task vector kept, in (0, 1]' },
    ...(s.sparsification === 'magnitude_outliers'
      ? { gamma: { type: 'number', min: 0, max: 1, default: 0.01, description: 'Fraction of the largest |delta| dropped as outliers' } }
      : {}),
    ...(s.sparsification === 'della_magprune'
      ? { epsilon: { type: 'number', min: 0, max: 1, default: 0.15, description: 'Keep probabilities run over density -/+ epsilon by magnitude rank' } }
      : {}),
  };
}

function globalOptions(s: TaskArithmeticSettings): OptionsSchema {
  return {
    normalize: { type: 'boolean', default: s.defaultNormalize, description: 'Divide the mixed task vector by the sum of (agreeing) weights' },
    rescale: { type: 'boolean', default: s.defaultRescale, description: 'Rescale each sparsified task vector to its former L1 norm' },
    lambda: { type: 'number', default: 1, description: 'Scale of the merged task vector' },
    int8_mask: { type: 'boolean', default: false, description: 'Accepted from mergekit recipes; no effect (masks are exact here)' },
    ...(s.consensus
      ? { consensus_method: { type: 'enum', choices: ['sum', 'count'], default: s.consensus, description: 'Sign election: by summed weighted deltas or by counting signs' } }
      : {}),
  } as OptionsSchema;
}

function checkParams(s: TaskArithmeticSettings, p: MergeParams): void {
  const n = p.shape.reduce((a, b) => a * b, 1);
  for (const o of p.perModel) {
    const density = num(o, 'density');
    if (!(density > 0)) throw paramError(s.name, p, `density must be in (0, 1], got ${density}`);
    if (density >= 1) continue;
    if (s.sparsification === 'magnitude' && Math.trunc(density * n) < 1) {
      throw paramError(s.name, p, `density ${density} keeps no element of ${n}`);
    }
    if (s.sparsification === 'della_magprune') {
      const eps = num(o, 'epsilon');
      if (density - eps <= 0 || density + eps >= 1) {
        throw paramError(s.name, p, `density +/- epsilon must lie in (0, 1), got density ${density}, epsilon ${eps}`);
      }
      if (p.shape.length >= 2 && p.shape[1] === 1) throw paramError(s.name, p, 'della ranks along dimension 1, which has a single element');
    }
  }
  if (!s.consensus && p.global.normalize === true) {
    let sum = 0;
    for (const o of p.perModel) sum = f32(sum + f32(num(o, 'weight')));
    if (Math.abs(sum) < 1e-8) throw paramError(s.name, p, 'the weights sum to 0 and normalize is on');
  }
}

function merge(s: TaskArithmeticSettings, input: MergeTensorInput): Float32Array {
  const { base, models, out, global: g } = input;
  if (!base) throw new Error(`${s.name}: the driver passed no base tensor`);
  const w = input.perModel.map((o) => f32(num(o, 'weight'))); // torch.tensor(weights, dtype=f32)
  models.forEach((d, i) => {
    for (let j = 0; j < d.length; j++) d[j] -= base[j];
    if (!s.sparsification) return;
    const o = input.perModel[i];
    sparsify(d, s.sparsification, {
      density: num(o, 'density'), gamma: (o.gamma as number) ?? 0, epsilon: (o.epsilon as number) ?? 0,
      rescale: g.rescale === true, shape: input.shape, rng: mergeRng(input.seed, i), scratch: out,
    });
  });
  const lambda = num(g, 'lambda');
  const scale: Scale = { normalize: g.normalize === true, lambda, lam: f32(lambda) };
  if (s.consensus) mixConsensus(base, models, w, g.consensus_method === 'count', scale, out);
  else mixPlain(base, models, w, scale, out);
  return out;
}

interface Scale {
  normalize: boolean;
  lambda: number;
  /** lambda as the f32 torch multiplies by */
  lam: number;
}

/** normalize, then lambda (in that order, as mergekit). */
function scaled(mixed: number, divisor: number, s: Scale): number {
  if (s.normalize) mixed = f32(mixed / divisor);
  return s.lambda !== 1 ? f32(mixed * s.lam) : mixed;
}

function mixPlain(base: Float32Array, d: readonly Float32Array[], w: number[], s: Scale, out: Float32Array): void {
  let divisor = 0;
  for (const wi of w) divisor = f32(divisor + wi);
  if (Math.abs(divisor) < 1e-8) divisor = 1;
  for (let j = 0; j < base.length; j++) {
    let mixed = 0;
    for (let i = 0; i < d.length; i++) mixed = f32(mixed + f32(d[i][j] * w[i]));
    out[j] = base[j] + scaled(mixed, divisor, s);
  }
}

/** 1 when the f32 with these bits is nonzero (either sign), else 0; no branch. */
const nonzero = (b: number): number => ((b & 0x7fffffff) + 0x7fffffff) >>> 31;

/**
 * TIES sign election and disjoint sum (get_mask). Written without data-dependent branches: the
 * signs of random deltas are coin flips, and mispredicted branches cost more than the arithmetic.
 * Each element's weighted deltas go through a tiny f32 scratch whose bits give signs exactly:
 * agreeᵢ = (Wᵢ != 0) and (sign Wᵢ == M), with M negative only for a nonzero negative vote.
 */
function mixConsensus(base: Float32Array, d: readonly Float32Array[], w: number[], count: boolean, s: Scale, out: Float32Array): void {
  const n = d.length;
  const wd = new Float32Array(n + 2); // W₀..Wₙ₋₁, the vote, the divisor
  const bits = new Int32Array(wd.buffer);
  for (let j = 0; j < base.length; j++) {
    let vote = 0;
    for (let i = 0; i < n; i++) {
      wd[i] = d[i][j] * w[i]; // rounded to f32 on store, as torch's product
      // count: Σ sign Wᵢ (exact small integers); sum: Σ Wᵢ in f32, model by model
      vote = count ? vote + nonzero(bits[i]) * (1 - 2 * (bits[i] >>> 31)) : f32(vote + wd[i]);
    }
    wd[n] = vote;
    const negative = (bits[n] >>> 31) & nonzero(bits[n]); // vote >= 0 (and -0) elects +
    let mixed = 0;
    let divisor = 0;
    for (let i = 0; i < n; i++) {
      const agree = nonzero(bits[i]) & (1 ^ ((bits[i] >>> 31) ^ negative));
      mixed = f32(mixed + wd[i] * agree);
      divisor = f32(divisor + w[i] * agree);
    }
    wd[n + 1] = divisor;
    out[j] = base[j] + scaled(mixed, divisor + (1 ^ nonzero(bits[n + 1])), s); // a zero divisor becomes 1
  }
}

export function taskArithmetic(s: TaskArithmeticSettings): MergerDef {
  return defineMergeMethod(
    {
      name: s.name, description: s.description, paper: s.paper, base: 'required', models: { min: 1 },
      options: globalOptions(s), perModelOptions: perModelOptions(s), required: ['weight'],
      checkParams: (p) => checkParams(s, p),
    },
    (input) => merge(s, input),
  );
}
