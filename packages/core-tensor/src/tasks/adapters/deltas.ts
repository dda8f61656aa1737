/**
 * Adapters as low-rank updates, for merging and folding: find the registered method that owns an
 * adapter's `peft_type` (registry.methodFor, the one lookup) and exposes `delta()` (plugins cooperate
 * through the registry, never by import), read each adapter's per-module ΔW = s · B · A, checked
 * (shapes, finite factors, a scaling float32 can hold), and form dense products. Tensors of modules
 * the adapter's config does not target are not applied (PEFT drops them); they come back as `unused`,
 * and targeted modules of the base without an update as `missing`. Targets that match no module of
 * the base (or, without a base, of the file) are refused as PEFT's inject_adapter refuses them.
 * Not here: what a method's keys and scalings mean (the method's delta()), combining (merge-adapters.ts).
 */
import { join } from 'node:path';
import { inputError } from '../../errors.js';
import { checkFinite } from '../../finite.js';
import { ADAPTER_CONFIG, readPeftAdapter, type PeftAdapter } from '../../io/peft-adapter.js';
import { parsePeftKey } from '../../io/peft-keys.js';
import { matchesTarget } from '../../nn/targets.js';
import type { LowRankDelta, MethodDef } from '../../plugin/method.js';
import type { Registry } from '../../plugin/registry.js';

export interface AdapterDeltas {
  dir: string;
  adapter: PeftAdapter;
  method: MethodDef;
  /** By HF module path. */
  deltas: Map<string, LowRankDelta>;
  /** File keys of the method's tensors whose modules delta() left out (not targeted): not applied. */
  unused: string[];
  /** Base modules the config targets that get no update (PEFT warns "Found missing adapter keys"). */
  missing: string[];
}

/** The largest finite float32: a scaling above it is infinite in every f32 kernel. */
const F32_MAX = 3.4028234663852886e38;

function checkDelta(d: LowRankDelta, where: string): void {
  const { r, inFeatures: n, outFeatures: m } = d;
  const ok = [r, n, m].every((v) => Number.isSafeInteger(v) && v > 0) && d.A.length === r * n && d.B.length === m * r
    && (!d.magnitude || d.magnitude.length === m);
  if (!ok) throw inputError('E_FORMAT', `module ${d.module}: inconsistent low-rank update (r=${r}, in=${n}, out=${m}, |A|=${d.A.length}, |B|=${d.B.length})`, where);
  if (!(Math.abs(d.scale) <= F32_MAX)) {
    throw inputError('E_INPUT', `module ${d.module}: scaling ${d.scale} is not a finite float32 (check lora_alpha and r in ${ADAPTER_CONFIG})`, where);
  }
  checkFinite(d.A, { what: `the A factor of module ${d.module}`, where });
  checkFinite(d.B, { what: `the B factor of module ${d.module}`, where });
  if (d.magnitude) checkFinite(d.magnitude, { what: `the DoRA magnitude of module ${d.module}`, where });
}

/** The method's tensors (by its key naming) of modules not in `applied`: what PEFT would not load. */
function unusedKeys(adapter: PeftAdapter, method: MethodDef, applied: ReadonlyMap<string, unknown>): string[] {
  return [...adapter.tensors.keys()].filter((key) => {
    const k = parsePeftKey(method.keys, key);
    return k !== undefined && k.module !== '' && !applied.has(k.module);
  }).sort();
}

/** The modules of the file's tensors (by the method's key naming). */
function fileModules(adapter: PeftAdapter, method: MethodDef): string[] {
  const out = new Set<string>();
  for (const key of adapter.tensors.keys()) {
    const m = parsePeftKey(method.keys, key)?.module;
    if (m) out.add(m);
  }
  return [...out];
}

/**
 * The base modules the method's targets choose: refused when none (inject_adapter's
 * NoMatchingPeftModuleError); without a base, the file's modules stand in for the model's.
 */
function targetedModules(adapter: PeftAdapter, method: MethodDef, configFile: string, baseModules?: readonly string[]): string[] {
  if (!method.targets) return [];
  const rules = method.targets(adapter.config, configFile);
  const pool = baseModules ?? fileModules(adapter, method);
  const matched = pool.filter((m) => matchesTarget(rules, m));
  if (!matched.length) {
    const targets = adapter.config.target_modules === undefined ? '(the default)' : JSON.stringify(adapter.config.target_modules);
    const what = baseModules ? 'no module of the base model' : `none of the modules this adapter holds tensors for (${pool.slice(0, 3).join(', ')}${pool.length > 3 ? ', ...' : ''})`;
    throw inputError('E_INPUT', `target_modules ${targets} matches ${what}: PEFT refuses it too ("Target modules ... not found in the base model")`, configFile);
  }
  return matched;
}

/**
 * Reads an adapter folder and its per-module updates (through the owning method's delta()).
 * `baseModules`: the module paths of the base it will be folded into, when there is one.
 */
export async function readAdapterDeltas(dir: string, registry: Registry, baseModules?: readonly string[]): Promise<AdapterDeltas> {
  const adapter = await readPeftAdapter(dir);
  const configFile = join(adapter.dir, ADAPTER_CONFIG);
  const method = registry.methodFor(adapter.config.peft_type, configFile);
  if (typeof method.delta !== 'function') {
    throw inputError('E_INPUT', `method "${method.name}" (peft_type ${method.peftType}) does not expose delta(): it cannot be merged or folded`, adapter.dir);
  }
  const deltas = new Map<string, LowRankDelta>();
  for (const d of method.delta(adapter)) {
    checkDelta(d, adapter.dir);
    if (deltas.has(d.module)) throw inputError('E_FORMAT', `module ${d.module} appears twice in the adapter's updates`, adapter.dir);
    deltas.set(d.module, d);
  }
  const targeted = targetedModules(adapter, method, configFile, baseModules);
  const missing = baseModules ? targeted.filter((m) => !deltas.has(m)) : [];
  if (!deltas.size && !targeted.length) throw inputError('E_INPUT', 'the adapter holds no low-rank updates', adapter.dir);
  return { dir, adapter, method, deltas, unused: unusedKeys(adapter, method, deltas), missing };
}

const listed = (xs: readonly string[]) => xs.slice(0, 3).join(', ') + (xs.length > 3 ? `, ... (${xs.length - 3} more)` : '');

/**
 * The warning lines of an adapter: tensors PEFT would not apply (modules its target_modules & co. do
 * not match), and targeted modules the file holds nothing for (they stay unchanged).
 */
export function adapterWarnings(dir: string, r: { unused: readonly string[]; missing: readonly string[] }): string[] {
  const out: string[] = [];
  if (r.unused.length) {
    out.push(`adapter ${dir}: ${r.unused.length} tensor(s) are for modules its target_modules does not match and are not applied, ` +
      `as PEFT does not load them: ${listed(r.unused)}`);
  }
  if (r.missing.length) {
    out.push(`adapter ${dir}: target_modules matches ${r.missing.length} module(s) the file holds no tensors for; ` +
      `they stay unchanged (PEFT: "Found missing adapter keys"): ${listed(r.missing)}`);
  }
  return out;
}

/** Checks that every update of `module` across adapters has the same [out, in]. */
export function checkSameShape(module: string, list: readonly { d: LowRankDelta; dir: string }[]): { out: number; in: number } {
  const first = list[0];
  for (const { d, dir } of list.slice(1)) {
    if (d.outFeatures !== first.d.outFeatures || d.inFeatures !== first.d.inFeatures) {
      throw inputError('E_SHAPE', `module ${module} is [${d.outFeatures}, ${d.inFeatures}] here but [${first.d.outFeatures}, ${first.d.inFeatures}] in ${first.dir}`, dir);
    }
  }
  return { out: first.d.outFeatures, in: first.d.inFeatures };
}

/**
 * acc [out, in] += coef · s · B [out, r] · A [r, in], each entry's dot product accumulated in f64
 * (coef · s applied once per entry, so no factor is rounded separately).
 */
export function addProduct(acc: Float32Array | Float64Array, d: LowRankDelta, coef: number): void {
  const { r, inFeatures: n, outFeatures: m, A, B } = d;
  const c = coef * d.scale;
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    row.fill(0);
    for (let k = 0; k < r; k++) {
      const b = B[i * r + k];
      if (b === 0) continue;
      const off = k * n;
      for (let j = 0; j < n; j++) row[j] += b * A[off + j];
    }
    const o = i * n;
    for (let j = 0; j < n; j++) acc[o + j] += c * row[j];
  }
}
