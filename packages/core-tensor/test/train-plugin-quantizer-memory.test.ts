/**
 * A third-party quantizer with only quantize / dequantize / config (no layout, no frozen, no fused
 * product) still trains with bounded memory: its folder loads through the registry, the base stays as
 * stored (frozen, no gradient), and each product dequantizes into a scratch buffer freed right after,
 * so the peak of live allocator bytes (native memory when built) during runTrain stays far below the
 * dense f32 model, while training the f32 base itself needs at least the dense model. The quantizer
 * is row-wise absmax int8 under its own quant_method, written from its definition here.
 */
import { promises as fsp, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asF32, asI8, bytesOf } from '../src/dtype.js';
import { generateTinyLlama } from '../src/fixtures/tiny-llama.js';
import { writeSafetensors } from '../src/io/safetensors-writer.js';
import { createRegistry, registerBuiltins, resolveOptions, type MethodDef, type QuantizerDef, type Registry } from '../src/plugin/index.js';
import { quantizeModel } from '../src/tasks/quantize-model.js';
import { runTrain } from '../src/tasks/train-run.js';
import { getAllocator, setAllocator, type Allocator } from '../src/tensor/index.js';

let dequantizeCalls = 0;

/** W[r] ≈ q[r] * scale[r] / 127, q = round(W[r] * 127 / max|W[r]|); stored P.weight I8 [out, in], P.weight_scale F32 [out]. */
const int8Rows: QuantizerDef = {
  name: 'test-int8-rows',
  description: 'row-wise absmax int8 (a third party with quantize / dequantize only)',
  options: {},
  quantize(prefix, w, shape) {
    const [rows, cols] = shape;
    const q = new Int8Array(rows * cols);
    const scale = new Float32Array(rows);
    for (let r = 0; r < rows; r++) {
      let m = 0;
      for (let j = 0; j < cols; j++) m = Math.max(m, Math.abs(w[r * cols + j]));
      scale[r] = m;
      for (let j = 0; j < cols; j++) q[r * cols + j] = m === 0 ? 0 : Math.round((w[r * cols + j] * 127) / m);
    }
    return [
      { name: `${prefix}.weight`, dtype: 'I8', shape: [rows, cols], data: bytesOf(q) },
      { name: `${prefix}.weight_scale`, dtype: 'F32', shape: [rows], data: bytesOf(scale) },
    ];
  },
  dequantize(prefix, get, { out }) {
    dequantizeCalls++;
    const w = get(`${prefix}.weight`)!;
    const scale = asF32(get(`${prefix}.weight_scale`)!.data);
    const q = asI8(w.data);
    const [rows, cols] = w.shape;
    const data = out ?? new Float32Array(rows * cols);
    for (let i = 0; i < rows * cols; i++) data[i] = (q[i] * scale[Math.floor(i / cols)]) / 127;
    return { data, shape: [rows, cols] };
  },
  config: (_o, skip) => ({ quant_method: 'test-int8-rows', modules_to_not_convert: [...skip] }),
};

/** Trains the RMSNorm weights (no adapter method needed: the base weights only have to feed the products). */
const normsMethod: MethodDef = {
  name: 'norms', description: 'test method: trains the RMSNorm weights', peftType: 'TEST_NORMS', keys: { prefix: 'test_norms_', parts: { test_norms_w: { saved: '.weight' } } }, options: {},
  async attach(model) {
    for (const [name, m] of model.namedModules()) if (/norm$/.test(name)) m.requiresGrad(true);
    const params = model.namedParameters().filter(([, t]) => t.requiresGrad);
    return {
      parameters: () => params,
      save: (dir) => writeSafetensors(join(dir, 'norms.safetensors'), params.map(([name, t]) => ({ name, dtype: 'F32' as const, shape: [...t.shape], data: t.data }))),
      summary: () => ({ trainableParams: params.reduce((n, [, t]) => n + t.size, 0), modules: [] }),
    };
  },
  loadAdapter: () => Promise.reject(new Error('not used')),
};

/** Live and peak bytes handed out by the allocator (tensors, scratch buffers) while counting. */
function byteCounter(inner: Allocator): Allocator & { live: number; peak: number } {
  const sizes = new Map<ArrayBuffer, number>();
  const c = {
    name: `counting ${inner.name}`, live: 0, peak: 0,
    alloc(bytes: number): ArrayBuffer {
      const b = inner.alloc(bytes);
      sizes.set(b, bytes);
      c.live += bytes;
      c.peak = Math.max(c.peak, c.live);
      return b;
    },
    free(b: ArrayBuffer): void {
      c.live -= sizes.get(b) ?? 0;
      sizes.delete(b);
      inner.free(b);
    },
  };
  return c;
}

// hidden 256, ffn 1024, 4 layers: 3.9M quantized parameters (15.7 MB dense f32), the largest weight 1 MB (f32).
const SHAPE = { hiddenSize: 256, intermediateSize: 1024, numLayers: 4, numHeads: 4, numKvHeads: 2, vocabSize: 320, seed: 2 };
const QUANTIZED_PARAMS = 4 * (256 * 256 * 2 + 2 * 128 * 256 + 3 * 256 * 1024);
const LARGEST_WEIGHT = 256 * 1024;
let work: string;
let registry: Registry;

beforeAll(async () => {
  work = await fsp.mkdtemp(join(tmpdir(), 'peft-plugin-memory-'));
  await generateTinyLlama(join(work, 'base'), { ...SHAPE, dtype: 'F32' });
  writeFileSync(join(work, 'data.jsonl'), Array.from({ length: 8 }, (_, i) => JSON.stringify({ text: `row ${i}: the cat sat on the mat` })).join('\n') + '\n');
  registry = createRegistry();
  registerBuiltins(registry);
  registry.quantizer(int8Rows);
  registry.method(normsMethod);
  await quantizeModel({ modelDir: join(work, 'base'), outDir: join(work, 'q'), quantizer: int8Rows, options: resolveOptions(int8Rows.name, {}, {}) });
}, 60_000);
afterAll(() => fsp.rm(work, { recursive: true, force: true }));

/** Peak live allocator bytes of a 3-step runTrain on `model`, and its losses. */
async function peakOf(model: string): Promise<{ peak: number; losses: number[] }> {
  const counter = byteCounter(getAllocator());
  const losses: number[] = [];
  setAllocator(counter);
  try {
    await runTrain({
      modelDir: join(work, model), dataFile: join(work, 'data.jsonl'), outDir: join(work, `out-${model}`), method: 'norms',
      steps: 3, lr: 0.05, batchSize: 2, seqLen: 16, seed: 1, onEvent: (e) => { if (e.type === 'step') losses.push(e.loss); },
    }, registry);
  } finally {
    setAllocator(undefined);
  }
  expect(counter.live).toBe(0); // everything the run allocated is freed (the model disposed, no scratch left)
  return { peak: counter.peak, losses };
}

describe('a dequantize-only plugin quantizer', () => {
  it('trains with a peak of live allocator bytes far below the dense f32 model', async () => {
    const dense = QUANTIZED_PARAMS * 4;
    dequantizeCalls = 0;
    const q = await peakOf('q');
    // one check at load per module, then one per product (3 steps x (forward + backward) per module at least)
    expect(dequantizeCalls).toBeGreaterThanOrEqual(4 * 7 * (1 + 3 * 2));
    expect(q.losses).toHaveLength(3);
    expect(q.losses.every(Number.isFinite)).toBe(true);
    const f32 = await peakOf('base');
    expect(f32.peak).toBeGreaterThan(dense); // the measure sees weights: the f32 base holds them all
    expect(q.peak).toBeLessThan(dense / 3);
    // what the f32 run holds besides its weights (activations, embeddings, head), plus one dense weight: the scratch
    expect(q.peak).toBeLessThanOrEqual(f32.peak - dense + LARGEST_WEIGHT * 4);
  }, 120_000);
});
