#!/usr/bin/env node
/**
 * `make bench`, side-tuning part: QST against QLoRA (r=16, alpha 32, every linear layer) with `peft train`
 * on the same NF4 base (`peft quantize` of a random SmolLM-135M-shaped Llama: hidden 576, 30 layers,
 * 9 heads / 3 kv heads, ffn 1536, vocab 49152, tied embeddings), side by side in one run:
 *   step time and peak RSS at batch 4 x 256 and 16 x 256, each run in its own process (peak RSS is its
 *   own); step time = median of the differences of metrics.jsonl's elapsed_s (the first step dropped);
 *   targets QST step <= 0.5 x QLoRA's, QST peak RSS <= 0.6 x;
 *   epochs with cache_features and a gradient-free downsample (maxpool): 3 epochs of E batches of 4 x 256,
 *   each epoch's time from metrics.jsonl, against a QLoRA epoch = E x its median step; target: an epoch
 *   after the first >= 10 x faster.
 * Rows are 256-token prompt / completion rows of seeded words (no packing: an example is the same row in
 * every epoch).
 * `--json` prints the rows; PEFT_BENCH_STEPS (default 3) sets the measured steps, PEFT_BENCH_EPOCH_BATCHES
 * (default 4) E.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const dir = join(root, '.tmp/bench-qst');
const STEPS = Number(process.env.PEFT_BENCH_STEPS ?? 3);
const E = Number(process.env.PEFT_BENCH_EPOCH_BATCHES ?? 4);
const T = 256;
const json = process.argv.includes('--json');
const peft = (args) => execFileSync('node', [join(root, 'packages/cli/bin/run.js'), ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
const median = (a) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
const log = (s) => { if (!json) process.stderr.write(`${s}\n`); };

mkdirSync(dir, { recursive: true });
const bf16 = join(dir, 'smollm-shape-bf16');
const nf4 = join(dir, 'smollm-shape-nf4');
if (!existsSync(join(nf4, 'config.json'))) {
  log('generating the SmolLM-135M-shaped base and quantizing it to NF4 ...');
  const { generateTinyLlama } = await import('../packages/core-tensor/dist/index.js');
  await generateTinyLlama(bf16, {
    hiddenSize: 576, numLayers: 30, numHeads: 9, numKvHeads: 3, intermediateSize: 1536, vocabSize: 49152, tieEmbeddings: true,
    dtype: 'BF16', seed: 1, maxPositionEmbeddings: 2048,
  });
  peft(['quantize', bf16, '--out', nf4, '--type', 'nf4']);
  rmSync(bf16, { recursive: true, force: true });
}

/**
 * `rows` prompt / completion rows of seeded words, the prompt longer than a row: the trainer cuts each to
 * exactly 256 tokens (the prompt loses its start), so batches need no padding and rows repeat each epoch.
 */
function dataFile(name, rows) {
  const path = join(dir, `${name}.jsonl`);
  const words = 'the quick brown fox jumps over lazy dog model weight adapter rank token train loss value number one two three'.split(' ');
  let s = 7;
  const rand = () => (s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const text = () => Array.from({ length: 100 }, () => words[Math.floor(rand() * words.length)]).join(' ');
  writeFileSync(path, Array.from({ length: rows }, () => JSON.stringify({ prompt: text(), completion: ` ${text().slice(0, 40)}` })).join('\n') + '\n');
  return path;
}

const QLORA = ['--set', 'r=16', '--set', 'lora_alpha=32', '--set', 'target_modules=all-linear'];
const PEERS = { qlora: QLORA, qst: ['--method', 'qst'], 'qst maxpool': ['--method', 'qst', '--set', 'downsample=maxpool'] };

function train(label, args, data, extra) {
  const out = join(dir, `train-${label.replace(/\W+/g, '-')}`);
  rmSync(out, { recursive: true, force: true });
  const summary = JSON.parse(peft(['train', nf4, '--data', data, '--out', out, '--seq-len', String(T), '--lr', '1e-4', '--max-grad-norm', '0',
    '--schedule', 'constant', '--seed', '1', ...args, ...extra, '--json']));
  const rows = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => 'loss' in r);
  rmSync(out, { recursive: true, force: true });
  return { summary, rows };
}

function stepRun(peer, B) {
  log(`${peer} at ${B} x ${T}: ${STEPS + 1} steps ...`);
  const { summary, rows } = train(`${peer}-${B}`, PEERS[peer], dataFile(`rows-${B}`, B * (STEPS + 1)), ['--batch', String(B), '--steps', String(STEPS + 1)]);
  const steps = rows.slice(1).map((r, i) => r.elapsed_s - rows[i].elapsed_s);
  return { peer, B, T, median_s: median(steps), steps_s: steps, peak_rss_mib: summary.peakRssMiB, trainable: summary.trainableParams, load: loadavg()[0] };
}

function epochRun() {
  log(`qst maxpool + cache_features: 3 epochs of ${E} batches of 4 x ${T} ...`);
  const { summary, rows } = train('qst-cached', [...PEERS['qst maxpool'], '--set', 'cache_features=true'], dataFile('epoch-rows', 4 * E),
    ['--batch', '4', '--epochs', '3']);
  const ends = [1, 2, 3].map((e) => rows[e * E - 1].elapsed_s);
  return { epochs_s: ends.map((t, i) => t - (i ? ends[i - 1] : 0)), peak_rss_mib: summary.peakRssMiB, load: loadavg()[0] };
}

const results = [];
for (const B of [4, 16]) for (const peer of Object.keys(PEERS)) results.push(stepRun(peer, B));
const cached = epochRun();
const at = (peer, B) => results.find((r) => r.peer === peer && r.B === B);
const ratios = [4, 16].map((B) => ({
  B, qst_step_vs_qlora: at('qst', B).median_s / at('qlora', B).median_s, qst_rss_vs_qlora: at('qst', B).peak_rss_mib / at('qlora', B).peak_rss_mib,
  qst_maxpool_step_vs_qlora: at('qst maxpool', B).median_s / at('qlora', B).median_s,
}));
const qloraEpoch = E * at('qlora', 4).median_s;
const epochSpeedup = cached.epochs_s.slice(1).map((s) => qloraEpoch / s);

if (json) console.log(JSON.stringify({ T, steps: STEPS, epoch_batches: E, rows: results, cached, qlora_epoch_s: qloraEpoch, ratios, epoch_speedup: epochSpeedup }, null, 2));
else {
  console.log(`QST vs QLoRA (r=16, all linear) on an NF4 SmolLM-135M-shaped base (576x30, 9/3 heads, ffn 1536, vocab 49152), seq ${T}, median of ${STEPS} steps`);
  console.log('peer          batch   step s   tokens/s  peak RSS MiB  trainable   load');
  for (const r of results) {
    console.log(`${r.peer.padEnd(12)} ${String(r.B).padStart(6)} ${r.median_s.toFixed(2).padStart(8)} ${((r.B * T) / r.median_s).toFixed(0).padStart(10)} ${r.peak_rss_mib.toFixed(0).padStart(13)} ${String(r.trainable).padStart(10)} ${r.load.toFixed(1).padStart(6)}`);
  }
  for (const r of ratios) {
    console.log(`batch ${r.B}: QST step / QLoRA ${r.qst_step_vs_qlora.toFixed(2)} (target <= 0.5), QST peak RSS / QLoRA ${r.qst_rss_vs_qlora.toFixed(2)} (target <= 0.6), QST maxpool step / QLoRA ${r.qst_maxpool_step_vs_qlora.toFixed(2)}`);
  }
  console.log(`cache_features (maxpool), ${E} batches of 4 x ${T}: epochs ${cached.epochs_s.map((s) => s.toFixed(2)).join(' / ')} s, peak RSS ${cached.peak_rss_mib.toFixed(0)} MiB; ` +
    `QLoRA epoch ${qloraEpoch.toFixed(2)} s -> epochs 2 and 3 ${epochSpeedup.map((x) => x.toFixed(1)).join(' / ')} x faster (target >= 10)`);
}
