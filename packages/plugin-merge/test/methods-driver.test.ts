/**
 * The registered methods through the core's streaming driver, on generated tiny Llamas (seeds 1, 2, 3;
 * model 2 also as a 4-bit folder): a mergekit recipe with a layer gradient and a filter list gives, for
 * every tensor, exactly what the method computes on the inputs read back independently.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createRegistry, evaluateSetting, generateTinyLlama, layerPosition, openModelFolder, parseMergeRecipe, quantizeModel,
  referenceBackend, registerBuiltins, resolveOptions, runMerge, tensorSeed, toF32, type RawTensor, type Registry,
} from '@peft/core-tensor';
import { register } from '../src/index.js';

let root: string;
let registry: Registry;
const dir = (n: string) => join(root, n);
const backend = referenceBackend;

/** Every tensor of a folder as f32, 4-bit weights dequantized with the nf4 entry. */
async function readAll(path: string): Promise<Map<string, Float32Array>> {
  const f = await openModelFolder(path);
  const raw = new Map<string, RawTensor>();
  for (const n of f.tensorNames) raw.set(n, await f.read(n));
  await f.close();
  const out = new Map<string, Float32Array>();
  for (const [n, t] of raw) {
    const state = /^(.*)\.weight\.quant_state\.bitsandbytes__nf4$/.exec(n);
    if (state) out.set(`${state[1]}.weight`, registry.get('quantizer', 'nf4').dequantize(state[1], (k) => raw.get(k), { backend }).data);
    else if (['F32', 'BF16', 'F16'].includes(t.dtype) && !out.has(n)) out.set(n, Float32Array.from(toF32(backend, t)));
  }
  return out;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'peft-merge-methods-'));
  for (const seed of [1, 2, 3]) await generateTinyLlama(dir(`m${seed}`), { preset: 'tiny', seed });
  registry = createRegistry();
  registerBuiltins(registry);
  register(registry);
  const q = registry.get('quantizer', 'nf4');
  await quantizeModel({ modelDir: dir('m2'), outDir: dir('m2-nf4'), quantizer: q, options: resolveOptions('nf4', q.options, {}), backend });
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('merge methods through runMerge', () => {
  it.each(['ties', 'dare_ties', 'della'])('%s over a full base, a 4-bit and a full model equals the method on the inputs', async (method) => {
    const recipe = `merge_method: ${method}
base_model: ${dir('m1')}
models:
  - model: ${dir('m2-nf4')}
    parameters: {weight: 0.6, density: [0.3, 0.7]}
  - model: ${dir('m3')}
    parameters:
      weight: [{filter: self_attn, value: 0.2}, {value: 0.5}]
parameters: {density: 0.5}
`;
    const out = dir(`out-${method}`);
    const report = await runMerge(parseMergeRecipe(recipe, 'r.yml'), registry, { out, seed: 3, backend });
    const [base, m2, m3, merged] = await Promise.all([dir('m1'), dir('m2-nf4'), dir('m3'), out].map(readAll));
    const def = registry.get('merger', method);
    expect([...merged.keys()]).toEqual([...base.keys()]);
    const shapes = await openModelFolder(dir('m1'));
    for (const [name, got] of merged) {
      const t = layerPosition(name, 2);
      const perModel = [
        resolveOptions(method, def.perModelOptions, { weight: 0.6, density: evaluateSetting([0.3, 0.7], name, t) }),
        resolveOptions(method, def.perModelOptions, { weight: name.includes('self_attn') ? 0.2 : 0.5, density: 0.5 }),
      ];
      const want = def.mergeTensor({
        name, shape: shapes.info(name).shape, global: resolveOptions(method, def.options, {}), perModel, base: base.get(name)!,
        models: [Float32Array.from(m2.get(name)!), Float32Array.from(m3.get(name)!)], out: new Float32Array(got.length), seed: tensorSeed(3, name),
      });
      expect(got).toEqual(want);
    }
    await shapes.close();
    expect(report.tensors).toBe(21);
  });
});
