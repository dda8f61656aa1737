/**
 * `peft merge --check`: everything a merge verifies before it reads a single weight. The method
 * exists and gets the models it needs; the folders agree on architecture, vocabulary, tokenizer
 * (sha256 of tokenizer.json, where present), tensor names and shapes; every tensor is a float or a
 * bitsandbytes weight; and every parameter resolves for every tensor (required ones set, ranges the
 * method checks). Any mismatch is one E_INPUT line listing what differs. `prepareMerge` keeps the
 * folders open for the driver (run.ts); `checkMerge` only reports.
 * Not here: reading tensor data, writing.
 */
import { resolve } from 'node:path';
import { inputError, PeftError } from '../../errors.js';
import { numel } from '../../dtype.js';
import type { MergeParams, MergerDef } from '../../plugin/merger.js';
import type { Registry } from '../../plugin/registry.js';
import { MergeSource } from './inputs.js';
import { checkParamNames, layerPosition, resolveTensorParams } from './params.js';
import type { MergeModelRef, MergePlan } from './plan.js';

export interface MergeInputReport {
  role: 'base' | 'model';
  path: string;
  architecture?: string;
  modelType?: string;
  vocabSize?: number;
  /** Logical tensors (a quantized weight counts once). */
  tensors: number;
  bytes: number;
  /** nf4, fp4 or int8 for a bitsandbytes folder. */
  quantization?: string;
  tokenizerSha256?: string;
}

export interface MergeCheckReport {
  method: string;
  inputs: MergeInputReport[];
  /** Tensors the merged model will have. */
  tensors: number;
  numLayers: number;
  largestTensorElements: number;
}

/** An opened, checked merge: what runMerge streams over. The caller closes it. */
export interface PreparedMerge {
  def: MergerDef;
  base?: MergeSource;
  /** Non-base models, in recipe order (for base-less methods, a recipe's base_model is the last). */
  models: MergeSource[];
  /** Where config.json, the tokenizer and default dtypes come from: base_model if named, else the first model. */
  reference: MergeSource;
  modelRefs: MergeModelRef[];
  /** Per output tensor, in the reference model's order. */
  tensors: MergeParams[];
  report: MergeCheckReport;
  close(): Promise<void>;
}

function lookup(plan: MergePlan, registry: Registry): MergerDef {
  if (!registry.has('merger', plan.method)) {
    const valid = registry.list('merger').map((m) => m.name);
    throw inputError('E_INPUT', `unknown merge method "${plan.method}" (valid: ${valid.join(', ') || 'none registered'})`, plan.source);
  }
  return registry.get('merger', plan.method);
}

/** Which folders play which role, and the model count the method accepts. */
function roles(def: MergerDef, plan: MergePlan): { base?: string; refs: MergeModelRef[] } {
  const same = (a: string, b: string) => resolve(a) === resolve(b);
  const b = plan.base;
  if (def.base === 'required' && !b) throw inputError('E_INPUT', `${def.name} needs a base model (base_model / --base)`, plan.source);
  if (plan.tokenizerSource === 'base' && !b) throw inputError('E_INPUT', 'tokenizer_source: base needs a base_model', plan.source);
  let refs = plan.models;
  if (b && def.base === 'none' && !refs.some((m) => same(m.path, b))) refs = [...refs, { path: b, params: {} }]; // mergekit adds it as an input
  if (b && def.base !== 'none') refs = refs.filter((m) => !same(m.path, b));
  const { min, max } = def.models;
  if (refs.length < min || (max !== undefined && refs.length > max)) {
    const want = max === min ? `exactly ${min}` : max === undefined ? `at least ${min}` : `${min} to ${max}`;
    const inAll = def.base === 'required' && max === min ? ` (${min + 1} in all with the base)` : '';
    const besides = def.base === 'none' ? '' : ' besides the base model';
    throw inputError('E_INPUT', `${def.name} takes ${want} model${max === 1 ? '' : 's'}${besides}${inAll}, got ${refs.length}`, plan.source);
  }
  return { base: def.base === 'none' ? undefined : b, refs };
}

function describe(role: 'base' | 'model', s: MergeSource): MergeInputReport {
  const c = s.config;
  const r: MergeInputReport = { role, path: s.dir, tensors: s.order.length, bytes: [...s.info.values()].reduce((a, t) => a + t.bytes, 0) };
  if (Array.isArray(c.architectures) && typeof c.architectures[0] === 'string') r.architecture = c.architectures[0];
  if (typeof c.model_type === 'string') r.modelType = c.model_type;
  if (typeof c.vocab_size === 'number') r.vocabSize = c.vocab_size;
  if (s.quantizer) r.quantization = s.quantizer.name;
  if (s.tokenizerHash) r.tokenizerSha256 = s.tokenizerHash;
  return r;
}

const list = (xs: string[]) => (xs.length > 3 ? `${xs.slice(0, 3).join(', ')} and ${xs.length - 3} more` : xs.join(', '));

/** What differs between the reference folder and another, one phrase each. */
function differences(ref: MergeSource, refR: MergeInputReport, s: MergeSource, r: MergeInputReport): string[] {
  const out: string[] = [];
  const who = s.dir;
  for (const key of ['architecture', 'modelType', 'vocabSize'] as const) {
    if (refR[key] !== r[key]) out.push(`${key} ${JSON.stringify(r[key])} in ${who} vs ${JSON.stringify(refR[key])} in ${ref.dir}`);
  }
  if (refR.tokenizerSha256 && r.tokenizerSha256 && refR.tokenizerSha256 !== r.tokenizerSha256) {
    out.push(`tokenizer.json differs between ${who} and ${ref.dir}`);
  }
  const missing = ref.order.filter((n) => !s.info.has(n));
  const extra = s.order.filter((n) => !ref.info.has(n));
  if (missing.length) out.push(`${who} lacks ${list(missing)}`);
  if (extra.length) out.push(`${who} has ${list(extra)}, which ${ref.dir} lacks`);
  const shapes = ref.order.filter((n) => s.info.has(n) && s.info.get(n)!.shape.join() !== ref.info.get(n)!.shape.join());
  if (shapes.length) {
    const n = shapes[0];
    const more = shapes.length > 1 ? ` (and ${shapes.length - 1} more)` : '';
    out.push(`shape of ${n} is [${s.info.get(n)!.shape.join(', ')}] in ${who} vs [${ref.info.get(n)!.shape.join(', ')}] in ${ref.dir}${more}`);
  }
  return out;
}

function numLayersOf(ref: MergeSource): number {
  const n = ref.config.num_hidden_layers;
  if (typeof n === 'number' && Number.isSafeInteger(n) && n > 0) return n;
  const idx = ref.order.map((t) => /(?:^|\.)layers\.(\d+)\./.exec(t)).filter(Boolean).map((m) => Number(m![1]));
  return idx.length ? idx.reduce((a, b) => Math.max(a, b)) + 1 : 1;
}

/** The method's own checks, its messages prefixed with the recipe like every other. */
function checkTensor(def: MergerDef, plan: MergePlan, p: MergeParams): void {
  try {
    def.checkParams?.(p);
  } catch (e) {
    if (e instanceof PeftError) throw new PeftError(e.code, `${plan.source}: ${e.message}`);
    throw e;
  }
}

async function openAll(paths: string[], registry: Registry): Promise<MergeSource[]> {
  const opened: MergeSource[] = [];
  try {
    for (const p of paths) opened.push(await MergeSource.open(p, registry));
    return opened;
  } catch (e) {
    await Promise.all(opened.map((s) => s.close().catch(() => {})));
    throw e;
  }
}

/** Checks everything and keeps the folders open; on any error nothing stays open. */
export async function prepareMerge(plan: MergePlan, registry: Registry): Promise<PreparedMerge> {
  const def = lookup(plan, registry);
  const { base: basePath, refs } = roles(def, plan);
  checkParamNames(def, plan, refs);
  const opened = await openAll([...(basePath ? [basePath] : []), ...refs.map((m) => m.path)], registry);
  const close = () => Promise.all(opened.map((s) => s.close())).then(() => {});
  try {
    const base = basePath ? opened[0] : undefined;
    const models = basePath ? opened.slice(1) : opened;
    const b = plan.base;
    const ref = base ?? models.find((s) => b !== undefined && resolve(s.dir) === resolve(b)) ?? models[0];
    const reports = opened.map((s, i) => describe(base && i === 0 ? 'base' : 'model', s));
    const refReport = reports[opened.indexOf(ref)];
    const diffs = opened.flatMap((s, i) => [
      ...s.nonFloat.map((t) => `${s.dir}: tensor ${t} is not a float tensor`),
      ...(s === ref ? [] : differences(ref, refReport, s, reports[i])),
    ]);
    if (diffs.length) {
      const shown = diffs.length > 6 ? [...diffs.slice(0, 6), `${diffs.length - 6} more`] : diffs;
      throw inputError('E_INPUT', `the models cannot be merged: ${shown.join('; ')}`, plan.source);
    }
    const numLayers = numLayersOf(ref);
    const tensors = ref.order.map((name) => {
      const shape = ref.info.get(name)!.shape;
      const p = resolveTensorParams(def, plan, refs, name, shape, layerPosition(name, numLayers));
      checkTensor(def, plan, p);
      return p;
    });
    const largestTensorElements = tensors.reduce((m, t) => Math.max(m, numel(t.shape)), 0);
    const report: MergeCheckReport = { method: def.name, inputs: reports, tensors: tensors.length, numLayers, largestTensorElements };
    return { def, base, models, reference: ref, modelRefs: refs, tensors, report, close };
  } catch (e) {
    await close().catch(() => {});
    throw e;
  }
}

/** The compatibility report of a plan, without merging; a mismatch is an E_INPUT error. */
export async function checkMerge(plan: MergePlan, registry: Registry): Promise<MergeCheckReport> {
  const job = await prepareMerge(plan, registry);
  await job.close();
  return job.report;
}
