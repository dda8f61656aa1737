#!/usr/bin/env node
/**
 * `make bench`, engine part: one forward+backward step of the Llama "tiny" config (dim 288, 6 layers,
 * 6 heads, ffn 768, vocab 32000, batch 4 x seq 256, every base weight frozen so gradients flow to the
 * embedding output as under an adapter), ours vs PyTorch on the same generated f32 model, side by side
 * in one run, medians of several steps. `--json` prints the rows. PyTorch runs through Debian's
 * /usr/bin/python3 (torch); without it the peer column says so.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { generateTinyLlama, getTrainKernels, Llama, memoryStats, referenceTrainKernels, tidy } from '../packages/core-tensor/dist/index.js';

const root = resolve(import.meta.dirname, '..');
const dir = join(root, '.tmp/bench/tiny-f32');
const B = 4, T = 256, STEPS = Number(process.env.PEFT_BENCH_STEPS ?? 5);
const json = process.argv.includes('--json');

if (!existsSync(join(dir, 'config.json'))) await generateTinyLlama(dir, { preset: 'demo', dtype: 'F32', seed: 1 });

const model = await Llama.fromFolder(dir);
const ids = new Int32Array(B * T);
let s = 12345;
for (let i = 0; i < ids.length; i++) ids[i] = (s = (s * 1103515245 + 12345) >>> 0) % 32000;

function step() {
  let x;
  const loss = tidy(() => {
    x = model.embed({ data: ids, shape: [B, T] });
    x.requiresGrad = true;
    const l = model.lossFromHidden(model.forwardEmbeds(x).hidden, { data: ids, shape: [B, T] });
    l.backward();
    return l.item();
  });
  x.grad?.dispose();
  x.dispose();
  return loss;
}

const median = (a) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
const loss = step();
const times = [];
for (let i = 0; i < STEPS; i++) {
  const t0 = performance.now();
  step();
  times.push((performance.now() - t0) / 1000);
}
const ours = { peer: `peft (${getTrainKernels() === referenceTrainKernels ? 'reference TS' : 'native'} kernels)`, loss, median_s: median(times), tokens_per_s: (B * T) / median(times), live: memoryStats() };

// The environment may pin OpenBLAS to an older core type (see the machine notes); the peer runs with
// OpenBLAS's own detection, as users would have it.
const peerEnv = { ...process.env };
delete peerEnv.OPENBLAS_CORETYPE;
delete peerEnv.OPENBLAS_L2_SIZE;
// Both peers see the same tokens, so their losses must agree too.
const idsFile = join(dir, 'bench-ids.json');
writeFileSync(idsFile, JSON.stringify(Array.from(ids)));
let torch;
try {
  const out = execFileSync('/usr/bin/python3', [join(root, 'scripts/bench_step_torch.py'), '--model', dir, '--steps', String(STEPS), '--ids', idsFile], {
    encoding: 'utf8', env: peerEnv,
  });
  torch = JSON.parse(out.trim().split('\n').pop());
} catch (e) {
  torch = { peer: `torch unavailable (${String(e.message).split('\n')[0]})` };
}

const rows = [ours, torch];
if (json) console.log(JSON.stringify({ B, T, steps: STEPS, rows, speedup: torch.median_s ? torch.median_s / ours.median_s : null }, null, 2));
else {
  console.log(`forward+backward, Llama tiny (288x6, vocab 32000), batch ${B} x seq ${T}, base frozen, f32, median of ${STEPS}`);
  console.log('peer                         loss      step s   tokens/s');
  for (const r of rows) {
    if (r.median_s === undefined) console.log(r.peer);
    else console.log(`${r.peer.padEnd(28)} ${r.loss.toFixed(4).padStart(7)}  ${r.median_s.toFixed(3).padStart(8)}  ${r.tokens_per_s.toFixed(0).padStart(8)}`);
  }
  if (torch.median_s) console.log(`ours / torch step time: ${(ours.median_s / torch.median_s).toFixed(2)}x (lower is better)`);
}
