/**
 * Adapters as low-rank updates, for merging and folding: find the registered method that owns an
 * adapter's `peft_type` and exposes `delta()` (plugins cooperate through the registry, never by
 * import), read each adapter's per-module ΔW = s · B · A, and form dense products.
 * Not here: what a method's keys and scalings mean (the method's delta()), combining (merge-adapters.ts).
 */
import { inputError } from '../../errors.js';
import { readPeftAdapter, type PeftAdapter } from '../../io/peft-adapter.js';
import type { LowRankDelta, MethodDef } from '../../plugin/method.js';
import type { Registry } from '../../plugin/registry.js';

export interface AdapterDeltas {
  dir: string;
  adapter: PeftAdapter;
  method: MethodDef;
  /** By HF module path. */
  deltas: Map<string, LowRankDelta>;
}

/** The method that reads `config.peft_type` and implements `need` ('delta' or 'fromDelta'). */
export function methodFor(registry: Registry, config: Record<string, unknown>, need: 'delta' | 'fromDelta', where: string): MethodDef {
  const type = config.peft_type;
  const owners = registry.list('method').filter((m) => m.peftType === type);
  if (!owners.length) throw inputError('E_INPUT', `no installed method reads peft_type ${JSON.stringify(type)}`, where);
  const m = owners.find((o) => typeof o[need] === 'function');
  if (!m) throw inputError('E_INPUT', `method "${owners[0].name}" (peft_type ${String(type)}) does not expose ${need}(): it cannot be merged or folded`, where);
  return m;
}

function checkDelta(d: LowRankDelta, where: string): void {
  const { r, inFeatures: n, outFeatures: m } = d;
  const ok = [r, n, m].every((v) => Number.isSafeInteger(v) && v > 0) && d.A.length === r * n && d.B.length === m * r
    && Number.isFinite(d.scale) && (!d.magnitude || d.magnitude.length === m);
  if (!ok) throw inputError('E_FORMAT', `module ${d.module}: inconsistent low-rank update (r=${r}, in=${n}, out=${m}, |A|=${d.A.length}, |B|=${d.B.length})`, where);
}

/** Reads an adapter folder and its per-module updates (through the owning method's delta()). */
export async function readAdapterDeltas(dir: string, registry: Registry): Promise<AdapterDeltas> {
  const adapter = await readPeftAdapter(dir);
  const method = methodFor(registry, adapter.config, 'delta', adapter.dir);
  const deltas = new Map<string, LowRankDelta>();
  for (const d of method.delta!(adapter)) {
    checkDelta(d, adapter.dir);
    if (deltas.has(d.module)) throw inputError('E_FORMAT', `module ${d.module} appears twice in the adapter's updates`, adapter.dir);
    deltas.set(d.module, d);
  }
  if (!deltas.size) throw inputError('E_INPUT', 'the adapter holds no low-rank updates', adapter.dir);
  return { dir, adapter, method, deltas };
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
