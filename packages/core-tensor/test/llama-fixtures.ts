/**
 * Shared by the Llama tests: the torch reference dumps of scripts/ref/llama_reference.py
 * (test/fixtures/llama/<case>/reference.safetensors), relative-error helpers, and the kernel sets
 * to run on (reference always; native when built, required under PEFT_REQUIRE_NATIVE=1).
 */
import { join } from 'node:path';
import { expect } from 'vitest';
import { getTrainKernels, missingTrainKernels } from '../src/backend/native-train.js';
import { nativeLoadError, tryLoadKernels } from '../src/backend/native.js';
import { referenceTrainKernels } from '../src/backend/reference-train/index.js';
import type { TrainKernels } from '../src/backend/train-kernels.js';
import { SafetensorsFile } from '../src/io/safetensors-reader.js';

export const LLAMA_FIXTURES = join(import.meta.dirname, 'fixtures', 'llama');
/** Cases with gradients (llama_nf4 has logits only). */
export const GRAD_CASES = ['llama', 'mistral_gqa', 'llama_tied', 'qwen2', 'llama3_rope'] as const;

export interface RefTensor {
  shape: number[];
  values: Float32Array | Float64Array | Int32Array;
}

export interface Reference {
  tensors: Map<string, RefTensor>;
  metadata: Readonly<Record<string, string>>;
  get(name: string): RefTensor;
}

export async function readReference(caseName: string): Promise<Reference> {
  const f = await SafetensorsFile.open(join(LLAMA_FIXTURES, caseName, 'reference.safetensors'));
  const tensors = new Map<string, RefTensor>();
  for (const t of f.tensors) {
    const bytes = await f.read(t.name);
    const Ctor = t.dtype === 'F64' ? Float64Array : t.dtype === 'I32' ? Int32Array : t.dtype === 'F32' ? Float32Array : undefined;
    if (!Ctor) throw new Error(`${caseName}: unexpected dtype ${t.dtype} of ${t.name}`);
    tensors.set(t.name, { shape: t.shape, values: new Ctor(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength / Ctor.BYTES_PER_ELEMENT) });
  }
  const metadata = f.metadata;
  await f.close();
  return {
    tensors, metadata,
    get(name) {
      const t = tensors.get(name);
      if (!t) throw new Error(`${caseName}: no reference tensor ${name}`);
      return t;
    },
  };
}

/** The reference token ids as the model takes them. */
export function batchOf(t: RefTensor): { data: Int32Array; shape: [number, number] } {
  return { data: Int32Array.from(t.values), shape: [t.shape[0], t.shape[1]] };
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
  return Number.isNaN(diff) ? Infinity : diff / (scale || 1);
}

const required = process.env.PEFT_REQUIRE_NATIVE === '1';
const binary = tryLoadKernels();
const missing = binary ? missingTrainKernels(binary) : undefined;
const nativeReady = missing !== undefined && missing.length === 0;
const why = missing ? `the native build lacks ${missing.join(', ')}` : `the native binary does not load: ${nativeLoadError()}`;

export interface KernelSet {
  name: string;
  /** Undefined when skipped. */
  kernels?: TrainKernels;
  skip?: string;
}

/**
 * reference always; native when its training kernels are built. Under PEFT_REQUIRE_NATIVE=1 a missing
 * native build is not skipped: its entry has no kernels and no skip reason, and the test using it fails.
 */
export const KERNEL_SETS: KernelSet[] = [
  { name: 'reference', kernels: referenceTrainKernels },
  nativeReady ? { name: 'native', kernels: getTrainKernels('native') }
    : required ? { name: 'native (required, missing)' } : { name: 'native', skip: why },
];

/** The set's kernels, failing the test when native is required but missing. */
export function kernelsOf(set: KernelSet): TrainKernels {
  expect(set.kernels, `native training kernels are required (PEFT_REQUIRE_NATIVE=1): ${why}`).toBeDefined();
  return set.kernels!;
}

/** A copy of a fixture model folder with the repo's fixture tokenizer files (vocab 320) added. */
export async function fixtureWithTokenizer(caseName: string, dir: string): Promise<string> {
  const { promises: fsp } = await import('node:fs');
  const { tokenizerConfigJson, tokenizerJson } = await import('../src/fixtures/tokenizer.js');
  await fsp.mkdir(dir, { recursive: true });
  for (const f of ['config.json', 'model.safetensors']) await fsp.copyFile(join(LLAMA_FIXTURES, caseName, f), join(dir, f));
  await fsp.writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson(320)));
  await fsp.writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfigJson(2048)));
  return dir;
}
