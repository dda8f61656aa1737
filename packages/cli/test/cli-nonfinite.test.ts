/**
 * Issue 9 item 6, silent corruption, reproduced on the built binary: non-finite inputs and outputs
 * are exit 2 naming the tensor, nothing written, in every command. Folding an adapter with a NaN
 * lora_B or lora_alpha 1e308, cat of an all-NaN adapter, NaN / Inf base weights in eval, generate,
 * train and quantize (f32 weights, a 4-bit absmax), a resumed checkpoint holding NaN, a mergekit
 * merge with a NaN input or an overflowing result, compress of a NaN adapter; and one DoRA rule:
 * use_dora without magnitude vectors is refused, naming the missing tensor, by fold and generate alike.
 */
import { generateTinyLlama, SafetensorsFile, writePeftAdapter, writeSafetensors, type NamedRawTensor } from '@peft/core-tensor';
import { cpSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { peft, tempDir, type Run } from './helpers.js';

let work: string;
let base: string;
let data: string;
let n = 0;
const fresh = () => join(work, `case${n++}`);

const Q0 = 'model.layers.0.self_attn.q_proj';
const Q1 = 'model.layers.1.self_attn.q_proj';
const key = (module: string, part: string) => `base_model.model.${module}.${part}${part === 'lora_magnitude_vector' ? '' : '.weight'}`;
const f32 = (name: string, shape: number[], v: (i: number) => number): NamedRawTensor => {
  const a = Float32Array.from({ length: shape.reduce((x, y) => x * y, 1) }, (_, i) => v(i));
  return { name, dtype: 'F32', shape, data: new Uint8Array(a.buffer) };
};

/** A LoRA adapter on both q_proj [64, 64] (r 2); `poison` edits its tensors, `config` its adapter_config.json. */
async function adapter(opts: { poison?: (t: NamedRawTensor[]) => void; config?: Record<string, unknown>; magnitudes?: boolean } = {}): Promise<string> {
  const dir = fresh();
  const tensors: NamedRawTensor[] = [];
  for (const m of [Q0, Q1]) {
    tensors.push(f32(key(m, 'lora_A'), [2, 64], (i) => 0.05 * Math.sin(i + 1)), f32(key(m, 'lora_B'), [64, 2], (i) => 0.05 * Math.cos(i)));
    if (opts.magnitudes) tensors.push(f32(key(m, 'lora_magnitude_vector'), [64], () => 1));
  }
  opts.poison?.(tensors);
  const config = { peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 2, lora_alpha: 4, target_modules: ['q_proj'], ...opts.config };
  await writePeftAdapter(dir, { config, tensors });
  return dir;
}

/** Sets element `at` of F32 tensor `name` in a safetensors file to `value`. */
async function poisonFile(file: string, name: string, value: number, at = 5): Promise<void> {
  const f = await SafetensorsFile.open(file);
  const ts: NamedRawTensor[] = [];
  for (const t of f.tensors) ts.push({ name: t.name, dtype: t.dtype, shape: [...t.shape], data: (await f.read(t.name)).slice() });
  const metadata = { ...f.metadata };
  await f.close();
  const t = ts.find((x) => x.name === name)!;
  new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4)[at] = value;
  await writeSafetensors(file, ts, metadata);
}

/** A copy of the base whose tensor `name` holds `value`. */
async function poisonedBase(name: string, value: number): Promise<string> {
  const dir = fresh();
  cpSync(base, dir, { recursive: true });
  await poisonFile(join(dir, 'model.safetensors'), name, value);
  return dir;
}

/** Exit 2, one line on stderr matching every pattern, and `out` (when given) never written. */
function refused(r: Run, patterns: RegExp[], out?: string): void {
  expect(r.exitCode, r.stdout + r.stderr).toBe(2);
  const line = r.stderr.trim();
  expect(line.split('\n')).toHaveLength(1);
  for (const p of patterns) expect(line).toMatch(p);
  if (out) expect(existsSync(out)).toBe(false);
}

beforeAll(async () => {
  work = tempDir('peft-nonfinite-');
  base = join(work, 'base');
  await generateTinyLlama(base, { preset: 'tiny', seed: 5 });
  data = join(work, 'rows.jsonl');
  writeFileSync(data, Array.from({ length: 8 }, (_, i) => JSON.stringify({ prompt: `Count ${i}:`, completion: ` ${i + 1}` })).join('\n') + '\n');
});

describe('adapters: fold, cat, compress', () => {
  it('folding an adapter with a NaN lora_B is exit 2 naming the tensor, no model written', async () => {
    const a = await adapter({ poison: (ts) => { new Float32Array(ts[1].data.buffer)[7] = NaN; } });
    const out = fresh();
    refused(await peft(['merge', base, '--adapter', a, '--out', out]), [/q_proj\.lora_B\.weight holds NaN at element 7/], out);
    refused(await peft(['generate', base, '--prompt', 'x', '-n', '2', '--adapter', a]), [/q_proj\.lora_B\.weight holds NaN at element 7/]);
  });

  it('folding with lora_alpha 1e308 is exit 2 naming the scaling, not a model of inf', async () => {
    const a = await adapter({ config: { lora_alpha: 1e308 } });
    const out = fresh();
    refused(await peft(['merge', base, '--adapter', a, '--out', out]), [/lora_alpha 1e\+308 gives the scaling 5e\+307, which is not a finite float32/], out);
  });

  it('cat of an all-NaN adapter is exit 2, not "relative reconstruction error 0"', async () => {
    const nan = await adapter({ poison: (ts) => ts.forEach((t) => new Float32Array(t.data.buffer).fill(NaN)) });
    const out = fresh();
    const r = await peft(['merge', '--adapter', nan, '--adapter', await adapter(), '--method', 'cat', '--out', out]);
    refused(r, [/lora_A\.weight holds NaN at element 0/], out);
    expect(r.stdout).not.toMatch(/reconstruction error/);
  });

  it('compressing an adapter holding inf is exit 2 naming the tensor', async () => {
    const a = await adapter({ poison: (ts) => { new Float32Array(ts[2].data.buffer)[3] = -Infinity; } });
    const out = fresh();
    refused(await peft(['compress', a, '--out', out]), [new RegExp(`${Q1.replace(/\./g, '\\.')}\\.lora_A\\.weight holds -inf at element 3`)], out);
  });

  it('use_dora without magnitude vectors: fold and generate refuse it alike, naming the missing tensor', async () => {
    const a = await adapter({ config: { use_dora: true } });
    const missing = /use_dora is true but lora_magnitude_vector is missing: no tensor base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_magnitude_vector/;
    const out = fresh();
    refused(await peft(['merge', base, '--adapter', a, '--out', out]), [missing], out);
    refused(await peft(['generate', base, '--prompt', 'x', '-n', '2', '--adapter', a]), [missing]);
    refused(await peft(['eval', base, '--data', data, '--no-exact-match', '--adapter', a]), [missing]);
    // with its magnitudes the same adapter folds and generates
    const dora = await adapter({ config: { use_dora: true }, magnitudes: true });
    expect((await peft(['merge', base, '--adapter', dora, '--out', fresh()])).exitCode).toBe(0);
    expect((await peft(['generate', base, '--prompt', 'x', '-n', '2', '--adapter', dora])).exitCode).toBe(0);
  });
});

describe('base weights', () => {
  it('a NaN weight is exit 2 naming it in eval, generate and train (not loss NaN, tokens 0)', async () => {
    const bad = await poisonedBase(`${Q0}.weight`, NaN);
    const named = new RegExp(`model\\.safetensors: tensor ${Q0.replace(/\./g, '\\.')}\\.weight holds NaN at element 5`);
    refused(await peft(['eval', bad, '--data', data, '--no-exact-match']), [named]);
    refused(await peft(['generate', bad, '--prompt', 'x', '-n', '3']), [named]);
    const out = fresh();
    refused(await peft(['train', bad, '--data', data, '--out', out, '--steps', '1', '--batch', '2', '--seq-len', '16']), [named]);
  });

  it('an inf norm weight in a 4-bit model, and an inf absmax, are exit 2 naming the tensor', async () => {
    const nf4 = fresh();
    expect((await peft(['quantize', base, '--out', nf4, '--set', 'double_quant=false'])).exitCode).toBe(0);
    const [absmax, norm] = [fresh(), fresh()];
    cpSync(nf4, absmax, { recursive: true });
    cpSync(nf4, norm, { recursive: true });
    await poisonFile(join(absmax, 'model.safetensors'), `${Q1}.weight.absmax`, Infinity, 0);
    refused(await peft(['eval', absmax, '--data', data, '--no-exact-match']), [/the absmax of 4-bit tensor model\.layers\.1\.self_attn\.q_proj\.weight holds inf at element 0/]);
    await poisonFile(join(norm, 'model.safetensors'), 'model.norm.weight', -Infinity, 1);
    refused(await peft(['generate', norm, '--prompt', 'x', '-n', '2']), [/tensor model\.norm\.weight holds -inf at element 1/]);
  });

  it('quantize of an inf weight is exit 2 naming the tensor (no quant_state JSON error)', async () => {
    const bad = await poisonedBase(`${Q1}.weight`, Infinity);
    const out = fresh();
    const r = await peft(['quantize', bad, '--out', out]);
    refused(r, [/tensor model\.layers\.1\.self_attn\.q_proj\.weight holds inf at element 5/], out);
    expect(r.stderr).not.toMatch(/quant_state|JSON/);
  });

  it('a resumed checkpoint holding NaN is exit 2 naming the trained tensor', async () => {
    const out = fresh();
    const args = ['train', base, '--data', data, '--out', out, '--steps', '2', '--save-every', '2', '--batch', '2', '--seq-len', '16', '--set', 'r=2'];
    expect((await peft(args)).exitCode).toBe(0);
    const params = join(out, 'checkpoints', 'step-2', 'params.safetensors');
    const f = await SafetensorsFile.open(params);
    const name = f.tensors[0].name;
    await f.close();
    await poisonFile(params, name, NaN, 0);
    refused(await peft([...args, '--resume']), [new RegExp(`step-2/params\\.safetensors: trained tensor ${name.replace(/\./g, '\\.')} holds NaN`)]);
  });
});

describe('mergekit merges', () => {
  it('a NaN in one input model is exit 2 naming the model and the tensor', async () => {
    const bad = await poisonedBase('model.layers.0.mlp.up_proj.weight', NaN);
    const out = fresh();
    const r = await peft(['merge', '--method', 'linear', '--model', base, '--model', bad, '--weight', '1', '--out', out]);
    refused(r, [new RegExp(`${bad}: tensor model\\.layers\\.0\\.mlp\\.up_proj\\.weight holds NaN at element 5`)], out);
  });

  it('a merge whose result overflows is exit 2 naming the merged tensor', async () => {
    const [big1, big2] = [await poisonedBase('model.norm.weight', 3e38), await poisonedBase('model.norm.weight', 3e38)];
    const out = fresh();
    const r = await peft(['merge', '--method', 'linear', '--no-normalize', '--model', big1, '--model', big2, '--weight', '1', '--out', out]);
    refused(r, [/the merged tensor model\.norm\.weight holds inf at element 5/], out);
  });
});
