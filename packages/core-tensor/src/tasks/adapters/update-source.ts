/**
 * The update a compressor codes, read from disk: a PEFT adapter's tensors against 0 (ComPEFT's
 * reference for LoRA factors), or a fine-tuned model folder against its base (a full-model task
 * vector, `--base`). Tensors come sorted by name, as ComPEFT's state_dict_to_vector orders them.
 * Whole updates are held in memory (f32): adapters are small; a full-model delta needs about
 * 2 × its f32 size (the values and the flattened copy the compressor selects from).
 * Non-finite values are refused by name: in every tensor read, and in a difference that overflows f32.
 * Not here: coding (the compressor), the container, writing.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { getBackend, toF32 } from '../../backend/index.js';
import type { Dtype, RawTensor } from '../../dtype.js';
import { inputError } from '../../errors.js';
import { checkFinite } from '../../finite.js';
import { floatKeysOf, openModelFolder, readPeftAdapter, type ModelFolder } from '../../io/index.js';
import type { CompressTensor } from '../../plugin/compressor.js';
import type { ContainerKind } from './container.js';

export interface UpdateSource {
  kind: ContainerKind;
  config: Record<string, unknown>;
  floatKeys: string[];
  tensors: CompressTensor[];
  updates: Float32Array[];
}

const FLOATS: readonly Dtype[] = ['F32', 'F16', 'BF16'];

function floatValues(raw: RawTensor, name: string, where: string): Float32Array {
  if (!FLOATS.includes(raw.dtype)) throw inputError('E_INPUT', `tensor ${name} is ${raw.dtype}; only F32/F16/BF16 tensors can be compressed`, where);
  // A copy: toF32 may return a view of the file's bytes for F32.
  const values = Float32Array.from(toF32(getBackend(), { ...raw, name } as RawTensor));
  checkFinite(values, { what: `tensor ${name}`, where });
  return values;
}

/** An adapter folder: every tensor, its update being its value (reference 0). */
export async function adapterUpdate(dir: string): Promise<UpdateSource> {
  const a = await readPeftAdapter(dir);
  const names = [...a.tensors.keys()].sort();
  if (!names.length) throw inputError('E_INPUT', 'the adapter holds no tensors', dir);
  const tensors = names.map((name) => ({ name, shape: [...a.tensors.get(name)!.shape], dtype: a.tensors.get(name)!.dtype }));
  const updates = names.map((name) => floatValues(a.tensors.get(name)!, name, a.dir));
  return { kind: 'adapter', config: a.config, floatKeys: [...a.floatKeys], tensors, updates };
}

function refuseQuantized(m: ModelFolder): void {
  if ((m.config as Record<string, unknown>).quantization_config) {
    throw inputError('E_INPUT', 'is quantized (quantization_config); a model delta needs float weights on both sides', join(m.dir, 'config.json'));
  }
}

/** A fine-tuned model folder against its base: same tensor names and shapes, update = tuned − base. */
export async function modelDeltaUpdate(tunedDir: string, baseDir: string): Promise<UpdateSource> {
  const tuned = await openModelFolder(tunedDir);
  try {
    const base = await openModelFolder(baseDir);
    try {
      refuseQuantized(tuned);
      refuseQuantized(base);
      const names = [...tuned.tensorNames].sort();
      const extra = base.tensorNames.filter((n) => !tuned.has(n));
      if (extra.length) throw inputError('E_INPUT', `tensor ${extra[0]} of the base is missing from the fine-tuned model ${tunedDir}`, baseDir);
      const tensors: CompressTensor[] = [];
      const updates: Float32Array[] = [];
      for (const name of names) {
        if (!base.has(name)) throw inputError('E_INPUT', `tensor ${name} of the fine-tuned model is missing from the base`, baseDir);
        const t = tuned.info(name), b = base.info(name);
        if (t.shape.join() !== b.shape.join()) throw inputError('E_SHAPE', `tensor ${name} is [${t.shape}] here and [${b.shape}] in the base ${baseDir}`, tunedDir);
        const u = floatValues(await tuned.read(name), name, tunedDir);
        const ref = floatValues(await base.read(name), name, baseDir);
        for (let i = 0; i < u.length; i++) u[i] -= ref[i];
        checkFinite(u, { what: `the update (fine-tuned − base) of tensor ${name}`, where: tunedDir, code: 'E_INPUT', hint: 'the difference overflows float32' });
        tensors.push({ name, shape: t.shape, dtype: t.dtype });
        updates.push(u);
      }
      const floatKeys = [...floatKeysOf(await readFile(join(tunedDir, 'config.json'), 'utf8'))];
      return { kind: 'model-delta', config: tuned.config as Record<string, unknown>, floatKeys, tensors, updates };
    } finally {
      await base.close();
    }
  } finally {
    await tuned.close();
  }
}
