/**
 * Merging LoRA-style adapters into one adapter (`peft merge --adapter ... --method ...`), without
 * PEFT's add_weighted_adapter pitfalls (REFERENCES.md): no cross terms (A's and B's are never
 * combined separately), each adapter's scaling sᵢ applied exactly once (read from its own config by
 * its method, so rsLoRA and rank/alpha patterns are honoured), and the written adapter has scaling 1
 * and use_rslora false, so nothing is scaled again at load time. The method is any registered merger:
 *
 *   exact     a merger with mergeFactors (cat: A = [A₁; A₂; ...], B = [w₁s₁B₁, w₂s₂B₂, ...], rank Σ rᵢ,
 *             so that B·A = Σ wᵢ sᵢ Bᵢ Aᵢ) combines each module's factors; nothing is truncated.
 *   dense     any other merger (linear, ties, dare_linear, dare_ties, ...) on the full updates
 *             ΔWᵢ = sᵢ Bᵢ Aᵢ of each module, with a zero base (task-vector semantics) and weight wᵢ /
 *             density per adapter; the merged ΔW is truncated back to rank r by SVD (Eckart-Young),
 *             B = U_r √S_r, A = √S_r V_rᵀ. The relative Frobenius error ||ΔW − B A|| / ||ΔW|| of that
 *             step is reported per module and in total.
 * A module missing from some adapters counts as a zero update there. DoRA adapters are refused
 * (their magnitudes do not combine linearly; fold them into the base instead). Inputs are checked
 * finite when read (deltas.ts), merged updates and the written tensors before writing.
 * Cost: the SVD runs on each dense [out, in] update (linalg/svd.ts, one-sided Jacobi: fine for
 * adapter-sized layers, slow beyond ~1024²).
 * Not here: folding into a base (fold.ts), how keys become ΔW (the method's delta / fromDelta).
 */
import type { NamedRawTensor } from '../../dtype.js';
import { inputError, PeftError } from '../../errors.js';
import { checkFinite, checkFiniteRaw } from '../../finite.js';
import { hashString } from '../../random/rng.js';
import { writePeftAdapter } from '../../io/peft-adapter.js';
import { withOutput, type Output } from '../../io/output-guard.js';
import { lowRankApprox } from '../../linalg/index.js';
import type { LowRankDelta, MethodDef } from '../../plugin/method.js';
import type { MergerDef } from '../../plugin/merger.js';
import { resolveOptions, type ResolvedOptions } from '../../plugin/options.js';
import type { Registry } from '../../plugin/registry.js';
import { addProduct, adapterWarnings, checkSameShape, readAdapterDeltas, type AdapterDeltas } from './deltas.js';

export interface MergeAdaptersOptions {
  /** PEFT adapter folders. */
  adapters: string[];
  /** One per adapter (default 1 each). */
  weights?: number[];
  /** The name of a registered merger: 'cat', 'linear', 'ties', 'dare_linear', 'dare_ties', ... */
  method: string;
  /** Per-adapter density for sparsifying mergers (ties, dare_*). */
  density?: number;
  /** Rank after the SVD (default: the largest input rank of the module). Not used by exact mergers (cat). */
  rank?: number;
  /** Further global options of the merger (e.g. normalize, lambda). */
  options?: Record<string, unknown>;
  /** Seed of random mergers (dare_*); each module draws from (seed, module name). */
  seed?: number;
  out: string;
  force?: boolean;
}

export interface ModuleMergeReport {
  module: string;
  rank: number;
  /** ||ΔW − B A||_F / ||ΔW||_F of the SVD truncation (0 for exact mergers). */
  relError: number;
}

export interface MergeAdaptersReport {
  method: string;
  adapters: number;
  modules: number;
  /** Largest rank written. */
  rank: number;
  /** sqrt(Σ ||ΔW − B A||²) / sqrt(Σ ||ΔW||²) over all modules (0 for exact mergers). */
  relError: number;
  perModule: ModuleMergeReport[];
  /** Warning lines (deltas.ts adapterWarnings): tensors of the inputs that PEFT would not apply. */
  warnings: string[];
  seconds: number;
}

interface Part {
  d: LowRankDelta;
  w: number;
  dir: string;
  /** Which adapter (the same folder may be given twice). */
  index: number;
}

/** Module -> the adapters' updates of it (with their weights), modules sorted. */
function byModule(inputs: AdapterDeltas[], weights: number[]): Map<string, Part[]> {
  const map = new Map<string, Part[]>();
  inputs.forEach((a, i) => {
    for (const d of a.deltas.values()) {
      if (d.magnitude) throw inputError('E_INPUT', `module ${d.module} is DoRA: DoRA adapters cannot be merged (fold them into the base instead)`, a.dir);
      map.set(d.module, [...(map.get(d.module) ?? []), { d, w: weights[i], dir: a.dir, index: i }]);
    }
  });
  return new Map([...map].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

interface MergerJob {
  def: MergerDef;
  global: ResolvedOptions;
  perModel: ResolvedOptions[];
  seed: number;
  rank?: number;
}

function mergerJob(opts: MergeAdaptersOptions, weights: number[], registry: Registry): MergerJob {
  const def = registry.get('merger', opts.method);
  if (def.mergeFactors && (opts.density !== undefined || opts.rank !== undefined)) throw inputError('E_INPUT', `${def.name} is exact: density and rank do not apply`);
  const n = opts.adapters.length;
  if (n < def.models.min || (def.models.max !== undefined && n > def.models.max)) {
    const want = def.models.max === def.models.min ? `${def.models.min}` : `${def.models.min}..${def.models.max ?? 'any'}`;
    throw inputError('E_INPUT', `merger "${def.name}" combines ${want} model(s) besides its base, got ${n} adapters`);
  }
  const hasWeight = Object.hasOwn(def.perModelOptions, 'weight');
  if (!hasWeight && opts.weights) throw inputError('E_INPUT', `merger "${def.name}" takes no per-model weights`);
  const global = resolveOptions(def.name, def.options, opts.options ?? {});
  const perModel = weights.map((weight) => resolveOptions(def.name, def.perModelOptions, {
    ...(hasWeight ? { weight } : {}), ...(opts.density === undefined ? {} : { density: opts.density }),
  }));
  if (opts.rank !== undefined && !(Number.isSafeInteger(opts.rank) && opts.rank >= 1)) throw inputError('E_INPUT', `rank must be a positive integer, got ${opts.rank}`);
  return { def, global, perModel, seed: opts.seed ?? 0, rank: opts.rank };
}

/** An exact merger's factors for one module (scale 1 expected back; checked by checkRoundTrip). */
function factorModule(module: string, parts: Part[], job: MergerJob): LowRankDelta {
  const { out, in: n } = checkSameShape(module, parts);
  const delta = job.def.mergeFactors!({
    module, outFeatures: out, inFeatures: n, global: job.global, parts: parts.map((p) => ({ delta: p.d, options: job.perModel[p.index] })),
  });
  if (delta.module !== module || delta.outFeatures !== out || delta.inFeatures !== n || delta.scale !== 1) {
    throw new PeftError('E_RUNTIME', `merger "${job.def.name}": mergeFactors gave module ${delta.module} [${delta.outFeatures}, ${delta.inFeatures}] scale ${delta.scale}, expected ${module} [${out}, ${n}] scale 1`);
  }
  return delta;
}

/** Merger + SVD for one module: the rank-r factors (scale 1) and the truncation error terms. */
function mergeModule(module: string, parts: Part[], inputs: AdapterDeltas[], job: MergerJob): { delta: LowRankDelta; err2: number; norm2: number } {
  const { out, in: n } = checkSameShape(module, parts);
  const size = out * n;
  const models = inputs.map((_, i) => {
    const m = new Float32Array(size);
    const p = parts.find((x) => x.index === i);
    if (p) addProduct(m, p.d, 1); // ΔWᵢ = sᵢ Bᵢ Aᵢ; the merger applies wᵢ
    return m;
  });
  const params = { name: module, shape: [out, n], global: job.global, perModel: job.perModel };
  job.def.checkParams?.(params);
  const merged = Float32Array.from(job.def.mergeTensor({
    ...params, base: job.def.base === 'none' ? undefined : new Float32Array(size), models,
    out: new Float32Array(size), seed: hashString(`${job.seed >>> 0}:${module}`),
  }));
  checkFinite(merged, { what: `the merged update of module ${module}`, code: 'E_INPUT', hint: 'the weighted updates overflow float32' });
  const r = Math.min(job.rank ?? parts.reduce((m, p) => Math.max(m, p.d.r), -Infinity), out, n);
  const f = lowRankApprox(merged, out, n, r);
  const delta: LowRankDelta = { module, inFeatures: n, outFeatures: out, r, A: Float32Array.from(f.R), B: Float32Array.from(f.L), scale: 1 };
  const approx = new Float64Array(size);
  addProduct(approx, delta, 1);
  let err2 = 0, norm2 = 0;
  for (let j = 0; j < size; j++) {
    err2 += (merged[j] - approx[j]) ** 2;
    norm2 += merged[j] ** 2;
  }
  return { delta, err2, norm2 };
}

/** The config the merged adapter starts from: the first one's, with scaling 1 and no rsLoRA. */
function likeConfig(first: Record<string, unknown>, deltas: LowRankDelta[]): Record<string, unknown> {
  const targets = [...new Set(deltas.map((d) => d.module.slice(d.module.lastIndexOf('.') + 1)))].sort();
  const r = deltas.reduce((m, d) => Math.max(m, d.r), -Infinity);
  return { ...first, target_modules: targets, r, lora_alpha: r, use_rslora: false, use_dora: false, rank_pattern: {}, alpha_pattern: {} };
}

/** fromDelta must give back scale 1 and the same ranks (a method that rescales would double-scale). */
function checkRoundTrip(method: MethodDef, written: { config: Record<string, unknown>; tensors: NamedRawTensor[] }, deltas: LowRankDelta[], out: string): void {
  const tensors = new Map(written.tensors.map((t) => [t.name, { dtype: t.dtype, shape: t.shape, data: t.data }]));
  const back = method.delta!({ dir: out, config: written.config, tensors, metadata: {}, floatKeys: new Set() });
  const want = new Map(deltas.map((d) => [d.module, d]));
  for (const d of back) {
    const w = want.get(d.module);
    if (!w || w.r !== d.r || Math.abs(d.scale - 1) > 1e-12) {
      throw new PeftError('E_RUNTIME', `method "${method.name}": fromDelta does not round-trip module ${d.module} (r ${d.r} vs ${w?.r}, scale ${d.scale} vs 1)`);
    }
  }
  if (back.length !== deltas.length) throw new PeftError('E_RUNTIME', `method "${method.name}": fromDelta wrote ${back.length} modules, expected ${deltas.length}`);
}

export async function mergeAdapters(opts: MergeAdaptersOptions, registry: Registry): Promise<MergeAdaptersReport> {
  return withOutput({ command: 'merge', out: opts.out, inputs: opts.adapters, force: opts.force }, (output) => mergeAdaptersInto(output, opts, registry));
}

async function mergeAdaptersInto(output: Output, opts: MergeAdaptersOptions, registry: Registry): Promise<MergeAdaptersReport> {
  const t0 = performance.now();
  if (opts.adapters.length < 1) throw inputError('E_INPUT', 'no adapters to merge');
  const weights = opts.weights ?? opts.adapters.map(() => 1);
  if (weights.length !== opts.adapters.length) throw inputError('E_INPUT', `${weights.length} weights for ${opts.adapters.length} adapters`);
  if (!weights.every(Number.isFinite)) throw inputError('E_INPUT', `adapter weights must be finite numbers, got ${weights.join(', ')}`);
  const job = mergerJob(opts, weights, registry);
  const inputs: AdapterDeltas[] = [];
  for (const dir of opts.adapters) inputs.push(await readAdapterDeltas(dir, registry));
  const method = inputs[0].method;
  const other = inputs.find((a) => a.method !== method);
  if (other) throw inputError('E_INPUT', `adapters of different methods (${method.name}, ${other.method.name}) cannot be merged`, other.dir);
  if (typeof method.fromDelta !== 'function') throw inputError('E_INPUT', `method "${method.name}" cannot write merged updates (no fromDelta)`, inputs[0].dir);

  const deltas: LowRankDelta[] = [];
  const perModule: ModuleMergeReport[] = [];
  let err2 = 0, norm2 = 0;
  for (const [module, parts] of byModule(inputs, weights)) {
    if (job.def.mergeFactors) {
      deltas.push(factorModule(module, parts, job));
      perModule.push({ module, rank: deltas[deltas.length - 1].r, relError: 0 });
      continue;
    }
    const m = mergeModule(module, parts, inputs, job);
    deltas.push(m.delta);
    perModule.push({ module, rank: m.delta.r, relError: m.norm2 > 0 ? Math.sqrt(m.err2 / m.norm2) : 0 });
    err2 += m.err2;
    norm2 += m.norm2;
  }
  const written = method.fromDelta(deltas, likeConfig(inputs[0].adapter.config, deltas));
  checkRoundTrip(method, written, deltas, opts.out);
  for (const t of written.tensors) checkFiniteRaw(t, { what: `the merged tensor ${t.name}`, code: 'E_INPUT', hint: 'the weighted updates overflow its dtype' });
  await writePeftAdapter(output, { config: written.config, tensors: written.tensors, floatKeys: inputs[0].adapter.floatKeys });
  return {
    method: job.def.name, adapters: inputs.length, modules: deltas.length, rank: deltas.reduce((m, d) => Math.max(m, d.r), -Infinity),
    relError: norm2 > 0 ? Math.sqrt(err2 / norm2) : 0, perModule, seconds: (performance.now() - t0) / 1000,
    warnings: inputs.flatMap((a) => adapterWarnings(a.dir, a)),
  };
}
