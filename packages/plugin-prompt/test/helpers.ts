/**
 * Shared by the prompt-method tests: the torch fixtures of scripts/ref/prompt_reference.py and
 * dept_ntk_reference.py (two tiny Llamas in fixtures/models, one reference.safetensors per case with its
 * method and options in the metadata, PEFT-layout adapter folders), attaching a case's method with the
 * reference's initial values, an f64 twin of a fixture model for finite differences, relative errors,
 * temporary folders.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import {
  Llama, llamaConfig, llamaShapes, openModelFolder, SafetensorsFile, tensor, toF32, getBackend, VarBuilder, type AttachedAdapter,
  type MethodContext, type MethodDef, type Tensor,
} from '@peft/core-tensor';
import { PROMPT_METHODS } from '../src/index.js';

export const FIXTURES = join(import.meta.dirname, 'fixtures');
export const modelDir = (name: string) => join(FIXTURES, 'models', name);

export interface RefTensor {
  shape: number[];
  values: Float32Array | Int32Array;
}

export interface Reference {
  name: string;
  method: MethodDef;
  model: string;
  options: Record<string, unknown>;
  tensors: Map<string, RefTensor>;
  get(name: string): RefTensor;
}

export async function readReference(caseName: string): Promise<Reference> {
  const f = await SafetensorsFile.open(join(FIXTURES, caseName, 'reference.safetensors'));
  const tensors = new Map<string, RefTensor>();
  for (const t of f.tensors) {
    const bytes = (await f.read(t.name)).slice();
    const Ctor = t.dtype === 'I32' ? Int32Array : Float32Array;
    if (t.dtype !== 'I32' && t.dtype !== 'F32') throw new Error(`${caseName}: unexpected dtype ${t.dtype} of ${t.name}`);
    tensors.set(t.name, { shape: [...t.shape], values: new Ctor(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4) });
  }
  const meta = f.metadata;
  await f.close();
  const method = PROMPT_METHODS.find((m) => m.name === meta.method);
  if (!method) throw new Error(`${caseName}: unknown method ${meta.method}`);
  return {
    name: caseName, method, model: meta.model, options: JSON.parse(meta.options ?? '{}') as Record<string, unknown>, tensors,
    get(name) {
      const t = tensors.get(name);
      if (!t) throw new Error(`${caseName}: no reference tensor ${name}`);
      return t;
    },
  };
}

/** max |a - b| / max |b|: the error relative to the tensor's scale. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return scale === 0 ? diff : diff / scale;
}

export const batchOf = (t: RefTensor) => ({ data: Int32Array.from(t.values), shape: [t.shape[0], t.shape[1]] as [number, number] });

export function tempDir(tag = 'prompt'): string {
  return mkdtempSync(join(tmpdir(), `peft-${tag}-`));
}

export const ctxFor = (dir: string, seed = 0, lr?: number): MethodContext => ({ baseModelDir: dir, seed, lr });

/** Resolved options of a reference case for its method. */
export async function resolved(method: MethodDef, options: Record<string, unknown>) {
  const { resolveOptions } = await import('@peft/core-tensor');
  return resolveOptions(method.name, method.options, options);
}

/** Loads the case's model, attaches its method with its options, then sets every parameter to the reference's init.* values. */
export async function attachCase(ref: Reference, model?: Llama): Promise<{ model: Llama; adapter: AttachedAdapter }> {
  const m = model ?? await Llama.fromFolder(modelDir(ref.model));
  const adapter = await ref.method.attach(m, await resolved(ref.method, ref.options), ctxFor(modelDir(ref.model)));
  for (const [key, t] of adapter.parameters()) t.data.set(ref.get(`init.${key}`).values);
  return { model: m, adapter };
}

/** A model of the fixture's config whose weights are its f32 values widened to f64 (for gradcheck). */
export async function f64Twin(dir: string): Promise<Llama> {
  const folder = await openModelFolder(dir);
  const tensors = new Map<string, Tensor>();
  for (const [name, shape] of llamaShapes(folder.config)) {
    tensors.set(name, tensor(toF32(getBackend(), await folder.read(name)), shape, { dtype: 'f64' }));
  }
  const cfg = llamaConfig(folder.config);
  await folder.close();
  return Llama.load(VarBuilder.fromTensors(tensors), cfg);
}

/** Row-major indices of the positions a [B, T] mask keeps, times `width` values each. */
export function maskedRows(mask: Int32Array | Float32Array, width: number): (v: ArrayLike<number>) => number[] {
  return (v) => {
    const out: number[] = [];
    mask.forEach((m, i) => { if (m) for (let j = 0; j < width; j++) out.push(v[i * width + j]); });
    return out;
  };
}
