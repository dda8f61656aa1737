/**
 * The third-party contract: the example plugin under examples/ is linked with
 * `peft plugins link`, then found by `peft methods` and used by `peft quantize --type`.
 */
import { generateTinyLlama, openModelFolder, referenceBackend, toF32 } from '@peft/core-tensor';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { peft, ROOT, tempDir } from './helpers.js';

const PLUGIN = join(ROOT, 'examples/plugin-int4-sym');
let env: Record<string, string>;
let work: string;

beforeAll(async () => {
  work = tempDir();
  // A private oclif data/config/cache dir: linking never touches the user's plugins.
  env = { PEFT_DATA_DIR: join(work, 'data'), PEFT_CONFIG_DIR: join(work, 'config'), PEFT_CACHE_DIR: join(work, 'cache') };
  await generateTinyLlama(join(work, 'tiny'), { preset: 'tiny', seed: 11, dtype: 'F32' });
});

describe('third-party plugin', () => {
  it('is absent before linking', async () => {
    const r = await peft(['methods', '--kind', 'quantizer', '--json'], env);
    expect(r.json().quantizer.map((q: { name: string }) => q.name)).not.toContain('int4-sym');
    const q = await peft(['quantize', join(work, 'tiny'), '--out', join(work, 'x'), '--type', 'int4-sym'], env);
    expect(q.exitCode).toBe(2);
  });

  it('links, registers through peft:register, quantizes, and unlinks', async () => {
    const link = await peft(['plugins', 'link', '--no-install', PLUGIN], env);
    expect(link.exitCode, link.stderr).toBe(0);

    const methods = await peft(['methods', '--kind', 'quantizer', '--json'], env);
    const entry = methods.json().quantizer.find((q: { name: string }) => q.name === 'int4-sym');
    expect(entry).toMatchObject({ options: { group_size: { type: 'integer', default: 64 } } });

    const out = join(work, 'int4');
    const q = await peft(['quantize', join(work, 'tiny'), '--out', out, '--type', 'int4-sym', '--set', 'group_size=32', '--json'], env);
    expect(q.exitCode, q.stderr).toBe(0);
    expect(q.json()).toMatchObject({ method: 'int4-sym', quantizedTensors: 14, options: { group_size: 32 } });
    // 4 bits + one f32 scale per 32 weights.
    expect(q.json().bitsPerParam).toBeCloseTo(4 + 32 / 32, 6);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config.quantization_config).toMatchObject({ quant_method: 'int4-sym', group_size: 32 });

    // The stored values follow the plugin's documented format: check one group by hand.
    const src = await openModelFolder(join(work, 'tiny'));
    const dst = await openModelFolder(out);
    const p = 'model.layers.0.mlp.up_proj';
    const w = toF32(referenceBackend, await src.read(`${p}.weight`));
    const scale = new Float32Array((await dst.read(`${p}.weight_scale`)).data.slice().buffer);
    const packed = (await dst.read(`${p}.weight`)).data;
    const absmax = Math.max(...Array.from(w.subarray(0, 32), Math.abs));
    expect(scale[0]).toBe(Math.fround(absmax / 7));
    for (let i = 0; i < 32; i++) {
      const nib = (packed[i >> 1] >> ((i & 1) * 4)) & 0xf;
      expect((nib << 28) >> 28).toBe(Math.max(-7, Math.min(7, Math.round(w[i] / scale[0]))));
    }
    await src.close();
    await dst.close();

    const bad = await peft(['quantize', join(work, 'tiny'), '--out', join(work, 'y'), '--type', 'int4-sym', '--set', 'group_size=48'], env);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/group_size/);

    const unlink = await peft(['plugins', 'unlink', PLUGIN], env);
    expect(unlink.exitCode, unlink.stderr).toBe(0);
    const after = await peft(['methods', '--kind', 'quantizer', '--json'], env);
    expect(after.json().quantizer.map((x: { name: string }) => x.name)).not.toContain('int4-sym');
  });

  it('peft --help lists the commands', async () => {
    const r = await peft(['--help'], env);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/quantize/);
    expect(r.stdout).toMatch(/inspect/);
    expect(r.stdout).toMatch(/methods/);
    expect(r.stdout).toMatch(/plugins/);
  });
});
