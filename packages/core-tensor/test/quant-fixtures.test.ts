/**
 * Golden fixtures from scripts/ref/bnb_reference.py (an independent numpy implementation of
 * bitsandbytes' formats): every backend must reproduce them byte for byte, and the 4-bit/int8
 * readers must load them as files written by bitsandbytes.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nativeBackend, nativeSimdLevels, referenceBackend, toF32, tryLoadKernels } from '../src/backend/index.js';
import type { Backend } from '../src/backend/types.js';
import { asF32, asU16, bytesOf, type Dtype, type NamedRawTensor, type RawTensor } from '../src/dtype.js';
import {
  DYNAMIC_MAP, absmaxOffset, dequantize4bitWeight, doubleDequantize, dequantizeInt8Weight, quantize4bitWeight, quantizeInt8Weight, type ComputeDtype,
} from '../src/quant/index.js';

const DIR = join(import.meta.dirname, 'fixtures', 'bnb');

interface Fixture {
  meta: Record<string, string>;
  tensors: Map<string, RawTensor>;
}

/** Just enough safetensors: u64 header length, JSON header, data (the fixtures are ours). */
function readSafetensors(path: string): Fixture {
  const buf = readFileSync(path);
  const len = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + len).toString('utf8')) as Record<string, any>;
  const tensors = new Map<string, RawTensor>();
  for (const [name, h] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [a, b] = h.data_offsets as [number, number];
    tensors.set(name, { dtype: h.dtype as Dtype, shape: h.shape, data: new Uint8Array(buf.subarray(8 + len + a, 8 + len + b)) });
  }
  return { meta: header.__metadata__, tensors };
}

function backends(): [string, Backend, () => void][] {
  const out: [string, Backend, () => void][] = [['reference', referenceBackend, () => {}]];
  const k = tryLoadKernels();
  if (k) for (const lvl of nativeSimdLevels()) out.push([`native/${lvl}`, nativeBackend(k), () => k.setSimdLevel(lvl)]);
  return out;
}

const fixtures4 = readdirSync(DIR).filter((f) => /^(nf4|fp4)_.*\.safetensors$/.test(f));

/** An f16 value computed from its fields, independently of the backends. */
function f16Value(h: number): number {
  const e = (h >> 10) & 31;
  const m = h & 1023;
  const v = e === 0 ? m * 2 ** -24 : e === 31 ? (m ? NaN : Infinity) : (1 + m / 1024) * 2 ** (e - 15);
  return h & 0x8000 ? -v : v;
}

function hex(t: RawTensor | NamedRawTensor | undefined): string {
  return t ? Buffer.from(t.data).toString('hex') : 'missing';
}

describe('dynamic map', () => {
  it('equals the torch-generated values bit for bit', () => {
    const doc = JSON.parse(readFileSync(join(DIR, 'dynamic_map.json'), 'utf8')) as { f32_bits: string[] };
    const bits = Array.from(new Uint32Array(DYNAMIC_MAP.buffer), (b) => b.toString(16).padStart(8, '0'));
    expect(bits).toEqual(doc.f32_bits);
  });
});

describe.each(backends())('bitsandbytes fixtures on %s', (_label, backend, select) => {
  it.each(fixtures4)('%s: quantize reproduces every serialized tensor', (file) => {
    select();
    const { meta, tensors } = readSafetensors(join(DIR, file));
    const x = toF32(backend, tensors.get('ref.input')!);
    const shape = JSON.parse(meta.shape) as number[];
    const out = quantize4bitWeight(backend, meta.prefix, x, shape, {
      type: meta.quant_type as 'nf4' | 'fp4',
      blocksize: Number(meta.blocksize),
      doubleQuant: meta.double_quant === 'true',
      computeDtype: meta.dtype as ComputeDtype,
    });
    const expected = [...tensors.keys()].filter((k) => k.startsWith(meta.prefix));
    expect(out.map((t) => t.name)).toEqual(expected); // same keys, same (as_dict) order
    for (const t of out) {
      const want = tensors.get(t.name)!;
      expect({ name: t.name, dtype: t.dtype, shape: t.shape }).toEqual({ name: t.name, dtype: want.dtype, shape: want.shape });
      expect(hex(t), t.name).toBe(hex(want));
    }
  });

  it.each(fixtures4)('%s: reads the bitsandbytes layout back (offset, nested absmax, dequant)', (file) => {
    select();
    const { meta, tensors } = readSafetensors(join(DIR, file));
    const P = `${meta.prefix}.weight`;
    const same = (a: Float32Array, b: Uint8Array) => Buffer.from(bytesOf(a)).equals(Buffer.from(b));
    let absmax = asF32(tensors.get('ref.absmax')!.data);
    if (meta.double_quant === 'true') {
      const offset = absmaxOffset(absmax);
      expect(new Uint32Array(Float32Array.of(offset).buffer)[0].toString(16).padStart(8, '0')).toBe(meta.offset_bits);
      const recovered = doubleDequantize(backend, tensors.get(`${P}.absmax`)!.data, asF32(tensors.get(`${P}.nested_absmax`)!.data),
        asF32(tensors.get(`${P}.nested_quant_map`)!.data), 256, offset);
      expect(same(recovered, tensors.get('ref.absmax_dq')!.data)).toBe(true);
      absmax = recovered;
    }
    const { data, shape } = dequantize4bitWeight(backend, meta.prefix, (n) => tensors.get(n));
    expect(shape).toEqual(JSON.parse(meta.shape));
    const ref = tensors.get('ref.dequant');
    if (ref) expect(same(data, ref.data)).toBe(true);
    // large cases carry no dequantized copy: it must equal codes * the reference absmax
    const direct = backend.dequantize4bit(tensors.get(P)!.data, absmax, data.length, Number(meta.blocksize), meta.quant_type as 'nf4');
    expect(same(data, bytesOf(direct))).toBe(true);
  });

  it('f32 -> f16 matches numpy and f32 -> bf16 matches torch (random bits, ties, subnormals)', () => {
    select();
    const { tensors } = readSafetensors(join(DIR, 'conversions.safetensors'));
    const x = asF32(tensors.get('input')!.data);
    expect(hex({ ...tensors.get('f16')!, data: bytesOf(backend.f32ToF16(x)) })).toBe(hex(tensors.get('f16')));
    expect(hex({ ...tensors.get('bf16')!, data: bytesOf(backend.f32ToBf16(x)) })).toBe(hex(tensors.get('bf16')));
    const back = backend.f16ToF32(asU16(tensors.get('f16')!.data));
    expect([...back]).toEqual(Array.from(asU16(tensors.get('f16')!.data), (h) => f16Value(h)));
  });

  it('int8 rows: CB, SCB, weight_format and dequantization', () => {
    select();
    const { meta, tensors } = readSafetensors(join(DIR, 'int8_rows.safetensors'));
    const x = toF32(backend, tensors.get('ref.input')!);
    const out = quantizeInt8Weight(backend, meta.prefix, x, JSON.parse(meta.shape));
    for (const t of out) {
      const want = tensors.get(t.name)!;
      expect([t.dtype, t.shape, hex(t)], t.name).toEqual([want.dtype, want.shape, hex(want)]);
    }
    const back = dequantizeInt8Weight(backend, meta.prefix, (n) => tensors.get(n));
    expect(Buffer.from(bytesOf(back.data)).equals(Buffer.from(tensors.get('ref.dequant')!.data))).toBe(true);
  });
});

describe('fixture coverage', () => {
  it('exercises what the format needs', () => {
    const all = fixtures4.map((f) => readSafetensors(join(DIR, f)));
    const sizes = new Set(all.map((f) => f.meta.blocksize));
    expect([...sizes].sort()).toEqual(['256', '32', '4096', '64']);
    // double quant with more than 256 blocks, so a second nested block exists
    expect(all.some((f) => f.meta.double_quant === 'true' && f.tensors.get(`${f.meta.prefix}.weight.nested_absmax`)!.shape[0] > 1)).toBe(true);
    expect(all.some((f) => (JSON.parse(f.meta.shape) as number[]).reduce((a, b) => a * b) % 2 === 1)).toBe(true);
  });
});
