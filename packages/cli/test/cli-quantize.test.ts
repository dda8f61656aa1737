import {
  dequantize4bitWeight, getBackend, openModelFolder, quantize4bitWeight, quantizeInt8Weight, referenceBackend, toF32, generateTinyLlama,
  type RawTensor,
} from '@peft/core-tensor';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { peft, tempDir } from './helpers.js';

let work: string;
let model: string;

beforeAll(async () => {
  work = tempDir();
  model = join(work, 'tiny');
  await generateTinyLlama(model, { preset: 'tiny', seed: 7, dtype: 'BF16' });
});

describe('peft methods', () => {
  it('lists the built-in quantizers with their options', async () => {
    const r = await peft(['methods', '--json']);
    expect(r.exitCode).toBe(0);
    const names = r.json().quantizer.map((q: { name: string }) => q.name);
    expect(names).toEqual(expect.arrayContaining(['fp4', 'int8', 'nf4']));
    const nf4 = r.json().quantizer.find((q: { name: string }) => q.name === 'nf4');
    expect(nf4.options.blocksize).toMatchObject({ type: 'integer', default: 64, min: 32, max: 4096 });
    const text = await peft(['methods']);
    expect(text.stdout).toContain('--set blocksize=<integer 32..4096, power of two> (default 64)');
  });
});

describe('peft quantize', () => {
  it('writes the bitsandbytes NF4 layout that equals the quantizer applied tensor by tensor', async () => {
    const out = join(work, 'nf4');
    const r = await peft(['quantize', model, '--out', out, '--json']);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    const s = r.json();
    expect(s).toMatchObject({ method: 'nf4', quantizedTensors: 2 * 7, options: { blocksize: 64, double_quant: true } });

    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config.quantization_config).toMatchObject({
      quant_method: 'bitsandbytes', load_in_4bit: true, bnb_4bit_quant_type: 'nf4', bnb_4bit_use_double_quant: true,
      bnb_4bit_compute_dtype: 'bfloat16',
    });
    expect(existsSync(join(out, 'tokenizer.json'))).toBe(true);

    const src = await openModelFolder(model);
    const dst = await openModelFolder(out);
    const p = 'model.layers.1.mlp.down_proj';
    const w = toF32(referenceBackend, await src.read(`${p}.weight`));
    const expected = quantize4bitWeight(referenceBackend, p, w, src.info(`${p}.weight`).shape, {
      type: 'nf4', blocksize: 64, doubleQuant: true, computeDtype: 'bfloat16',
    });
    for (const t of expected) {
      const got = await dst.read(t.name);
      expect(got.dtype, t.name).toBe(t.dtype);
      expect(got.shape, t.name).toEqual(t.shape);
      expect(Buffer.from(got.data).equals(Buffer.from(t.data)), t.name).toBe(true);
    }
    // bits/param counts everything stored for the quantized modules (codes, absmax, maps, quant state).
    const stored = dst.tensorNames.filter((n) => /_proj\.weight/.test(n)).reduce((a, n) => a + dst.info(n).byteLength, 0);
    expect(s.bitsPerParam).toBeCloseTo((8 * stored) / s.quantizedParams, 9);
    // The reported errors are those of the written weights: |W - dequantize(file)| over every quantized element.
    let sum = 0, max = 0, count = 0;
    for (const name of src.tensorNames.filter((n) => /_proj\.weight$/.test(n))) {
      const prefix = name.slice(0, -'.weight'.length);
      const parts = new Map<string, RawTensor>();
      for (const n of dst.tensorNames.filter((t) => t.startsWith(`${name}`))) parts.set(n, await dst.read(n));
      const back = dequantize4bitWeight(referenceBackend, prefix, (n) => parts.get(n)).data;
      const w = toF32(referenceBackend, await src.read(name));
      for (let i = 0; i < w.length; i++) {
        const e = Math.abs(w[i] - back[i]);
        sum += e;
        max = Math.max(max, e);
      }
      count += w.length;
    }
    expect(count).toBe(s.quantizedParams);
    expect(Math.abs(s.meanAbsError - sum / count)).toBeLessThan(1e-6 * (sum / count));
    expect(s.maxAbsError).toBe(max);
    // Everything that is not a target projection is passed through byte for byte.
    for (const name of ['model.embed_tokens.weight', 'model.norm.weight', 'model.layers.0.input_layernorm.weight']) {
      expect(Buffer.from((await dst.read(name)).data).equals(Buffer.from((await src.read(name)).data))).toBe(true);
    }
    await src.close();
    await dst.close();
  });

  it('inspect reports the quantization and the same parameter count as the source', async () => {
    const out = join(work, 'nf4');
    const before = (await peft(['inspect', model, '--json'])).json();
    const after = await peft(['inspect', out, '--json']);
    expect(after.exitCode).toBe(0);
    expect(after.json().parameters).toBe(before.parameters);
    expect(after.json().quantization).toMatchObject({ method: 'bitsandbytes', bits: 4, type: 'nf4', doubleQuant: true });
    expect(before.quantization ?? null).toBeNull();
    const text = await peft(['inspect', out]);
    expect(text.stdout).toMatch(/quantization\s+.*nf4/);
  });

  it('fp4 without double quant, blocksize 128, f16 compute', async () => {
    const out = join(work, 'fp4');
    const r = await peft(['quantize', model, '-o', out, '-t', 'fp4', '--blocksize', '128', '--no-double-quant', '--compute-dtype', 'f16', '--json']);
    expect(r.exitCode).toBe(0);
    const dst = await openModelFolder(out);
    const p = 'model.layers.0.self_attn.q_proj.weight';
    expect(dst.tensorNames).toContain(`${p}.quant_state.bitsandbytes__fp4`);
    expect(dst.tensorNames).not.toContain(`${p}.nested_absmax`);
    expect(dst.info(`${p}.absmax`).dtype).toBe('F32');
    const state = JSON.parse(Buffer.from((await dst.read(`${p}.quant_state.bitsandbytes__fp4`)).data).toString());
    expect(state).toMatchObject({ quant_type: 'fp4', blocksize: 128, dtype: 'float16' });
    await dst.close();
  });

  it('int8 with a skipped layer; skipped modules are named in the config', async () => {
    const out = join(work, 'int8');
    const r = await peft(['quantize', model, '--out', out, '--type', 'int8', '--skip', 'model.layers.0.*', '--json']);
    expect(r.exitCode).toBe(0);
    expect(r.json().quantizedTensors).toBe(7);
    const src = await openModelFolder(model);
    const dst = await openModelFolder(out);
    const p = 'model.layers.1.self_attn.v_proj';
    const w = toF32(getBackend('reference'), await src.read(`${p}.weight`));
    const expected = quantizeInt8Weight(referenceBackend, p, w, src.info(`${p}.weight`).shape);
    for (const t of expected) expect(Buffer.from((await dst.read(t.name)).data).equals(Buffer.from(t.data)), t.name).toBe(true);
    expect(dst.info('model.layers.0.self_attn.v_proj.weight').dtype).toBe('BF16');
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).quantization_config;
    expect(config).toMatchObject({ load_in_8bit: true, llm_int8_threshold: 6 });
    expect(config.llm_int8_skip_modules).toEqual(expect.arrayContaining(['lm_head', 'model.layers.0.self_attn.q_proj']));
    await src.close();
    await dst.close();
  });

  it('native and reference backends write identical files', async () => {
    const a = join(work, 'nat');
    const b = join(work, 'ref');
    expect((await peft(['quantize', model, '--out', a, '--backend', 'native'])).exitCode).toBe(0);
    expect((await peft(['quantize', model, '--out', b, '--backend', 'reference'])).exitCode).toBe(0);
    expect(readFileSync(join(a, 'model.safetensors')).equals(readFileSync(join(b, 'model.safetensors')))).toBe(true);
  });

  it('prints a human summary with sizes, bits per parameter and errors', async () => {
    const r = await peft(['quantize', model, '--out', join(work, 'human')]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/bits per parameter\s+\d+\.\d{3}\n/);
    expect(r.stdout).toMatch(/dequant error\s+mean/);
    expect(r.stdout).toMatch(/size\s+.* -> /);
  });
});

describe('peft inspect on a PEFT adapter folder', () => {
  it('reports the adapter type, rank, targets and parameters', async () => {
    const { writePeftAdapter } = await import('@peft/core-tensor');
    const dir = join(work, 'adapter');
    const A = new Float32Array(4 * 64).fill(0.5);
    const B = new Float32Array(64 * 4);
    const tensors = ['q_proj', 'v_proj'].flatMap((m) => [
      { name: `base_model.model.model.layers.0.self_attn.${m}.lora_A.weight`, dtype: 'F32' as const, shape: [4, 64], data: new Uint8Array(A.buffer.slice(0)) },
      { name: `base_model.model.model.layers.0.self_attn.${m}.lora_B.weight`, dtype: 'F32' as const, shape: [64, 4], data: new Uint8Array(B.buffer.slice(0)) },
    ]);
    await writePeftAdapter(dir, { config: { peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 4, lora_alpha: 8 }, tensors });
    const r = await peft(['inspect', dir, '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({
      kind: 'adapter', tensors: 4, parameters: 2 * (4 * 64 + 64 * 4), dtypes: { F32: { tensors: 4 } },
      adapter: { peftType: 'LORA', r: 4, loraAlpha: 8, targetModules: ['q_proj', 'v_proj'] },
    });
    const text = await peft(['inspect', dir]);
    expect(text.stdout).toMatch(/adapter\s+peftType=LORA taskType=CAUSAL_LM r=4 loraAlpha=8 targetModules=q_proj,v_proj/);
  });
});
