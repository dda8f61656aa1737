/**
 * Optimizer state in trainer checkpoints (train/checkpoint.ts, optimizer.safetensors): every state tensor
 * is stored with its own dtype and shape (here one optimizer with two groups and two rules, as GaLore will
 * have: 8-bit blockwise momentum, U8 codes + F32 absmax per block, for the matrix; AdamW for the vector),
 * an interrupted run resumed reproduces the uninterrupted one bit for bit, and a checkpoint whose state
 * tensors differ from what the run's optimizer keeps is refused (exit 2, naming the tensor) before any
 * parameter or state is overwritten.
 */
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { referenceTrainKernels } from '../src/backend/reference-train/index.js';
import { SafetensorsFile } from '../src/io/safetensors-reader.js';
import { writeSafetensors } from '../src/io/safetensors-writer.js';
import { adamwRule, createParamOptimizer, type UpdateRule } from '../src/optim/index.js';
import { tensor } from '../src/tensor/create.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { train, type TrainJob, type TrainOptions } from '../src/train/index.js';
import type { Batch } from '../src/data/index.js';

let work: string;
let runs = 0;
beforeAll(async () => {
  work = await fsp.mkdtemp(join(tmpdir(), 'peft-optstate-'));
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});
const outDir = () => join(work, `run-${runs++}`);

/** SGD with momentum in 8 bits per block of `block` values (linear codes around 128, F32 absmax per block). */
function sgd8bitRule(block: number): UpdateRule {
  return {
    name: 'sgd8',
    hyper: { momentum: 0.9, block },
    slotShapes: (shape) => [
      { name: 'state1', dtype: 'U8', shape },
      { name: 'absmax1', dtype: 'F32', shape: [Math.ceil(shape.reduce((a, d) => a * d, 1) / block)] },
    ],
    update(p, g, [codes, absmax], lr) {
      for (let b = 0; b * block < p.length; b++) {
        const lo = b * block;
        const buf = Array.from(g.subarray(lo, Math.min(p.length, lo + block)), (gi, j) => ((codes[lo + j] - 128) / 127) * absmax[b] * 0.9 + gi);
        const max = Math.fround(Math.max(...buf.map(Math.abs)));
        absmax[b] = max;
        buf.forEach((v, j) => {
          p[lo + j] -= lr * v;
          codes[lo + j] = max === 0 ? 128 : 128 + Math.round((v / max) * 127);
        });
      }
    },
  };
}

const TARGET_W = [0.3, -0.2, 0.8, 0.1, -0.5, 0.4];
const batch = (c: number): Batch => ({ inputIds: Int32Array.of(c), labels: Int32Array.of(c), B: 1, T: 1, trainedTokens: 1 });

/** w [2,3] and b [3] pulled towards targets scaled by the batch's id; 8-bit momentum for w, AdamW for b. */
function job(block = 4): { job: TrainJob; params: [string, Tensor][] } {
  const params: [string, Tensor][] = [
    ['w', tensor([0.5, -1, 2, 0.25, 1.5, -0.75], [2, 3], { requiresGrad: true })],
    ['b', tensor([0.1, 0.2, -0.3], [3], { requiresGrad: true })],
  ];
  const [w, b] = [params[0][1], params[1][1]];
  const optimizer = createParamOptimizer('mixed', [
    { name: 'default', params: [params[0]], rule: sgd8bitRule(block) },
    { name: 'vector', params: [params[1]], rule: adamwRule({ kernels: referenceTrainKernels }), lrScale: 0.5 },
  ]);
  return {
    params,
    job: {
      params, optimizer,
      lossFn: (x) => {
        const c = x.inputIds[0] / 4;
        const dw = w.sub(tensor(TARGET_W.map((t) => t * c), [2, 3]));
        const db = b.sub(tensor([c, -c, 0.5], [3]));
        return dw.mul(dw).sum().add(db.mul(db).sum());
      },
      trainBatches: () => [batch(1), batch(2), batch(3)],
      save: (dir) => writeSafetensors(join(dir, 'params.safetensors'),
        params.map(([name, t]) => ({ name, dtype: 'F32' as const, shape: [...t.shape], data: t.data }))),
    },
  };
}

const base = (over: Partial<TrainOptions> = {}): TrainOptions =>
  ({ outDir: outDir(), steps: 7, lr: 0.05, seed: 3, saveEvery: 2, schedule: 'constant', handleSigint: false, maxGradNorm: 0, ...over });
const bits = (t: Tensor) => Array.from(new Uint32Array((t.data as Float32Array).slice().buffer));

/** A run stopped after its step-4 checkpoint (the abort lands while step 4 ends). */
async function interrupted(): Promise<string> {
  const dir = outDir();
  const controller = new AbortController();
  const first = job();
  first.job.onEvent = (e) => {
    if (e.type === 'step' && e.step === 4) controller.abort();
  };
  expect(await train(first.job, { ...base(), outDir: dir, signal: controller.signal })).toMatchObject({ stoppedBy: 'interrupt', steps: 4 });
  first.job.optimizer.dispose();
  return dir;
}

describe('optimizer state in checkpoints', () => {
  it('holds each tensor with its dtype and shape, and a resumed run equals the uninterrupted one bit for bit', async () => {
    const full = job();
    await train(full.job, base());
    const dir = await interrupted();
    const file = await SafetensorsFile.open(join(dir, 'checkpoints/step-4/optimizer.safetensors'));
    expect(Object.fromEntries(file.tensors.map((t) => [t.name, `${t.dtype} [${t.shape.join(', ')}]`]))).toEqual({
      'w.state1': 'U8 [2, 3]', 'w.absmax1': 'F32 [2]', 'b.exp_avg': 'F32 [3]', 'b.exp_avg_sq': 'F32 [3]',
    });
    const codes = await file.read('w.state1');
    await file.close();
    expect(Array.from(codes).some((c) => c !== 128 && c !== 0)).toBe(true); // the momentum is in the file, not zeros

    const resumed = job();
    expect(await train(resumed.job, { ...base(), outDir: dir, resume: true })).toMatchObject({ stoppedBy: 'done', steps: 7 });
    full.params.forEach(([name, p], k) => expect(bits(resumed.params[k][1]), name).toEqual(bits(p)));
    const state = JSON.parse(await fsp.readFile(join(dir, 'checkpoints/step-6/trainer_state.json'), 'utf8'));
    expect(state.optimizer).toMatchObject({ optimizer: 'mixed', 'group.default.rule': 'sgd8', 'group.vector.rule': 'adamw', 'group.vector.lr_scale': 0.5, 'w.step': 6 });
  });

  it('refuses state tensors of another shape or dtype (exit 2, naming the tensor) and overwrites nothing', async () => {
    const dir = await interrupted();
    const wide = job(2); // blocks of 2: w's absmax1 is [3], the checkpoint's [2]
    const before = wide.params.map(([, p]) => bits(p));
    const err = await train(wide.job, { ...base(), outDir: dir, resume: true }).catch((e: unknown) => e);
    const ck = join(dir, 'checkpoints/step-4/optimizer.safetensors');
    expect(err).toMatchObject({ code: 'E_SHAPE', exitCode: 2, message: `${ck}: optimizer state "w.absmax1" is F32 [2], this run's optimizer keeps F32 [3]` });
    expect(wide.params.map(([, p]) => bits(p))).toEqual(before);

    const file = await SafetensorsFile.open(ck);
    const tensors = await Promise.all(file.tensors.map(async (t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: await file.read(t.name) })));
    await file.close();
    const codes = tensors.find((t) => t.name === 'w.state1')!;
    codes.dtype = 'F32';
    codes.shape = [2, 3];
    codes.data = new Uint8Array(24);
    await writeSafetensors(ck, tensors);
    const asF32 = await train(job().job, { ...base(), outDir: dir, resume: true }).catch((e: unknown) => e);
    expect(asF32).toMatchObject({ code: 'E_SHAPE', exitCode: 2, message: `${ck}: optimizer state "w.state1" is F32 [2, 3], this run's optimizer keeps U8 [2, 3]` });
    await writeSafetensors(ck, tensors.filter((t) => t.name !== 'w.state1'));
    const missing = await train(job().job, { ...base(), outDir: dir, resume: true }).catch((e: unknown) => e);
    expect(missing).toMatchObject({ code: 'E_FORMAT', exitCode: 2, message: `${ck}: missing optimizer state "w.state1"` });
  });
});
