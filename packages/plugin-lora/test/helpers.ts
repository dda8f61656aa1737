/**
 * Shared by the LoRA tests: the torch fixtures of scripts/ref/lora_reference.py (the tiny Llama in
 * fixtures/model, one reference.safetensors per case with its options in the metadata), loading the
 * model and attaching the case's adapter with the reference's factor values, relative errors, and
 * temporary folders.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { Llama, noGrad, SafetensorsFile, tidy, type MethodContext, type Tensor } from '@peft/core-tensor';
import { attachLora } from '../src/attach.js';
import { resolveLoraOptions } from '../src/config.js';
import type { LoraAdapterState } from '../src/save.js';

export const FIXTURES = join(import.meta.dirname, 'fixtures');
export const MODEL_DIR = join(FIXTURES, 'model');

export interface RefTensor {
  shape: number[];
  values: Float32Array | Float64Array | Int32Array | Uint8Array;
}

export interface Reference {
  tensors: Map<string, RefTensor>;
  options: Record<string, unknown>;
  get(name: string): RefTensor;
}

export async function readReference(caseName: string): Promise<Reference> {
  const f = await SafetensorsFile.open(join(FIXTURES, caseName, 'reference.safetensors'));
  const tensors = new Map<string, RefTensor>();
  const ctors = { F64: Float64Array, F32: Float32Array, I32: Int32Array, U8: Uint8Array } as const;
  for (const t of f.tensors) {
    const bytes = (await f.read(t.name)).slice();
    const Ctor = ctors[t.dtype as keyof typeof ctors];
    if (!Ctor) throw new Error(`${caseName}: unexpected dtype ${t.dtype} of ${t.name}`);
    tensors.set(t.name, { shape: [...t.shape], values: new Ctor(bytes.buffer, bytes.byteOffset, bytes.byteLength / Ctor.BYTES_PER_ELEMENT) });
  }
  const options = JSON.parse(f.metadata.options ?? '{}') as Record<string, unknown>;
  await f.close();
  return {
    tensors, options,
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

export function batchOf(t: RefTensor): { data: Int32Array; shape: [number, number] } {
  return { data: Int32Array.from(t.values), shape: [t.shape[0], t.shape[1]] };
}

export function tempDir(tag = 'lora'): string {
  return mkdtempSync(join(tmpdir(), `peft-${tag}-`));
}

export const ctxFor = (baseModelDir = MODEL_DIR, seed = 0): MethodContext => ({ baseModelDir, seed });

/** Loads `dir` and attaches the case's adapter (its own init, then the reference's init.* values, when present). */
export async function attachCase(ref: Reference, dir = MODEL_DIR, extra: Record<string, unknown> = {}): Promise<{ model: Llama; adapter: LoraAdapterState }> {
  const model = await Llama.fromFolder(dir);
  const adapter = (await attachLora(model, resolveLoraOptions({ ...ref.options, ...extra }), ctxFor())) as LoraAdapterState;
  for (const [key, t] of adapter.parameters()) {
    const init = ref.tensors.get(`init.${key}`);
    if (init) t.data.set(init.values);
  }
  return { model, adapter };
}

/** Mean causal-LM loss of the reference batch and its backward; returns the loss. */
export function lossAndBackward(model: Llama, ref: Reference): number {
  const loss = model.loss(batchOf(ref.get('input_ids')), batchOf(ref.get('labels')));
  const v = loss.item();
  loss.backward();
  loss.dispose();
  return v;
}

/** Logits [B, T, V] of the reference batch (eval mode, no grad). */
export function logitsOf(model: Llama, ref: Reference): Float32Array {
  model.eval();
  return tidy(() => noGrad(() => Float32Array.from(model.logits(model.forward(batchOf(ref.get('input_ids'))).hidden).data)));
}

/** Flips (A row i, B column i) so A's largest |entry| per row is positive: the reference's canonical signs. */
export function canonicalize(A: Tensor, B: Tensor): void {
  const [r, inF] = A.shape;
  const a = A.data;
  const b = B.data;
  for (let i = 0; i < r; i++) {
    let arg = 0;
    for (let j = 1; j < inF; j++) if (Math.abs(a[i * inF + j]) > Math.abs(a[i * inF + arg])) arg = j;
    if (a[i * inF + arg] >= 0) continue;
    for (let j = 0; j < inF; j++) a[i * inF + j] = -a[i * inF + j];
    for (let o = 0; o < B.shape[0]; o++) b[o * r + i] = -b[o * r + i];
  }
}
