#!/usr/bin/env node
/**
 * `make bench`, GaLore part (issue 12):
 * 1. The randomized truncated SVD (kernels-napi src/linalg/rsvd.rs) of a 4096 x 4096 f32 matrix with a
 *    decaying spectrum, rank 128 (oversample 10, 2 power iterations: GaLore's svd=randomized defaults),
 *    beside numpy's full SVD of the same matrix (scripts/bench_rsvd_numpy.py, which also builds it), with
 *    the top-128 singular values' largest relative error against numpy's. Target: < 2 s.
 * 2. Optimizer-state bytes, from stateSpec() (no training), on the SmolLM-135M shape (hidden 576, 30
 *    layers, 9 / 3 heads of 64, ffn 1536, vocab 49152, tied embeddings): AdamW against galore,
 *    galore-8bit and natural-galore at rank 128, with galore-torch's targets (attn, mlp) and with every
 *    2-D weight projected. Target: galore <= 0.35 x AdamW (the paper's 65 % saving).
 * Not here (they need full-parameter training, issue 12 item 1): GaLore's step time and loss curve.
 * `--json` prints the rows; PEFT_BENCH_RSVD_SIZE=M (default 4096) for a quicker run.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createOptimizer, createRegistry, getTrainKernels, randomizedSvd, registerBuiltins, resolveOptions, zeros } from '../packages/core-tensor/dist/index.js';
import { register } from '../packages/plugin-galore/dist/index.js';

const root = resolve(import.meta.dirname, '..');
const json = process.argv.includes('--json');
const size = Number(process.env.PEFT_BENCH_RSVD_SIZE ?? 4096);
const RANK = 128;

function rsvdRows() {
  const dir = join(root, '.tmp/bench/rsvd');
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE; // the peer runs with OpenBLAS's own detection, as users have it
  let peer;
  try {
    peer = JSON.parse(execFileSync('/usr/bin/python3', [join(root, 'scripts/bench_rsvd_numpy.py'), dir, String(size), String(size)], { env, encoding: 'utf8' }));
  } catch (e) {
    return [{ what: 'randomized SVD', note: `numpy peer failed: ${e.message.split('\n')[0]}` }];
  }
  const raw = readFileSync(join(dir, 'a.f32'));
  const a = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  const sv = new Float64Array(readFileSync(join(dir, 's.f64')).buffer.slice(0));
  const kernels = getTrainKernels();
  const times = [];
  let f;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    f = randomizedSvd(kernels, a, size, size, RANK, { seed: i });
    times.push((performance.now() - t0) / 1000);
  }
  const err = (k) => Math.max(...Array.from({ length: k }, (_, j) => Math.abs(f.S[j] - sv[j]) / sv[j]));
  return [
    { what: `randomized SVD ${size}x${size} rank ${RANK} (peft native, best of 3)`, seconds: Math.min(...times), max_rel_err_top128: err(RANK), max_rel_err_top64: err(64) },
    { what: `full SVD ${size}x${size} (numpy ${peer.numpy}, np.linalg.svd)`, seconds: peer.svd_seconds },
  ];
}

/** SmolLM-135M's parameters (HF names), f32 zeros: 134.5M values. */
function smolParams() {
  const [H, L, F, V, KV] = [576, 30, 1536, 49152, 3 * 64];
  const p = [['model.embed_tokens.weight', [V, H]], ['model.norm.weight', [H]]];
  for (let l = 0; l < L; l++) {
    const x = `model.layers.${l}`;
    p.push([`${x}.self_attn.q_proj.weight`, [H, H]], [`${x}.self_attn.k_proj.weight`, [KV, H]], [`${x}.self_attn.v_proj.weight`, [KV, H]],
      [`${x}.self_attn.o_proj.weight`, [H, H]], [`${x}.mlp.gate_proj.weight`, [F, H]], [`${x}.mlp.up_proj.weight`, [F, H]],
      [`${x}.mlp.down_proj.weight`, [H, F]], [`${x}.input_layernorm.weight`, [H]], [`${x}.post_attention_layernorm.weight`, [H]]);
  }
  return p.map(([n, s]) => [n, zeros(s)]);
}

function stateRows() {
  const registry = createRegistry();
  registerBuiltins(registry);
  register(registry);
  const params = smolParams();
  const count = params.reduce((s, [, t]) => s + t.size, 0);
  const bytesOf = (name, set) => {
    const def = registry.get('optimizer', name);
    const opt = createOptimizer(def, params, resolveOptions(name, def.options, set), { kernels: getTrainKernels(), seed: 0, totalSteps: 1 });
    let b = 0;
    for (const s of opt.stateSpec().values()) b += s.shape.reduce((x, y) => x * y, 1) * (s.dtype === 'F32' ? 4 : 1);
    opt.dispose();
    return b;
  };
  const adamw = bytesOf('adamw', {});
  const rows = [{ what: `AdamW (${(count / 1e6).toFixed(1)}M parameters)`, state_MB: adamw / 1e6, vs_adamw: 1 }];
  for (const [name, set, label] of [
    ['galore', { rank: RANK }, 'galore, attn + mlp projected'], ['galore', { rank: RANK, target_modules: '*' }, 'galore, every 2-D weight'],
    ['galore-8bit', { rank: RANK }, 'galore-8bit, attn + mlp'], ['galore-8bit', { rank: RANK, target_modules: '*' }, 'galore-8bit, every 2-D weight'],
    ['natural-galore', { rank: RANK, target_modules: '*' }, 'natural-galore, every 2-D weight'],
  ]) {
    const b = bytesOf(name, set);
    rows.push({ what: `${label} (rank ${RANK})`, state_MB: b / 1e6, vs_adamw: b / adamw });
  }
  return rows;
}

const rows = [...stateRows(), ...rsvdRows()];
if (json) console.log(JSON.stringify(rows, null, 2));
else {
  console.log('GaLore: optimizer-state bytes on the SmolLM-135M shape (target: galore <= 0.35 x AdamW)');
  for (const r of rows.filter((x) => 'state_MB' in x)) console.log(`  ${r.what.padEnd(52)} ${r.state_MB.toFixed(1).padStart(8)} MB  ${r.vs_adamw.toFixed(3)} x AdamW`);
  console.log('GaLore: randomized SVD beside numpy (target: < 2 s)');
  for (const r of rows.filter((x) => !('state_MB' in x))) {
    console.log(`  ${r.what.padEnd(60)} ${r.seconds === undefined ? r.note : `${r.seconds.toFixed(3)} s`}${r.max_rel_err_top128 === undefined ? '' : `  (sigma max rel. error: top-${RANK} ${r.max_rel_err_top128.toExponential(2)}, top-64 ${r.max_rel_err_top64.toExponential(2)})`}`);
  }
  console.log('  (step time and loss curve vs AdamW need full-parameter training: issue 12 item 1)');
}
