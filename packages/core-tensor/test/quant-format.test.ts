/**
 * The file-level semantics of quant/: quant_state JSON as Python writes it, config.json's
 * quantization_config, the `peft inspect` summary, round trips through the serialized layout, and
 * the errors a broken checkpoint produces. Backend selection and dtype bridges are here too.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fromF32, getBackend, referenceBackend, toF32 } from '../src/backend/index.js';
import { asF32, bytesOf, type NamedRawTensor, type RawTensor } from '../src/dtype.js';
import { PeftError } from '../src/errors.js';
import {
  bnbQuantizationConfig, decodeQuantState, dequantize4bitWeight, dequantizeInt8Weight, describeQuantization,
  formatQuantState, pythonFloatRepr, quantize4bitWeight, quantizeInt8Weight,
} from '../src/quant/index.js';

const be = referenceBackend;
const P = 'model.layers.0.mlp.up_proj';
const lookup = (ts: NamedRawTensor[]) => (n: string): RawTensor | undefined => ts.find((t) => t.name === n);
const randn = (n: number, seed = 1) => {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 0.1);
};

describe('quant_state JSON', () => {
  it('formats floats as Python repr does (values checked against CPython)', () => {
    const cases: [number, string][] = [
      [0.1, '0.1'], [1, '1.0'], [-2.5, '-2.5'], [1e16, '1e+16'], [1.5e16, '1.5e+16'],
      [9999999999999998, '9999999999999998.0'], [1e-5, '1e-05'], [0.0001, '0.0001'], [0.00012345, '0.00012345'],
      [1.5e-7, '1.5e-07'], [123456789012345, '123456789012345.0'], [Math.fround(0.40523624), '0.40523624420166016'],
      [Math.fround(3.3e-6), '3.299999889350147e-06'], [Math.fround(1e20), '1.0000000200408773e+20'], [5e-324, '5e-324'],
      [1.7976931348623157e308, '1.7976931348623157e+308'], [-0, '-0.0'], [100, '100.0'], [NaN, 'NaN'], [-Infinity, '-Infinity'],
    ];
    for (const [x, s] of cases) expect(pythonFloatRepr(x), `${x}`).toBe(s);
  });

  it('is json.dumps of as_dict(packed=True)\'s non-tensor items, in that order', () => {
    expect(formatQuantState({ quant_type: 'nf4', blocksize: 64, dtype: 'bfloat16', shape: [32, 64] })).toBe(
      '{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [32, 64]}',
    );
    expect(formatQuantState({
      quant_type: 'fp4', blocksize: 128, dtype: 'float16', shape: [7], nested_blocksize: 256, nested_dtype: 'float32', nested_offset: 0.5,
    })).toBe('{"quant_type": "fp4", "blocksize": 128, "dtype": "float16", "shape": [7], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.5}');
  });

  it('rejects what bitsandbytes could not load, naming the tensor', () => {
    const enc = (s: string) => new TextEncoder().encode(s);
    expect(() => decodeQuantState('k', enc('{"quant_type": "int4"}'))).toThrow(/k: unsupported quant_type "int4"/);
    expect(() => decodeQuantState('k', enc('not json'))).toThrow(PeftError);
    expect(() => decodeQuantState('k', enc('{"quant_type": "nf4", "blocksize": 64, "dtype": "float16", "shape": [2, -1]}'))).toThrow(/shape/);
  });
});

describe('4-bit weights through the serialized layout', () => {
  const w = randn(48 * 40);
  it.each([
    ['nf4', false], ['nf4', true], ['fp4', false], ['fp4', true],
  ] as const)('%s double=%s: keys, dtypes, shapes, and dequantization', (type, dq) => {
    const ts = quantize4bitWeight(be, P, w, [48, 40], { type, blocksize: 32, doubleQuant: dq, computeDtype: 'bfloat16' });
    const W = `${P}.weight`;
    const layout = ts.map((t) => `${t.name.slice(W.length) || '(weight)'} ${t.dtype} [${t.shape}]`);
    expect(layout).toEqual([
      '(weight) U8 [960,1]',
      dq ? '.absmax U8 [60]' : '.absmax F32 [60]',
      '.quant_map F32 [16]',
      ...(dq ? ['.nested_absmax F32 [1]', '.nested_quant_map F32 [256]'] : []),
      `.quant_state.bitsandbytes__${type} U8 [${ts[ts.length - 1].data.length}]`,
    ]);
    const { data, shape } = dequantize4bitWeight(be, P, lookup(ts));
    expect(shape).toEqual([48, 40]);
    const direct = be.quantize4bit(w, 32, type);
    const plain = be.dequantize4bit(direct.packed, direct.absmax, w.length, 32, type);
    if (!dq) expect(bytesOf(data)).toEqual(bytesOf(plain));
    else data.forEach((v, i) => expect(Math.abs(v - plain[i])).toBeLessThan(2e-3)); // absmax is 8-bit now
  });

  it('names the missing tensor', () => {
    const ts = quantize4bitWeight(be, P, w, [48, 40], { type: 'nf4', blocksize: 64, doubleQuant: true, computeDtype: 'float16' });
    for (const drop of ['.weight.nested_absmax', '.weight.absmax', '.weight.quant_map', '.weight', '.weight.quant_state.bitsandbytes__nf4']) {
      const get = lookup(ts.filter((t) => t.name !== P + drop));
      expect(() => dequantize4bitWeight(be, P, get), drop).toThrow(drop.includes('quant_state') ? /quant_state\.bitsandbytes__nf4/ : `'${P}${drop}'`);
    }
  });

  it('refuses a quant_map that is not the standard table', () => {
    const ts = quantize4bitWeight(be, P, w, [48, 40], { type: 'nf4', blocksize: 64, doubleQuant: false, computeDtype: 'float16' });
    const qm = ts.find((t) => t.name.endsWith('quant_map'))!;
    asF32(qm.data)[3] = 0.25;
    expect(() => dequantize4bitWeight(be, P, lookup(ts))).toThrow(/not the standard nf4 code book/);
  });

  it('checks shape and options', () => {
    const opts = { type: 'nf4', blocksize: 64, doubleQuant: false, computeDtype: 'float16' } as const;
    expect(() => quantize4bitWeight(be, P, w, [48, 41], opts)).toThrow(/E_SHAPE|has 1968 elements/);
    expect(() => quantize4bitWeight(be, P, w, [48, 40], { ...opts, blocksize: 100 })).toThrow(/power of two/);
    expect(() => quantize4bitWeight(be, P, w, [48, 40], { ...opts, computeDtype: 'int8' as 'float16' })).toThrow(/computeDtype/);
  });
});

describe('int8 weights', () => {
  it('writes weight I8, SCB F32 [rows], weight_format U8 scalar 0, and reads them back', () => {
    const w = randn(6 * 10, 7);
    const ts = quantizeInt8Weight(be, P, w, [6, 10]);
    expect(ts.map((t) => [t.name, t.dtype, t.shape, t.data.length])).toEqual([
      [`${P}.weight`, 'I8', [6, 10], 60], [`${P}.SCB`, 'F32', [6], 24], [`${P}.weight_format`, 'U8', [], 1],
    ]);
    expect(ts[2].data[0]).toBe(0);
    const back = dequantizeInt8Weight(be, P, lookup(ts));
    expect(back.shape).toEqual([6, 10]);
    back.data.forEach((v, i) => expect(Math.abs(v - w[i])).toBeLessThanOrEqual(0.05 / 127 + 1e-7));
  });

  it('rejects other weight formats and missing SCB', () => {
    const ts = quantizeInt8Weight(be, P, randn(20), [4, 5]);
    ts[2].data[0] = 2;
    expect(() => dequantizeInt8Weight(be, P, lookup(ts))).toThrow(/only format 0 \("row"\)/);
    expect(() => dequantizeInt8Weight(be, P, lookup(ts.slice(0, 1)))).toThrow(`'${P}.SCB'`);
  });
});

describe('config.json quantization_config', () => {
  it('is BitsAndBytesConfig.to_dict() for NF4 with double quant', () => {
    const c = bnbQuantizationConfig({ type: 'nf4', blocksize: 64, doubleQuant: true, computeDtype: 'bfloat16', skipModules: ['lm_head'] });
    expect(JSON.stringify(c)).toBe(JSON.stringify({
      _load_in_4bit: true, _load_in_8bit: false, bnb_4bit_compute_dtype: 'bfloat16', bnb_4bit_quant_storage: 'uint8',
      bnb_4bit_quant_type: 'nf4', bnb_4bit_use_double_quant: true, llm_int8_enable_fp32_cpu_offload: false,
      llm_int8_has_fp16_weight: false, llm_int8_skip_modules: ['lm_head'], llm_int8_threshold: 6.0, load_in_4bit: true,
      load_in_8bit: false, quant_method: 'bitsandbytes',
    }));
    expect(Object.keys(c)).toEqual([...Object.keys(c)].sort()); // config.json is written with sort_keys
  });

  it('int8 looks like BitsAndBytesConfig(load_in_8bit=True)', () => {
    const c = bnbQuantizationConfig({ type: 'int8' });
    expect(c).toMatchObject({ load_in_8bit: true, load_in_4bit: false, bnb_4bit_quant_type: 'fp4', bnb_4bit_compute_dtype: 'float32', llm_int8_skip_modules: null });
  });

  it('describes a bitsandbytes checkpoint for inspect', () => {
    const cfg = { model_type: 'llama', quantization_config: bnbQuantizationConfig({ type: 'fp4', doubleQuant: true, computeDtype: 'float16' }) };
    const names = ['a.weight', `${P}.weight`, `${P}.weight.quant_state.bitsandbytes__fp4`, 'x.weight.quant_state.bitsandbytes__fp4'];
    expect(describeQuantization(cfg, names)).toEqual({
      method: 'bitsandbytes', bits: 4, type: 'fp4', doubleQuant: true, computeDtype: 'float16', quantizedModules: 2,
    });
    const old = { quantization_config: { quant_method: 'bitsandbytes', load_in_8bit: true } }; // pre-4-bit transformers
    expect(describeQuantization(old, ['a.SCB', 'b.SCB', 'b.weight'])).toMatchObject({ bits: 8, type: 'int8', quantizedModules: 2 });
    expect(describeQuantization({ model_type: 'llama' }, [])).toBeUndefined();
    expect(describeQuantization({ quantization_config: { quant_method: 'gptq' } }, [])).toBeUndefined();
  });
});

describe('backend selection and dtype bridges', () => {
  afterEach(() => vi.unstubAllEnvs());

  it('honours PEFT_BACKEND and rejects unknown values', () => {
    vi.stubEnv('PEFT_BACKEND', 'reference');
    expect(getBackend()).toBe(referenceBackend);
    vi.stubEnv('PEFT_BACKEND', 'gpu');
    expect(() => getBackend()).toThrow(/PEFT_BACKEND must be one of auto, native, reference, got 'gpu'/);
    vi.stubEnv('PEFT_BACKEND', '');
    expect(['reference', 'native']).toContain(getBackend().name);
    expect(getBackend('auto')).toBe(getBackend('auto')); // decided once
  });

  it('toF32 / fromF32 round-trip F32, F16, BF16 and refuse other dtypes', () => {
    const x = Float32Array.of(1, -2.5, 0.099975586); // exact in f16 and... 0.0999 is not exact in bf16
    for (const dtype of ['F32', 'F16', 'BF16'] as const) {
      const data = fromF32(be, x, dtype);
      const y = toF32(be, { dtype, shape: [3], data });
      if (dtype !== 'BF16') expect([...y]).toEqual([...x]);
      else expect([...y.subarray(0, 2)]).toEqual([1, -2.5]);
    }
    expect(() => toF32(be, { dtype: 'I8', shape: [1], data: new Uint8Array(1) })).toThrow(/expected dtype F32, F16 or BF16, got I8/);
    expect(() => toF32(be, { name: 'w', dtype: 'F16', shape: [3], data: new Uint8Array(4) } as RawTensor)).toThrow(/tensor 'w': 4 bytes/);
    expect(() => fromF32(be, x, 'U8')).toThrow(PeftError);
  });
});
