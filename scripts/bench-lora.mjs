#!/usr/bin/env node
/**
 * `make bench`, training part: tokens/s and peak RSS of LoRA training (f32 base) and QLoRA training
 * (NF4 base from `peft quantize`) with `peft train` on the Llama "tiny" config (288x6, vocab 32000),
 * batch 4 x seq 256 packed, LoRA r=16 alpha=32 on every linear layer, AdamW, side by side with the same
 * LoRA training in PyTorch (scripts/bench_lora_torch.py) in one run. Step time = median of the
 * differences of metrics.jsonl's elapsed_s (the first step, which includes warm-up, is dropped); each
 * peer runs in its own process so peak RSS is its own. `--json` prints the rows.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const dir = join(root, '.tmp/bench');
const STEPS = Number(process.env.PEFT_BENCH_STEPS ?? 6);
const B = 4, T = 256, R = 16, ALPHA = 32;
const json = process.argv.includes('--json');
const peft = (args) => execFileSync('node', [join(root, 'packages/cli/bin/run.js'), ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
const median = (a) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];

mkdirSync(dir, { recursive: true });
const f32 = join(dir, 'tiny-f32');
const nf4 = join(dir, 'tiny-nf4');
if (!existsSync(join(f32, 'config.json'))) {
  execFileSync('node', [join(root, 'packages/core-tensor/bin/gen-model.js'), f32, '--preset', 'demo', '--dtype', 'f32', '--seed', '1'], { stdio: 'ignore' });
}
if (!existsSync(join(nf4, 'config.json'))) peft(['quantize', f32, '--out', nf4, '--type', 'nf4']);

// Enough packed text for every step: words from a fixed list, seeded.
const data = join(dir, 'bench-text.jsonl');
const words = 'the quick brown fox jumps over lazy dog model weight adapter rank token train loss value number one two three'.split(' ');
let s = 7;
const rand = () => (s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32;
const rows = Array.from({ length: 64 }, () => JSON.stringify({ text: Array.from({ length: 400 }, () => words[Math.floor(rand() * words.length)]).join(' ') }));
writeFileSync(data, rows.join('\n') + '\n');

function ours(label, model) {
  const out = join(dir, `train-${label}`);
  rmSync(out, { recursive: true, force: true });
  const summary = JSON.parse(peft(['train', model, '--data', data, '--out', out, '--steps', String(STEPS + 1), '--batch', String(B),
    '--seq-len', String(T), '--packing', '--lr', '1e-4', '--max-grad-norm', '0', '--schedule', 'constant',
    '--set', `r=${R}`, '--set', `lora_alpha=${ALPHA}`, '--set', 'target_modules=all-linear', '--json']));
  const elapsed = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => 'loss' in r).map((r) => r.elapsed_s);
  const steps = elapsed.slice(1).map((e, i) => e - elapsed[i]);
  rmSync(out, { recursive: true, force: true });
  const med = median(steps);
  return { peer: `peft ${label}`, median_s: med, tokens_per_s: (B * T) / med, peak_rss_mib: summary.peakRssMiB, trainable: summary.trainableParams };
}

const lora = ours('lora (f32 base)', f32);
const qlora = ours('qlora (nf4 base)', nf4);
const peerEnv = { ...process.env };
delete peerEnv.OPENBLAS_CORETYPE; // the peer runs with OpenBLAS's own core detection, as users have it
delete peerEnv.OPENBLAS_L2_SIZE;
let torch;
try {
  torch = JSON.parse(execFileSync('/usr/bin/python3', [join(root, 'scripts/bench_lora_torch.py'), '--model', f32, '--steps', String(STEPS),
    '--batch', String(B), '--seq', String(T), '--r', String(R), '--alpha', String(ALPHA)], { encoding: 'utf8', env: peerEnv }).trim().split('\n').pop());
  torch.peer = `${torch.peer} lora (f32 base)`;
} catch (e) {
  torch = { peer: `torch unavailable (${String(e.message).split('\n')[0]})` };
}

const ratios = {
  lora_vs_torch_tokens_per_s: torch.tokens_per_s ? lora.tokens_per_s / torch.tokens_per_s : null,
  qlora_step_vs_lora: qlora.median_s / lora.median_s,
  qlora_rss_vs_lora: qlora.peak_rss_mib / lora.peak_rss_mib,
};
if (json) console.log(JSON.stringify({ B, T, r: R, steps: STEPS, rows: [lora, qlora, torch], ratios }, null, 2));
else {
  console.log(`LoRA training step, Llama tiny (288x6, vocab 32000), batch ${B} x seq ${T}, r=${R} on all linear layers, median of ${STEPS} steps`);
  console.log('peer                          step s   tokens/s  peak RSS MiB');
  for (const r of [lora, qlora, torch]) {
    if (r.median_s === undefined) console.log(r.peer);
    else console.log(`${r.peer.padEnd(28)} ${r.median_s.toFixed(3).padStart(7)}  ${r.tokens_per_s.toFixed(0).padStart(8)}  ${r.peak_rss_mib.toFixed(0).padStart(12)}`);
  }
  if (ratios.lora_vs_torch_tokens_per_s) console.log(`LoRA tokens/s, ours / torch: ${ratios.lora_vs_torch_tokens_per_s.toFixed(2)}x (target >= 1.5)`);
  console.log(`QLoRA step / LoRA step: ${ratios.qlora_step_vs_lora.toFixed(2)} (target <= 1.2); QLoRA peak RSS / LoRA: ${ratios.qlora_rss_vs_lora.toFixed(2)} (target < 1)`);
}
