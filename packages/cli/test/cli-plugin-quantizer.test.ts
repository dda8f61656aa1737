/**
 * A plugin quantizer's folder is first-class (issue 10.2): the example plugin (examples/plugin-int4-sym)
 * is linked, `peft quantize --type int4-sym` writes a folder, and train, eval, generate, fold and a
 * mergekit merge all read it through the plugin's own read-back (its quant_method in config.json).
 * The reference is independent of peft's loaders: this test decodes the plugin's documented format
 * (two's-complement nibbles, element 2j low, one f32 scale per group) itself and writes the f32 model.
 * Without the plugin, the folder is exit 2 naming its quant_method.
 */
import { generateTinyLlama, openModelFolder, referenceBackend, toF32, writeSafetensors, type NamedRawTensor } from '@peft/core-tensor';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { peft, ROOT, tempDir } from './helpers.js';

const PLUGIN = join(ROOT, 'examples/plugin-int4-sym');
const WORDS = ['cat', 'dog', 'bird', 'fish', 'cow', 'pig', 'hen', 'fox'];
let work: string;
let env: Record<string, string>;
let base: string;
let int4: string;
let twin: string;
let data: string;
let adapter: string;

/** The f32 model int4 stands for, decoded by hand from the plugin's documented layout. */
async function writeDequantizedTwin(from: string, to: string): Promise<void> {
  const f = await openModelFolder(from);
  const out: NamedRawTensor[] = [];
  for (const name of f.tensorNames) {
    if (name.endsWith('.weight_scale')) continue;
    const raw = await f.read(name);
    if (!f.has(`${name}_scale`)) {
      out.push({ name, ...raw });
      continue;
    }
    const scale = toF32(referenceBackend, await f.read(`${name}_scale`));
    const [rows, groups] = f.info(`${name}_scale`).shape;
    const cols = raw.shape[1] * 2;
    const w = new Float32Array(rows * cols);
    for (let i = 0; i < w.length; i++) {
      const nib = (raw.data[i >> 1] >> ((i & 1) * 4)) & 0xf;
      w[i] = (nib >= 8 ? nib - 16 : nib) * scale[Math.floor(i / (cols / groups))];
    }
    out.push({ name, dtype: 'F32', shape: [rows, cols], data: new Uint8Array(w.buffer) });
  }
  mkdirSync(to);
  await writeSafetensors(join(to, 'model.safetensors'), out);
  const { quantization_config: _, ...config } = f.config as Record<string, unknown>;
  writeFileSync(join(to, 'config.json'), JSON.stringify(config));
  for (const aux of f.auxFiles) copyFileSync(join(from, aux), join(to, aux));
  await f.close();
}

const evalLoss = async (model: string, ...extra: string[]) => {
  const r = await peft(['eval', model, '--data', data, '--no-exact-match', '--json', ...extra], env);
  expect(r.exitCode, r.stderr).toBe(0);
  return r.json().loss as number;
};

const tensorOf = async (dir: string, name: string) => {
  const f = await openModelFolder(dir);
  const v = toF32(referenceBackend, await f.read(name));
  await f.close();
  return v;
};

beforeAll(async () => {
  work = tempDir('peft-int4-');
  env = { PEFT_DATA_DIR: join(work, 'data'), PEFT_CONFIG_DIR: join(work, 'config'), PEFT_CACHE_DIR: join(work, 'cache') };
  base = join(work, 'base');
  int4 = join(work, 'int4');
  twin = join(work, 'twin');
  data = join(work, 'upper.jsonl');
  adapter = join(work, 'run', 'adapter');
  await generateTinyLlama(base, { preset: 'tiny', seed: 5, dtype: 'F32' });
  writeFileSync(data, Array.from({ length: 40 }, (_, i) => JSON.stringify({ prompt: `Upper: ${WORDS[i % 8]} =>`, completion: ` ${WORDS[i % 8].toUpperCase()}` })).join('\n') + '\n');
  const link = await peft(['plugins', 'link', '--no-install', PLUGIN], env);
  expect(link.exitCode, link.stderr).toBe(0);
  const q = await peft(['quantize', base, '--out', int4, '--type', 'int4-sym', '--set', 'group_size=32'], env);
  expect(q.exitCode, q.stderr).toBe(0);
  await writeDequantizedTwin(int4, twin);
}, 120_000);

describe('a plugin quantizer\'s folder (int4-sym)', () => {
  it('trains LoRA on it (the base stays packed): loss decreases and an adapter is written', async () => {
    const out = join(work, 'run');
    const r = await peft(['train', int4, '--data', data, '--out', out, '--lr', '1e-2', '--steps', '8', '--batch', '4', '--seq-len', '32',
      '--set', 'r=4', '--json'], env);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ steps: 8, stoppedBy: 'done', adaptedModules: 4 });
    const losses = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((x) => 'loss' in x).map((x) => x.loss);
    expect(losses).toHaveLength(8);
    expect(losses[7]).toBeLessThan(losses[0]);
    expect(existsSync(join(adapter, 'adapter_model.safetensors'))).toBe(true);
  });

  it('evaluates as its dequantized f32 model does, with and without the adapter (and as the fold writes it)', async () => {
    const [packed, dense] = [await evalLoss(int4), await evalLoss(twin)];
    expect(Math.abs(packed - dense)).toBeLessThan(1e-5);
    const fold = join(work, 'fold');
    const r = await peft(['merge', int4, '--adapter', adapter, '--dtype', 'f32', '--out', fold, '--json'], env);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ foldedModules: 4, dequantizedModules: 14, requantizedModules: 0 });
    expect(JSON.parse(readFileSync(join(fold, 'config.json'), 'utf8')).quantization_config).toBeUndefined();
    const [adapted, folded] = [await evalLoss(int4, '--adapter', adapter), await evalLoss(fold)];
    expect(adapted).toBeLessThan(packed);
    expect(Math.abs(adapted - folded)).toBeLessThan(1e-5);
    // A module no adapter touches is written as the plugin's dequantization, exactly.
    const name = 'model.layers.0.mlp.up_proj.weight';
    expect(await tensorOf(fold, name)).toEqual(await tensorOf(twin, name));
  });

  it('generates greedily what its dequantized f32 model generates; with an adapter too', async () => {
    const gen = (model: string, ...extra: string[]) => peft(['generate', model, '--prompt', 'Upper: cat =>', '-n', '8', '--json', ...extra], env);
    const [a, b] = [await gen(int4), await gen(twin)];
    expect(a.exitCode, a.stderr).toBe(0);
    expect(a.json().tokenIds).toHaveLength(8);
    expect(a.json().tokenIds).toEqual(b.json().tokenIds);
    const c = await gen(int4, '--adapter', adapter);
    expect(c.exitCode, c.stderr).toBe(0);
  });

  it('folds with --requantize through the same quantizer and its options from config.json', async () => {
    const out = join(work, 'fold-q');
    const r = await peft(['merge', int4, '--adapter', adapter, '--requantize', '--out', out, '--json'], env);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ foldedModules: 4, requantizedModules: 4 });
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config.quantization_config).toMatchObject({ quant_method: 'int4-sym', group_size: 32 });
    const f = await openModelFolder(out);
    expect(f.info('model.layers.0.self_attn.q_proj.weight_scale').shape).toEqual([64, 64 / 32]);
    await f.close();
    expect(await evalLoss(out)).toBeLessThan(await evalLoss(int4));
  });

  it('is an input of a mergekit linear merge, dequantized on the fly', async () => {
    const out = join(work, 'linear');
    const r = await peft(['merge', '--method', 'linear', '--model', base, '--model', int4, '--weight', '0.5', '--weight', '0.5',
      '--dtype', 'f32', '--out', out, '--json'], env);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json().check.inputs.map((i: { quantization?: string }) => i.quantization)).toEqual([undefined, 'int4-sym']);
    const name = 'model.layers.1.self_attn.o_proj.weight';
    const [m, x, y] = [await tensorOf(out, name), await tensorOf(base, name), await tensorOf(twin, name)];
    let err = 0;
    for (let i = 0; i < m.length; i++) err = Math.max(err, Math.abs(m[i] - (0.5 * x[i] + 0.5 * y[i])));
    expect(err).toBeLessThan(1e-6);
  });
});

describe('a folder whose quant_method no installed plugin reads', () => {
  it('is exit 2 naming it, for every command that loads it, with nothing written', async () => {
    const bare = { PEFT_DATA_DIR: join(work, 'bare-data'), PEFT_CONFIG_DIR: join(work, 'bare-config'), PEFT_CACHE_DIR: join(work, 'bare-cache') };
    const runs = [
      ['eval', int4, '--data', data],
      ['generate', int4, '--prompt', 'hi'],
      ['train', int4, '--data', data, '--out', join(work, 'never-train'), '--steps', '1', '--lr', '1e-2'],
      ['merge', int4, '--adapter', adapter, '--out', join(work, 'never-fold')],
      ['merge', '--method', 'linear', '--model', base, '--model', int4, '--out', join(work, 'never-merge')],
    ];
    for (const args of runs) {
      const r = await peft(args, bare);
      expect(r.exitCode, `${args[0]}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(/quant_method "int4-sym" is not read by any installed quantizer.*install the peft plugin/);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    for (const d of ['never-train', 'never-fold', 'never-merge']) expect(existsSync(join(work, d))).toBe(false);
  });
});
