/**
 * `--backend reference` reaches every kernel of a training run, the optimizer's included: runTrain (what
 * `peft train` runs) on the tiny Llama with the reference training kernels makes no call into the compute
 * functions of @peft/kernels-napi (each export of the loaded module is wrapped with a counter before
 * anything binds it), while the same run on the native kernels calls them, adamwStep among them.
 * Memory functions (alloc / free / allocatedBytes) are counted apart: tensor memory comes from the process
 * allocator (native unless PEFT_BACKEND=reference), which no kernel choice changes.
 * Also: a method's parameter groups reach the registry's optimizer through runTrain.
 * Skipped when the native binary is not built, unless PEFT_REQUIRE_NATIVE=1.
 */
import { promises as fsp, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getTrainKernels } from '../src/backend/native-train.js';
import { tryLoadKernels } from '../src/backend/native.js';
import { referenceTrainKernels } from '../src/backend/reference-train/index.js';
import type { TrainKernels } from '../src/backend/train-kernels.js';
import { generateTinyLlama } from '../src/fixtures/tiny-llama.js';
import { writeSafetensors } from '../src/io/safetensors-writer.js';
import { createRegistry, registerBuiltins, type MethodDef, type Registry } from '../src/plugin/index.js';
import { runTrain } from '../src/tasks/train-run.js';

const MEMORY = new Set(['alloc', 'free', 'allocatedBytes']);
const mod = tryLoadKernels() as unknown as Record<string, unknown> | undefined;
const required = process.env.PEFT_REQUIRE_NATIVE === '1';
const calls = new Map<string, number>();
const originals = new Map<string, (...a: unknown[]) => unknown>();

/** Trains every RMSNorm weight; the final norm in its own group at twice the lr. */
const normsMethod: MethodDef = {
  name: 'norms',
  description: 'test method: trains the RMSNorm weights',
  peftType: 'TEST_NORMS',
  keys: { prefix: 'test_norms_', parts: { test_norms_w: { saved: '.weight' } } },
  options: {},
  async attach(model) {
    for (const [name, m] of model.namedModules()) if (/norm$/.test(name)) m.requiresGrad(true);
    const params = model.namedParameters().filter(([, t]) => t.requiresGrad);
    return {
      parameters: () => params,
      paramGroups: () => [{ name: 'final', params: ['model.norm.weight'], lrScale: 2 }],
      save: (dir) => writeSafetensors(join(dir, 'norms.safetensors'),
        params.map(([name, t]) => ({ name, dtype: 'F32' as const, shape: [...t.shape], data: t.data }))),
      summary: () => ({ trainableParams: params.reduce((n, [, t]) => n + t.size, 0), modules: [] }),
    };
  },
  loadAdapter: async () => {
    throw new Error('not used');
  },
};

let work: string;
let registry: Registry;
beforeAll(async () => {
  if (mod) {
    for (const [name, f] of Object.entries(mod)) {
      if (typeof f !== 'function') continue;
      originals.set(name, f as (...a: unknown[]) => unknown);
      mod[name] = (...a: unknown[]) => {
        calls.set(name, (calls.get(name) ?? 0) + 1);
        return (f as (...a: unknown[]) => unknown)(...a);
      };
    }
  }
  work = await fsp.mkdtemp(join(tmpdir(), 'peft-backend-calls-'));
  await generateTinyLlama(join(work, 'base'), { numLayers: 1, seed: 4 });
  writeFileSync(join(work, 'data.jsonl'), Array.from({ length: 8 }, (_, i) => JSON.stringify({ text: `row ${i}: abc abd abe` })).join('\n') + '\n');
  registry = createRegistry();
  registerBuiltins(registry);
  registry.method(normsMethod);
});
afterAll(async () => {
  for (const [name, f] of originals) mod![name] = f;
  await fsp.rm(work, { recursive: true, force: true });
});

/** Calls into the module's compute functions during one runTrain, by name. */
async function computeCalls(tag: string, kernels: TrainKernels): Promise<Record<string, number>> {
  calls.clear();
  const summary = await runTrain({
    modelDir: join(work, 'base'), dataFile: join(work, 'data.jsonl'), outDir: join(work, tag), method: 'norms',
    steps: 3, lr: 0.05, batchSize: 4, seqLen: 16, seed: 1, saveEvery: 3, kernels,
  }, registry);
  expect(summary).toMatchObject({ steps: 3, stoppedBy: 'done' });
  return Object.fromEntries([...calls].filter(([name]) => !MEMORY.has(name)));
}

describe.skipIf(!mod && !required)('the kernel backend of a training run', () => {
  it('the reference backend makes no native compute call, the optimizer step included', async () => {
    expect(mod, 'the native binary is required (PEFT_REQUIRE_NATIVE=1)').toBeDefined();
    expect(await computeCalls('reference', referenceTrainKernels)).toEqual({});
  });

  it('the native backend calls the native kernels, adamwStep included (the counter sees them)', async () => {
    const native = await computeCalls('native', getTrainKernels('native'));
    for (const k of ['gemm', 'rmsnormForward', 'rmsnormBackward', 'attentionForward', 'attentionBackward', 'crossEntropyRows', 'adamwStep']) {
      expect(native[k], k).toBeGreaterThan(0);
    }
    expect(native.adamwStep).toBe(3 * 3); // 3 steps x 3 norm weights (input, post-attention, final)
  });

  it("the method's parameter groups reach the optimizer", () => {
    const state = JSON.parse(readFileSync(join(work, 'reference/checkpoints/step-3/trainer_state.json'), 'utf8'));
    expect(state.optimizer).toMatchObject({
      optimizer: 'adamw', 'group.default.lr_scale': 1, 'group.final.lr_scale': 2, 'model.norm.weight.group': 'final',
      'model.layers.0.input_layernorm.weight.group': 'default',
    });
  });
});
