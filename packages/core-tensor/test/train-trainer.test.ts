/**
 * The trainer on a toy bigram language model (embedding [V, C] -> dropout -> cross-entropy against a
 * head [V, C], both trainable; the next token is (3 t + 1) mod V, so it is learnable): loss goes down,
 * gradient accumulation equals a bigger batch, metrics.jsonl / loss.svg / checkpoints / adapter are
 * written, an interrupted run resumed reproduces the uninterrupted losses and params bit for bit, NaN
 * stops with a checkpoint of the last good step, and mismatched settings refuse to resume.
 * Then the same on the tiny Llama fixture (norm weights trained through Llama.loss).
 */
import { promises as fsp, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PeftError } from '../src/errors.js';
import { Xoshiro128 } from '../src/random/rng.js';
import { generateTinyLlama } from '../src/fixtures/tiny-llama.js';
import { SafetensorsFile } from '../src/io/safetensors-reader.js';
import { writeSafetensors } from '../src/io/safetensors-writer.js';
import { Llama } from '../src/models/llama.js';
import * as ops from '../src/ops/index.js';
import { lrAt } from '../src/optim/index.js';
import { getTrainKernels } from '../src/backend/native-train.js';
import { createOptimizer, createRegistry, registerBuiltins, resolveOptions } from '../src/plugin/index.js';
import { randn } from '../src/tensor/create.js';
import { memoryStats } from '../src/tensor/storage.js';
import type { Tensor } from '../src/tensor/tensor.js';
import type { Batch } from '../src/data/index.js';
import { train, type TrainEvent, type TrainJob, type TrainOptions } from '../src/train/index.js';

/** The optimizers' context (AdamW and SGD read only the kernels; the runs here are at most 30 steps). */
const CTX = { kernels: getTrainKernels(), seed: 5, totalSteps: 30 };
const V = 11;
const C = 8;
const T = 6;
let work: string;
let runs = 0;
beforeAll(async () => {
  work = await fsp.mkdtemp(join(tmpdir(), 'peft-train-'));
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});
const outDir = () => join(work, `run-${runs++}`);

/** Rows of the toy language: x[t+1] = (3 x[t] + 1) mod V from a seeded start. */
function toyRows(n: number, seed: number): Int32Array[] {
  const rng = new Xoshiro128(seed);
  return Array.from({ length: n }, () => {
    const row = new Int32Array(T);
    row[0] = rng.nextU32() % V;
    for (let t = 1; t < T; t++) row[t] = (3 * row[t - 1] + 1) % V;
    return row;
  });
}

function batchOf(rows: readonly Int32Array[]): Batch {
  const inputIds = new Int32Array(rows.length * T);
  rows.forEach((r, i) => inputIds.set(r, i * T));
  return { inputIds, labels: inputIds.slice(), B: rows.length, T, trainedTokens: rows.length * (T - 1) };
}

/** HF labels -> per-position targets: position t is scored on labels[t + 1] (as Llama.loss shifts). */
function shifted(b: Batch): Int32Array {
  const out = new Int32Array(b.B * b.T).fill(-100);
  for (let r = 0; r < b.B; r++) out.set(b.labels.subarray(r * b.T + 1, (r + 1) * b.T), r * b.T);
  return out;
}

interface Toy {
  nRows?: number;
  rowsPerBatch?: number;
  dropout?: number;
  nanAt?: number;
  /** a step whose loss is finite but whose grads are NaN (d sqrt(x) / dx at 0 is inf, times 0) */
  nanGradAt?: number;
  val?: boolean;
  optimizer?: 'adamw' | 'sgd';
}

function toyJob(o: Toy = {}): { job: TrainJob; events: TrainEvent[]; params: [string, Tensor][] } {
  const params: [string, Tensor][] = [
    ['emb', randn([V, C], { seed: 1, std: 0.5, requiresGrad: true })],
    ['head', randn([V, C], { seed: 2, std: 0.5, requiresGrad: true })],
  ];
  const [emb, head] = [params[0][1], params[1][1]];
  const registry = createRegistry();
  registerBuiltins(registry);
  const def = registry.get('optimizer', o.optimizer ?? 'adamw');
  const optimizer = createOptimizer(def, params, resolveOptions(def.name, def.options, o.optimizer === 'sgd' ? { momentum: 0.9 } : { weight_decay: 0.01 }), CTX);
  const rows = toyRows(o.nRows ?? 8, 7);
  const per = o.rowsPerBatch ?? 2;
  const events: TrainEvent[] = [];
  const forward = (b: Batch, seed: number | undefined) => {
    let h = ops.embedding(emb, b.inputIds);
    if (o.dropout && seed !== undefined) h = ops.dropout(h, o.dropout, { seed });
    return ops.crossEntropy(h, head, shifted(b));
  };
  const job: TrainJob = {
    params, optimizer,
    lossFn: (b, ctx) => {
      const loss = forward(b, ctx.dropoutSeed);
      if (ctx.step === o.nanAt) return loss.mulScalar(NaN);
      return ctx.step === o.nanGradAt ? loss.add(ops.sqrt(emb.mulScalar(0).sum())) : loss;
    },
    evalLossFn: (b) => ({ lossSum: forward(b, undefined).item() * b.trainedTokens, tokens: b.trainedTokens }),
    trainBatches: (epoch) => {
      const order = [...rows];
      const rng = new Xoshiro128(100 + epoch);
      for (let i = order.length - 1; i > 0; i--) {
        const j = rng.nextU32() % (i + 1);
        [order[i], order[j]] = [order[j], order[i]];
      }
      return Array.from({ length: Math.ceil(order.length / per) }, (_, i) => batchOf(order.slice(i * per, (i + 1) * per)));
    },
    valBatches: o.val ? () => [batchOf(toyRows(3, 99))] : undefined,
    save: (dir) => writeSafetensors(join(dir, 'adapter_model.safetensors'),
      params.map(([name, t]) => ({ name, dtype: 'F32' as const, shape: [...t.shape], data: t.data }))),
    onEvent: (e) => events.push(e),
  };
  return { job, events, params };
}

const base = (over: Partial<TrainOptions>): TrainOptions =>
  ({ outDir: outDir(), steps: 8, lr: 0.05, seed: 5, handleSigint: false, ...over });

function metricsOf(dir: string): Record<string, number>[] {
  return readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

/** The run-independent fields of metrics.jsonl (timings left out). */
const lossLines = (dir: string) => metricsOf(dir).map(({ step, loss, lr, grad_norm, eval_loss, epoch, tokens }) =>
  ({ step, loss, lr, grad_norm, eval_loss, epoch, tokens }));

const bits = (t: Tensor) => Array.from(new Uint32Array((t.data as Float32Array).slice().buffer));

describe('trainer on a toy language model', () => {
  it('learns, writes metrics.jsonl, loss.svg and the adapter, and frees every intermediate', async () => {
    const { job, events, params } = toyJob({ dropout: 0.1, val: true });
    const before = memoryStats().tensors;
    const opts = base({ steps: 30, schedule: 'linear', warmupSteps: 3, evalEvery: 10 });
    const r = await train(job, opts);
    expect(memoryStats().tensors).toBe(before);
    const lines = metricsOf(opts.outDir);
    const steps = lines.filter((l) => l.loss !== undefined);
    expect(steps.map((l) => l.step)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    for (const l of steps) {
      expect(Object.keys(l).sort()).toEqual(['elapsed_s', 'epoch', 'grad_norm', 'loss', 'lr', 'step', 'tokens', 'tokens_per_s']);
      expect(l.lr).toBe(lrAt(l.step - 1, { lr: 0.05, schedule: 'linear', totalSteps: 30, warmupSteps: 3 }));
      expect(l.tokens).toBe(2 * (T - 1));
    }
    expect(steps[0].lr).toBe(0); // HF: the first update of a warmup runs at lr 0
    expect(steps.at(-1)!.epoch).toBeCloseTo(30 / 4, 12); // 4 steps per epoch
    const first = steps[0].loss;
    const last = steps.slice(-5).reduce((s, l) => s + l.loss, 0) / 5;
    expect(last).toBeLessThan(0.5 * first);
    const evals = lines.filter((l) => l.eval_loss !== undefined);
    expect(evals.map((l) => l.step)).toEqual([10, 20, 30]);
    expect(evals[2].eval_ppl).toBeCloseTo(Math.exp(evals[2].eval_loss), 12);
    expect(evals[2].eval_loss).toBeLessThan(evals[0].eval_loss);
    expect(r).toMatchObject({ steps: 30, stoppedBy: 'done', finalLoss: steps.at(-1)!.loss, evalLoss: evals[2].eval_loss, tokens: 300 });
    expect(r.adapterDir).toBe(join(opts.outDir, 'adapter'));
    const saved = await SafetensorsFile.open(join(r.adapterDir!, 'adapter_model.safetensors'));
    expect(Array.from(new Uint32Array((await saved.read('head')).slice().buffer))).toEqual(bits(params[1][1]));
    await saved.close();
    const svg = readFileSync(join(opts.outDir, 'loss.svg'), 'utf8');
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg.match(/<polyline points="([^"]+)"/)![1].split(' ')).toHaveLength(30);
    expect(svg.match(/<circle /g)).toHaveLength(3);
    const stepEvents = events.filter((e) => e.type === 'step');
    expect(stepEvents).toHaveLength(30);
    expect(stepEvents[29]).toMatchObject({ step: 30, totalSteps: 30, etaSeconds: 0, loss: steps[29].loss });
    expect(events[0]).toMatchObject({ type: 'start', step: 0, totalSteps: 30, stepsPerEpoch: 4 });
    for (const [, p] of params) p.dispose();
    job.optimizer.dispose();
  });

  it('gradAccum 2 over batches of 1 equals gradAccum 1 over batches of 2 (equal token counts)', async () => {
    const a = toyJob({ rowsPerBatch: 1 });
    const b = toyJob({ rowsPerBatch: 2 });
    await train(a.job, base({ steps: 6, gradAccum: 2 }));
    const ra = await train(b.job, base({ steps: 6, gradAccum: 1 }));
    const la = metricsOf(join(work, `run-${runs - 2}`));
    const lb = metricsOf(join(work, `run-${runs - 1}`));
    expect(ra.steps).toBe(6);
    la.forEach((l, i) => {
      expect(l.tokens).toBe(lb[i].tokens);
      expect(Math.abs(l.loss - lb[i].loss)).toBeLessThan(1e-6 * lb[i].loss);
      expect(Math.abs(l.grad_norm - lb[i].grad_norm)).toBeLessThan(1e-6 * lb[i].grad_norm);
    });
    a.params.forEach(([name, p], k) => {
      const q = b.params[k][1].data;
      const scale = Math.max(...Array.from(q, Math.abs));
      p.data.forEach((v, i) => expect(Math.abs(v - q[i]), `${name}[${i}]`).toBeLessThan(1e-6 * scale));
    });
  });

  it('epochs: ceil(batches / gradAccum) steps per epoch, the last step of an epoch takes the remainder', async () => {
    const { job } = toyJob({ nRows: 10, rowsPerBatch: 2 }); // 5 batches -> 3 steps per epoch with gradAccum 2
    const opts = base({ steps: undefined, epochs: 2, gradAccum: 2 });
    const r = await train(job, opts);
    const lines = metricsOf(opts.outDir);
    expect(r.steps).toBe(6);
    expect(lines.map((l) => l.tokens)).toEqual([20, 20, 10, 20, 20, 10]);
    expect(lines.map((l) => l.epoch)).toEqual([0.4, 0.8, 1, 1.4, 1.8, 2]);
    expect(r.epochs).toBe(2);
  });
});

describe('checkpoints and resume', () => {
  it('an interrupted run resumed reproduces the uninterrupted one bit for bit', async () => {
    const settings = { steps: 9, saveEvery: 3, evalEvery: 4, schedule: 'cosine' as const, warmupSteps: 2 };
    const full = toyJob({ dropout: 0.2, val: true });
    const fullOpts = base(settings);
    await train(full.job, fullOpts);

    const dir = outDir();
    const controller = new AbortController();
    const first = toyJob({ dropout: 0.2, val: true });
    first.job.onEvent = (e) => {
      if (e.type === 'step' && e.step === 5) controller.abort();
    };
    const stopped = await train(first.job, { ...base(settings), outDir: dir, signal: controller.signal });
    expect(stopped).toMatchObject({ stoppedBy: 'interrupt', steps: 5, lastCheckpoint: join(dir, 'checkpoints', 'step-5') });
    expect(stopped.adapterDir).toBeUndefined();
    expect((await fsp.readdir(join(dir, 'checkpoints'))).sort()).toEqual(['step-3', 'step-5']);
    const ck = await fsp.readdir(join(dir, 'checkpoints', 'step-5'));
    expect(ck.sort()).toEqual(['adapter_model.safetensors', 'optimizer.safetensors', 'params.safetensors', 'trainer_state.json']);
    const state = JSON.parse(readFileSync(join(dir, 'checkpoints', 'step-5', 'trainer_state.json'), 'utf8'));
    expect(state).toMatchObject({ step: 5, epoch: 1, batchIndex: 1, tokens: 50 });

    const second = toyJob({ dropout: 0.2, val: true }); // fresh params: the checkpoint must restore them
    const events: TrainEvent[] = [];
    second.job.onEvent = (e) => events.push(e);
    const done = await train(second.job, { ...base(settings), outDir: dir, resume: true });
    expect(events[0]).toMatchObject({ type: 'start', step: 5, resumedFrom: join(dir, 'checkpoints', 'step-5') });
    expect(done).toMatchObject({ stoppedBy: 'done', steps: 9 });
    expect(lossLines(dir)).toEqual(lossLines(fullOpts.outDir));
    full.params.forEach(([name, p], k) => expect(bits(second.params[k][1]), name).toEqual(bits(p)));
    expect(readFileSync(join(dir, 'adapter', 'adapter_model.safetensors')))
      .toEqual(readFileSync(join(fullOpts.outDir, 'adapter', 'adapter_model.safetensors')));
    expect((await fsp.readdir(join(dir, 'checkpoints'))).sort()).toEqual(['step-6', 'step-9']);
  });

  it('the first SIGINT finishes the step, checkpoints and returns; the listener is removed', async () => {
    const { job, events } = toyJob({ optimizer: 'sgd' });
    const listeners = process.listenerCount('SIGINT');
    job.onEvent = (e) => {
      events.push(e);
      if (e.type === 'step' && e.step === 2) process.emit('SIGINT', 'SIGINT');
    };
    const opts = { ...base({ steps: 6 }), handleSigint: true };
    const r = await train(job, opts);
    expect(r).toMatchObject({ stoppedBy: 'interrupt', steps: 2, lastCheckpoint: join(opts.outDir, 'checkpoints', 'step-2') });
    expect(process.listenerCount('SIGINT')).toBe(listeners);
    expect(events.some((e) => e.type === 'warning' && /interrupt/.test(e.message))).toBe(true);
    expect(events.at(-1)).toMatchObject({ type: 'checkpoint', step: 2, reason: 'interrupt' });
  });

  it('a NaN loss stops without updating, checkpoints the last good step and says where', async () => {
    const { job, params } = toyJob({ nanAt: 4 });
    const opts = base({ saveEvery: 10 });
    const err = await train(job, opts).catch((e: unknown) => e);
    const dir = join(opts.outDir, 'checkpoints', 'step-3');
    expect(err).toBeInstanceOf(PeftError);
    expect(err).toMatchObject({ code: 'E_RUNTIME', exitCode: 1, message: `loss is NaN at step 4; last good checkpoint: ${dir}` });
    const saved = await SafetensorsFile.open(join(dir, 'params.safetensors'));
    for (const [name, p] of params) {
      expect(params.every(([, t]) => t.grad === undefined)).toBe(true);
      expect(Array.from(new Uint32Array((await saved.read(name)).slice().buffer)), name).toEqual(bits(p));
    }
    await saved.close();
    expect(metricsOf(opts.outDir).map((l) => l.step)).toEqual([1, 2, 3]);
    expect(readFileSync(join(opts.outDir, 'loss.svg'), 'utf8')).toMatch(/<polyline/);
  });

  it('NaN grads with a finite loss stop the same way', async () => {
    const opts = base({});
    const err = await train(toyJob({ nanGradAt: 2 }).job, opts).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'E_RUNTIME', message: `grad norm is NaN at step 2; last good checkpoint: ${join(opts.outDir, 'checkpoints', 'step-1')}` });
  });

  it('refuses to resume with other settings (E_INPUT naming the option), without a checkpoint, or over a run', async () => {
    const dir = outDir();
    await train(toyJob().job, { ...base({ steps: 4, saveEvery: 2 }), outDir: dir });
    const resume = (over: Partial<TrainOptions>) =>
      train(toyJob().job, { ...base({ steps: 4, saveEvery: 2 }), outDir: dir, resume: true, ...over }).catch((e: unknown) => e);
    expect(await resume({ lr: 0.01 })).toMatchObject({ code: 'E_INPUT', exitCode: 2, message: expect.stringMatching(/: lr is 0.01 but the checkpoint was trained with 0.05/) });
    expect(await resume({ gradAccum: 2 })).toMatchObject({ code: 'E_INPUT', message: expect.stringMatching(/gradAccum is 2 .* with 1/) });
    expect(await resume({ seed: 6 })).toMatchObject({ code: 'E_INPUT', message: expect.stringMatching(/seed is 6/) });
    expect(await resume({ schedule: 'constant' })).toMatchObject({ code: 'E_INPUT', message: expect.stringMatching(/schedule is "constant"/) });
    expect(await resume({ fingerprint: { model: 'x' } })).toMatchObject({ code: 'E_INPUT', message: expect.stringMatching(/model is "x" but .* unset/) });
    const batch = await train(toyJob({ rowsPerBatch: 1 }).job, { ...base({ steps: 4, saveEvery: 2 }), outDir: dir, resume: true })
      .catch((e: unknown) => e);
    expect(batch).toMatchObject({ code: 'E_INPUT', message: expect.stringMatching(/batchSize is 1 but .* with 2/) });
    expect(await resume({ outDir: outDir() })).toMatchObject({ code: 'E_NOT_FOUND', exitCode: 2 });
    const again = await train(toyJob().job, { ...base({ steps: 4 }), outDir: dir }).catch((e: unknown) => e);
    expect(again).toMatchObject({ code: 'E_EXISTS', message: expect.stringMatching(/previous run \(metrics.jsonl, loss.svg, checkpoints, adapter\)/) });
    const forced = await train(toyJob().job, { ...base({ steps: 2 }), outDir: dir, force: true });
    expect(forced.steps).toBe(2);
    await expect(fsp.readdir(join(dir, 'checkpoints'))).rejects.toThrow(/ENOENT/);
  });

  it('validates options before writing anything', async () => {
    const dir = outDir();
    const bad = (over: Partial<TrainOptions>) => train(toyJob().job, { ...base({}), outDir: dir, ...over }).catch((e: unknown) => e);
    expect(await bad({ steps: 0 })).toMatchObject({ code: 'E_INPUT', message: 'train: steps must be an integer >= 1, got 0' });
    expect(await bad({ steps: undefined })).toMatchObject({ code: 'E_INPUT', message: 'train: give steps or epochs' });
    expect(await bad({ lr: -1 })).toMatchObject({ code: 'E_INPUT' });
    expect(await bad({ schedule: 'exp' as never })).toMatchObject({ message: expect.stringMatching(/unknown schedule "exp"/) });
    await expect(fsp.stat(dir)).rejects.toThrow(/ENOENT/);
  });
});

describe('trainer on the tiny Llama fixture', () => {
  it('training its norm weights through Llama.loss lowers the loss', async () => {
    const dir = join(work, 'tiny');
    await generateTinyLlama(dir, { numLayers: 1 });
    const model = await Llama.fromFolder(dir);
    for (const [name, m] of model.namedModules()) if (/norm$/.test(name)) m.requiresGrad(true);
    const params = model.namedParameters().filter(([, t]) => t.requiresGrad);
    const registry = createRegistry();
    registerBuiltins(registry);
    const def = registry.get('optimizer', 'adamw');
    const ids = Int32Array.from({ length: 2 * 16 }, (_, i) => 10 + ((i * 7) % 23));
    const batch: Batch = { inputIds: ids, labels: ids.slice(), B: 2, T: 16, trainedTokens: 2 * 15 };
    const job: TrainJob = {
      params, optimizer: createOptimizer(def, params, resolveOptions('adamw', def.options, {}), CTX),
      lossFn: (b) => model.loss({ data: b.inputIds, shape: [b.B, b.T] }, { data: b.labels, shape: [b.B, b.T] }),
      trainBatches: () => [batch],
      save: async () => {},
    };
    const opts = base({ steps: 8, lr: 0.05, schedule: 'constant' });
    await train(job, opts);
    const losses = metricsOf(opts.outDir).map((l) => l.loss);
    expect(losses[7]).toBeLessThan(losses[0] - 0.05);
    job.optimizer.dispose();
    model.dispose();
  });
});
