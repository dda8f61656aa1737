/**
 * Issue 9 item 10: an adapter whose target_modules names nothing must not change the output. On the
 * built binary, eval / generate / merge apply exactly what PEFT would: only modules target_modules
 * (& layers_to_transform) matches get the adapter (tuners_utils.py inject_adapter); tensors of other
 * modules are not applied (set_peft_model_state_dict drops them) and reported as one warning line on
 * stderr and in --json; a target_modules matching no module is exit 2 with PEFT's reason.
 */
import { generateTinyLlama, SafetensorsFile, writePeftAdapter, type NamedRawTensor } from '@peft/core-tensor';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { peft, tempDir } from './helpers.js';

let work: string;
let base: string;
let data: string;
let n = 0;
const fresh = () => join(work, `case${n++}`);

/** PEFT's on-disk names; q_proj is [64, 64], v_proj [32, 64] in the tiny preset. */
const MODULES: [string, number][] = [0, 1].flatMap((l) => [[`model.layers.${l}.self_attn.q_proj`, 64], [`model.layers.${l}.self_attn.v_proj`, 32]] as [string, number][]);
const key = (m: string, part: 'lora_A' | 'lora_B') => `base_model.model.${m}.${part}.weight`;

/** A LoRA adapter (r 2, strong enough to move the loss) holding tensors for `modules`, with `config` over its defaults. */
async function adapter(modules: [string, number][], config: Record<string, unknown>): Promise<string> {
  const dir = fresh();
  const tensors: NamedRawTensor[] = [];
  for (const [m, out] of modules) {
    const k = MODULES.findIndex(([x]) => x === m); // the same values for a module in every adapter
    const A = Float32Array.from({ length: 2 * 64 }, (_, i) => 0.3 * Math.sin(i + k));
    const B = Float32Array.from({ length: out * 2 }, (_, i) => 0.3 * Math.cos(i * 0.7 + k));
    tensors.push({ name: key(m, 'lora_A'), dtype: 'F32', shape: [2, 64], data: new Uint8Array(A.buffer) });
    tensors.push({ name: key(m, 'lora_B'), dtype: 'F32', shape: [out, 2], data: new Uint8Array(B.buffer) });
  }
  await writePeftAdapter(dir, { config: { peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 2, lora_alpha: 4, ...config }, tensors });
  return dir;
}

const evalRun = (args: string[]) => peft(['eval', base, '--data', data, '--no-exact-match', '--json', ...args]);

beforeAll(async () => {
  work = tempDir('peft-targets-');
  base = join(work, 'base');
  await generateTinyLlama(base, { preset: 'tiny', seed: 8 });
  data = join(work, 'rows.jsonl');
  writeFileSync(data, Array.from({ length: 8 }, (_, i) => JSON.stringify({ prompt: `Count ${i}:`, completion: ` ${i + 1}` })).join('\n') + '\n');
});

describe('target_modules that names nothing', () => {
  it('is exit 2 with PEFT\'s reason in eval, generate and merge, not a changed output', async () => {
    const a = await adapter(MODULES, { target_modules: ['nothing'] });
    const reason = /target_modules nothing matched no module .*not found in the base model/;
    for (const r of [await evalRun(['--adapter', a]), await peft(['generate', base, '--prompt', 'x', '-n', '2', '--adapter', a, '--json'])]) {
      expect(r.exitCode).toBe(2);
      expect(r.json().error.message).toMatch(reason);
    }
    const out = fresh();
    const fold = await peft(['merge', base, '--adapter', a, '--out', out]);
    expect(fold.exitCode).toBe(2);
    expect(fold.stderr).toMatch(/target_modules \["nothing"\] matches no module of the base model.*not found in the base model/);
    expect(existsSync(out)).toBe(false);
  });

  it('names modules the file has nothing for: the output stays the base\'s, with both warnings', async () => {
    const a = await adapter(MODULES, { target_modules: ['k_proj'] });
    const r = await evalRun(['--adapter', a]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json().loss).toBe((await evalRun([])).json().loss);
    expect(r.json().warnings).toEqual([
      expect.stringMatching(/8 tensor\(s\) are for modules its target_modules does not match and are not applied/),
      expect.stringMatching(/matches 2 module\(s\) the file holds no tensors for; they stay unchanged .*model\.layers\.0\.self_attn\.k_proj/),
    ]);
    expect(r.stderr.trim().split('\n')).toHaveLength(2);
    const out = fresh();
    const fold = await peft(['merge', base, '--adapter', a, '--out', out, '--json']);
    expect(fold.exitCode, fold.stderr).toBe(0);
    expect(fold.json()).toMatchObject({ foldedModules: 0, warnings: [expect.stringMatching(/8 tensor/), expect.stringMatching(/2 module/)] });
    expect(readFileSync(join(out, 'model.safetensors'))).toEqual(readFileSync(join(base, 'model.safetensors')));
  });
});

describe('tensors for modules target_modules does not match', () => {
  const onlyQ = MODULES.filter(([m]) => m.endsWith('q_proj'));

  it('are not applied in eval: one warning line on stderr and in --json; the loss is the q_proj-only adapter\'s', async () => {
    const [both, q] = [await adapter(MODULES, { target_modules: ['q_proj'] }), await adapter(onlyQ, { target_modules: ['q_proj'] })];
    const r = await evalRun(['--adapter', both]);
    expect(r.exitCode, r.stderr).toBe(0);
    const warning = /adapter .*: 4 tensor\(s\) are for modules its target_modules does not match and are not applied, as PEFT does not load them: base_model\.model\.model\.layers\.0\.self_attn\.v_proj\.lora_A\.weight/;
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(warning);
    expect(r.json().warnings).toHaveLength(1);
    expect(r.json().warnings[0]).toMatch(warning);
    const plain = await evalRun(['--adapter', q]);
    expect(plain.exitCode).toBe(0);
    expect(plain.stderr).toBe('');
    expect(plain.json().warnings).toEqual([]);
    expect(r.json().loss).toBe(plain.json().loss);
    expect(r.json().loss).not.toBe((await evalRun([])).json().loss); // the q_proj tensors do apply
  });

  it('are not folded: the folded model equals the q_proj-only adapter\'s, with the warning in --json', async () => {
    const [both, q] = [await adapter(MODULES, { target_modules: ['q_proj'] }), await adapter(onlyQ, { target_modules: ['q_proj'] })];
    const [outBoth, outQ] = [fresh(), fresh()];
    const r = await peft(['merge', base, '--adapter', both, '--out', outBoth, '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ foldedModules: 2, warnings: [expect.stringMatching(/4 tensor\(s\) are for modules its target_modules does not match/)] });
    expect(r.stderr).toMatch(/^Warning: adapter .*v_proj/);
    expect((await peft(['merge', base, '--adapter', q, '--out', outQ])).exitCode).toBe(0);
    expect(readFileSync(join(outBoth, 'model.safetensors'))).toEqual(readFileSync(join(outQ, 'model.safetensors')));
  });

  it('layers_to_transform keeps layer 0 only, in eval and in an adapter merge', async () => {
    const a = await adapter(MODULES, { target_modules: ['q_proj', 'v_proj'], layers_to_transform: [0], layers_pattern: 'layers' });
    const layer0 = await adapter(MODULES.filter(([m]) => m.includes('layers.0.')), { target_modules: ['q_proj', 'v_proj'] });
    const r = await evalRun(['--adapter', a]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json().warnings[0]).toMatch(/4 tensor\(s\) .*layers\.1\.self_attn\.q_proj\.lora_A\.weight/);
    expect(r.json().loss).toBe((await evalRun(['--adapter', layer0])).json().loss);
    const out = fresh();
    const cat = await peft(['merge', '--adapter', a, '--adapter', layer0, '--method', 'cat', '--out', out, '--json']);
    expect(cat.exitCode, cat.stderr).toBe(0);
    expect(cat.json()).toMatchObject({ modules: 2, warnings: [expect.stringMatching(/layers\.1\./)] });
    const f = await SafetensorsFile.open(join(out, 'adapter_model.safetensors'));
    expect(f.tensors.map((t) => t.name).filter((t) => t.includes('layers.1.'))).toEqual([]);
    await f.close();
  });
});
