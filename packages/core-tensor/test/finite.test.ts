/**
 * Non-finite values refused by name (src/finite.ts): the bit scans find the first NaN / ±Inf in every
 * float dtype (f64, f32, f16, bf16 bits, unaligned bytes too) and nothing in integer dtypes; the model
 * loader (io/var-builder.ts) checks each storage kind as it loads: f32 / f16 floats, frozen bf16 bits,
 * int8 row scales (4-bit absmax and f32 weights are covered on the CLI, cli-nonfinite.test.ts).
 */
import { cpSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkFinite, checkFiniteRaw, createRegistry, firstNonFinite, firstNonFiniteRaw, generateTinyLlama, getBackend, Llama, PeftError,
  quantizeModel, registerBuiltins, resolveOptions, SafetensorsFile, writeSafetensors, type NamedRawTensor,
} from '../src/index.js';

const b = getBackend();
const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

describe('scans', () => {
  it('find the first NaN / inf in f64, f32, f16 and bf16 data', () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const x = Float32Array.from({ length: 1000 }, (_, i) => (i === 613 ? bad : Math.sin(i) * 1e30));
      expect(firstNonFinite(x)).toBe(613);
      expect(firstNonFinite(Float64Array.from(x))).toBe(613);
      expect(firstNonFiniteRaw({ dtype: 'F32', data: bytes(x) })).toBe(613);
      expect(firstNonFiniteRaw({ dtype: 'F64', data: bytes(Float64Array.from(x)) })).toBe(613);
      expect(firstNonFiniteRaw({ dtype: 'BF16', data: bytes(b.f32ToBf16(x)) })).toBe(613);
      const small = x.map((v, i) => (i === 613 ? v : v * 1e-30));
      expect(firstNonFiniteRaw({ dtype: 'F16', data: bytes(b.f32ToF16(small)) })).toBe(613);
    }
    const finite = Float32Array.from({ length: 100 }, (_, i) => (i - 50) * 3.4e36);
    expect(firstNonFinite(finite)).toBe(-1);
    expect(firstNonFiniteRaw({ dtype: 'F32', data: bytes(finite).slice() })).toBe(-1);
    expect(firstNonFiniteRaw({ dtype: 'U8', data: new Uint8Array(64).fill(255) })).toBe(-1);
    expect(firstNonFiniteRaw({ dtype: 'I32', data: new Uint8Array(64).fill(255) })).toBe(-1);
  });

  it('read unaligned bytes, and refuse by name with the value, the element and the file (exit 2)', () => {
    const x = new Float32Array([1, 2, NaN]);
    const odd = new Uint8Array(13);
    odd.set(bytes(x), 1);
    expect(firstNonFiniteRaw({ dtype: 'F32', data: odd.subarray(1) })).toBe(2);
    const e = (() => { try { checkFiniteRaw({ dtype: 'F32', data: odd.subarray(1) }, { what: 'tensor w', where: 'm.safetensors' }); } catch (x) { return x as PeftError; } })();
    expect([e?.code, e?.exitCode, e?.message]).toEqual(['E_FORMAT', 2, 'm.safetensors: tensor w holds NaN at element 2: non-finite values are refused']);
    const h = (() => { try { checkFinite(new Float32Array([0, -Infinity]), { what: 'the sum', code: 'E_INPUT', hint: 'weights too large' }); } catch (x) { return x as PeftError; } })();
    expect([h?.code, h?.message]).toEqual(['E_INPUT', 'the sum holds -inf at element 1: non-finite values are refused (weights too large)']);
  });
});

describe('the model loader refuses each storage kind by name', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'peft-finite-'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  /** Rewrites tensor `name` of `dir`'s model.safetensors through `edit` (its raw bytes). */
  async function poison(dir: string, name: string, edit: (data: Uint8Array) => void): Promise<void> {
    const file = join(dir, 'model.safetensors');
    const f = await SafetensorsFile.open(file);
    const ts: NamedRawTensor[] = [];
    for (const t of f.tensors) ts.push({ name: t.name, dtype: t.dtype, shape: [...t.shape], data: (await f.read(t.name)).slice() });
    const meta = { ...f.metadata };
    await f.close();
    edit(ts.find((t) => t.name === name)!.data);
    await writeSafetensors(file, ts, meta);
  }
  const loadError = (dir: string) => Llama.fromFolder(dir).then((m) => { m.dispose(); return undefined; }, (e: unknown) => e as PeftError);

  it('bf16 weights (kept frozen as bits) and f16 norms', async () => {
    const bf = join(root, 'bf16');
    await generateTinyLlama(bf, { preset: 'tiny', seed: 2, dtype: 'BF16' });
    const copy = join(root, 'bf16-bad');
    cpSync(bf, copy, { recursive: true });
    await poison(copy, 'model.layers.1.mlp.down_proj.weight', (d) => { d[21] = 0x7f; d[20] = 0x80; }); // element 10 = bf16 +inf
    expect((await loadError(copy))?.message).toMatch(/model\.safetensors: tensor model\.layers\.1\.mlp\.down_proj\.weight holds inf at element 10/);
    const f16 = join(root, 'f16');
    await generateTinyLlama(f16, { preset: 'tiny', seed: 2, dtype: 'F16' });
    await poison(f16, 'model.layers.0.input_layernorm.weight', (d) => { d[7] = 0xfe; d[6] = 0x01; }); // element 3 = f16 NaN
    expect((await loadError(f16))?.message).toMatch(/tensor model\.layers\.0\.input_layernorm\.weight holds NaN at element 3/);
    expect(await loadError(bf)).toBeUndefined();
  });

  it('int8 row scales (SCB)', async () => {
    const src = join(root, 'f32');
    await generateTinyLlama(src, { preset: 'tiny', seed: 3 });
    const registry = createRegistry();
    registerBuiltins(registry);
    const q = registry.get('quantizer', 'int8');
    const dir = join(root, 'int8');
    await quantizeModel({ modelDir: src, outDir: dir, quantizer: q, options: resolveOptions('int8', q.options, {}) });
    await poison(dir, 'model.layers.0.self_attn.v_proj.SCB', (d) => new DataView(d.buffer).setFloat32(4, NaN, true));
    expect((await loadError(dir))?.message).toMatch(/tensor model\.layers\.0\.self_attn\.v_proj\.SCB \(int8 row scales\) holds NaN at element 1/);
  });
});
