/**
 * Shared by the side-tuning tests: the torch fixtures of scripts/ref/qst_reference.py (per case a model
 * folder, the side network's values as an adapter folder, and reference.safetensors with the logits,
 * loss and gradients), attaching a case with the fixture's values, relative errors, temporary folders,
 * and the built `peft` binary run in a child process (as users run it).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect } from 'vitest';
import { Llama, noGrad, readPeftAdapter, resolveOptions, SafetensorsFile, tidy, toF32, getBackend, type AttachedAdapter, type MethodContext } from '@peft/core-tensor';
import { attachSide } from '../src/attach.js';
import { LST_OPTIONS, QST_OPTIONS, type Ladder } from '../src/options.js';

export const FIXTURES = join(import.meta.dirname, 'fixtures');
export const CASES = ['qst_gqa', 'qst_nf4', 'qst_tied', 'qst_maxpool', 'lst_linear', 'lst_avgpool'] as const;
export type CaseName = (typeof CASES)[number];

export interface RefTensor {
  shape: number[];
  values: Float32Array | Int32Array;
}

export interface Reference {
  name: CaseName;
  method: Ladder;
  options: Record<string, unknown>;
  tensors: Map<string, RefTensor>;
  get(name: string): RefTensor;
  modelDir: string;
  adapterDir: string;
}

export async function readReference(name: CaseName): Promise<Reference> {
  const f = await SafetensorsFile.open(join(FIXTURES, name, 'reference.safetensors'));
  const tensors = new Map<string, RefTensor>();
  for (const t of f.tensors) {
    const bytes = (await f.read(t.name)).slice();
    const Ctor = t.dtype === 'I32' ? Int32Array : Float32Array;
    tensors.set(t.name, { shape: [...t.shape], values: new Ctor(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4) });
  }
  const meta = f.metadata;
  await f.close();
  return {
    name, method: meta.method as Ladder, options: JSON.parse(meta.options) as Record<string, unknown>, tensors,
    modelDir: join(FIXTURES, name, 'model'), adapterDir: join(FIXTURES, name, 'adapter'),
    get(key) {
      const t = tensors.get(key);
      if (!t) throw new Error(`${name}: no reference tensor ${key}`);
      return t;
    },
  };
}

/** max |a - b| / max |b|. */
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

export function batchOf(t: RefTensor): { data: Int32Array; shape: [number, number] } {
  return { data: Int32Array.from(t.values), shape: [t.shape[0], t.shape[1]] };
}

export function tempDir(tag = 'qst'): string {
  return mkdtempSync(join(tmpdir(), `peft-${tag}-`));
}

export const optionsFor = (method: Ladder, given: Record<string, unknown>) => resolveOptions(method, method === 'qst' ? QST_OPTIONS : LST_OPTIONS, given);

/** Loads the case's model and attaches its method; `values` copies the fixture adapter's tensors into the parameters. */
export async function attachCase(ref: Reference, o: { values?: boolean; extra?: Record<string, unknown>; ctx?: Partial<MethodContext>; dir?: string } = {}):
  Promise<{ model: Llama; adapter: AttachedAdapter }> {
  const model = await Llama.fromFolder(o.dir ?? ref.modelDir);
  const ctx: MethodContext = { baseModelDir: o.dir ?? ref.modelDir, seed: 0, ...o.ctx };
  const adapter = await attachSide(ref.method, model, optionsFor(ref.method, { ...ref.options, ...o.extra }), ctx);
  if (o.values ?? true) {
    const saved = await readPeftAdapter(ref.adapterDir);
    for (const [key, t] of adapter.parameters()) {
      const raw = saved.tensors.get(key);
      if (!raw) throw new Error(`${ref.name}: the fixture adapter has no ${key}`);
      t.data.set(toF32(getBackend(), raw));
    }
  }
  return { model, adapter };
}

/** The mean causal-LM loss of the reference batch and its backward; returns the loss. */
export function lossAndBackward(model: Llama, ref: Reference): number {
  const loss = model.loss(batchOf(ref.get('input_ids')), batchOf(ref.get('labels')));
  const v = loss.item();
  loss.backward();
  loss.dispose();
  return v;
}

/** Logits [B, T, V] of the reference batch (no grad). */
export function logitsOf(model: Llama, ref: Reference): Float32Array {
  return tidy(() => noGrad(() => Float32Array.from(model.logits(model.forward(batchOf(ref.get('input_ids'))).hidden).data)));
}

export const ROOT = resolve(import.meta.dirname, '../../..');
export const DEMO_BASE = join(ROOT, 'demo/base');
export const DEMO_DATA = join(ROOT, 'demo/data/task-a');

export interface Run { exitCode: number; stdout: string; stderr: string; json<T = any>(): T }

/** Runs the built CLI (packages/cli/bin/run.js; `make ts` builds it). */
export function peft(args: string[]): Promise<Run> {
  return new Promise((done) => {
    execFile('node', [join(ROOT, 'packages/cli/bin/run.js'), ...args], { env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' }, maxBuffer: 64 << 20, timeout: 300_000 },
      (err, stdout, stderr) => done({
        exitCode: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout: String(stdout), stderr: String(stderr),
        json: () => JSON.parse(String(stdout)),
      }));
  });
}
