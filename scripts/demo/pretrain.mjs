#!/usr/bin/env node
/**
 * Pretrains the demo's base model (demo/base) from random initialisation with peft's own trainer:
 * full fine-tuning of every weight of a small Llama on the generated corpus (corpus.mjs), then saved
 * as an ordinary Hugging Face folder in bf16. Deterministic: the same seed on the same machine gives
 * the same losses and the same bytes (seeded init, data order and trainer; native kernels are).
 *
 *   node scripts/demo/pretrain.mjs [--out demo/base] [--work .tmp/demo-pretrain] [--steps N] [--force]
 *
 * Needs the built packages (`make build`). Writes the corpus, the F32 initial model, the trainer's
 * metrics.jsonl / loss.svg / checkpoints under --work; only the final folder goes to --out.
 * Not here: the data (data.mjs), the fine-tuning tasks (tasks.mjs), `make demo` itself.
 */
import { promises as fsp } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  batchesFor, createOptimizer, createRegistry, fromF32, generateTinyLlama, getBackend, getTrainKernels, Llama, loadDataset,
  padIdFor, pyJsonDumps, registerBuiltins, resolveOptions, ShardedWriter, Tokenizer, tokenizerJson, train, withAtomicOutput,
} from '../../packages/core-tensor/dist/index.js';
import { pretrainFiles, writeFiles } from './data.mjs';

/** 4 layers of hidden 128 (4 heads of 32), ffn 384: ~0.95M parameters, 1.9 MB in bf16. Dims are multiples of 64 (NF4 blocks). */
export const MODEL = {
  preset: 'tiny', hiddenSize: 128, numLayers: 4, numHeads: 4, numKvHeads: 4, intermediateSize: 384,
  vocabSize: 320, maxPositionEmbeddings: 512, seed: 1,
};
/**
 * Byte-level tokens only (the fixture tokenizer with no merges: 3 specials + 256 bytes), so every
 * character is one token and the tasks' rules act token by token. The embedding keeps 320 rows (a
 * multiple of 64, as checkpoints pad theirs); ids 259-319 are never produced.
 */
export const TOKENIZER_VOCAB = 259;
export const RUN = {
  steps: 3000, batch: 16, seqLen: 128, lr: 3e-3, schedule: 'cosine', warmupSteps: 100, seed: 1,
  adamw: { beta2: 0.95, weight_decay: 0.1 }, evalEvery: 500, saveEvery: 1000,
};

const HF_FILES = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'];

/** The random-init F32 model to train, with the byte-level tokenizer. */
async function initialModel(dir) {
  await generateTinyLlama(dir, { ...MODEL, dtype: 'F32' });
  await fsp.writeFile(join(dir, 'tokenizer.json'), pyJsonDumps(tokenizerJson(TOKENIZER_VOCAB)));
}

/** Writes the trained weights (bf16, HF names) and the init folder's config/tokenizer files into dir. */
async function saveModel(model, initDir, dir) {
  const writer = new ShardedWriter(dir);
  try {
    for (const [name, t] of model.namedParameters()) {
      await writer.add({ name, dtype: 'BF16', shape: t.shape, data: fromF32(getBackend(), t.data, 'BF16') });
    }
    await writer.finish();
  } catch (e) {
    await writer.abort();
    throw e;
  }
  for (const f of HF_FILES) await fsp.copyFile(join(initDir, f), join(dir, f));
  const config = JSON.parse(await fsp.readFile(join(initDir, 'config.json'), 'utf8'));
  await fsp.writeFile(join(dir, 'config.json'), pyJsonDumps({ ...config, torch_dtype: 'bfloat16' }));
}

/** The trainer's job: every float weight of `model` trains on packed text rows. */
function pretrainJob(model, ds, padId, initDir, steps) {
  const params = model.namedParameters().filter(([, t]) => t.requiresGrad);
  const registry = createRegistry();
  registerBuiltins(registry);
  const adamw = registry.get('optimizer', 'adamw');
  const batchOpts = { batchSize: RUN.batch, seqLen: RUN.seqLen, seed: RUN.seed, packing: true, padId };
  const loss = (b) => model.loss({ data: b.inputIds, shape: [b.B, b.T] }, { data: b.labels, shape: [b.B, b.T] });
  return {
    params,
    optimizer: createOptimizer(adamw, params, resolveOptions('adamw', adamw.options, RUN.adamw),
      { kernels: getTrainKernels(), seed: RUN.seed, totalSteps: steps }),
    lossFn: loss,
    evalLossFn: (b) => ({ lossSum: loss(b).item() * b.trainedTokens, tokens: b.trainedTokens }),
    trainBatches: (epoch) => batchesFor(ds.train, { ...batchOpts, epoch }),
    valBatches: () => batchesFor(ds.val, { ...batchOpts, epoch: 0, shuffle: false }),
    save: (dir) => saveModel(model, initDir, dir),
    onEvent: (e) => {
      if (e.type === 'step' && e.step % 25 === 0) {
        console.log(`step ${e.step}/${e.totalSteps} loss ${e.loss.toFixed(3)} lr ${e.lr.toExponential(2)} ${e.tokensPerSec.toFixed(0)} tok/s ${e.elapsed.toFixed(0)} s`);
      }
      if (e.type === 'eval') console.log(`step ${e.step} eval loss ${e.evalLoss.toFixed(3)}`);
    },
  };
}

async function main() {
  const root = resolve(import.meta.dirname, '../..');
  const { values } = parseArgs({
    options: { out: { type: 'string' }, work: { type: 'string' }, steps: { type: 'string' }, force: { type: 'boolean' } },
  });
  const out = resolve(values.out ?? join(root, 'demo/base'));
  const work = resolve(values.work ?? join(root, '.tmp/demo-pretrain'));
  const steps = values.steps === undefined ? RUN.steps : Number(values.steps);
  const t0 = performance.now();
  writeFiles(join(work, 'data'), pretrainFiles());
  const initDir = join(work, 'init');
  await initialModel(initDir);
  const tok = await Tokenizer.fromFolder(initDir);
  const ds = await loadDataset(join(work, 'data/pretrain/train.jsonl'), tok, {
    seqLen: RUN.seqLen, packing: true, seed: RUN.seed, valFile: join(work, 'data/pretrain/val.jsonl'),
  });
  const model = (await Llama.fromFolder(initDir)).requiresGrad(true);
  console.log(`pretraining ${model.parameters().reduce((n, t) => n + t.size, 0)} parameters on ${ds.stats.tokens} tokens, ${steps} steps of ${RUN.batch} x ${RUN.seqLen}`);
  const res = await train(pretrainJob(model, ds, padIdFor(tok), initDir, steps), {
    outDir: join(work, 'run'), steps, lr: RUN.lr, schedule: RUN.schedule, warmupSteps: RUN.warmupSteps, seed: RUN.seed,
    evalEvery: RUN.evalEvery, saveEvery: RUN.saveEvery, force: true, logEvery: 25,
  });
  await withAtomicOutput(out, { command: 'demo-pretrain', force: values.force }, async (tmp) => {
    for (const f of await fsp.readdir(res.adapterDir)) await fsp.copyFile(join(res.adapterDir, f), join(tmp, f));
  });
  const secs = (performance.now() - t0) / 1000;
  console.log(`done in ${secs.toFixed(0)} s: final loss ${res.finalLoss.toFixed(4)}, eval loss ${res.evalLoss?.toFixed(4)} -> ${out}`);
}

await main();
