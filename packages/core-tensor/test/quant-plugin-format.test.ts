/**
 * The read-back half of the quantizer contract (quant/format.ts): the one lookup from quantization_config
 * to a quantizer (bitsandbytes' config to nf4 / fp4 / int8, a plugin's to itself, unknown = exit 2 naming
 * it), and products with a plugin's packed weight (ops/packed-gemm.ts) through each of its paths: the
 * format's fused gemm, readRows blocks (several blocks: the weight is larger than BLOCK_ELEMS), and
 * dequantize into one scratch buffer; all equal linear on the dense weight, with every scratch freed.
 */
import { describe, expect, it } from 'vitest';
import { backward } from '../src/autograd/index.js';
import { getTrainKernels, type TrainKernels } from '../src/backend/index.js';
import { isPeftError, type PeftError } from '../src/errors.js';
import { BLOCK_ELEMS } from '../src/ops/packed-gemm.js';
import * as ops from '../src/ops/index.js';
import { createRegistry, registerBuiltins, type QuantizerDef } from '../src/plugin/index.js';
import { bnbQuantizationConfig, builtinQuantizers } from '../src/quant/index.js';
import { frozenTensor, getAllocator, randn, setAllocator, tensor, tidy, type Allocator, type PackedData, type Tensor } from '../src/tensor/index.js';

function errorOf(f: () => unknown): PeftError {
  try {
    f();
  } catch (e) {
    if (isPeftError(e)) return e;
    throw e;
  }
  throw new Error('expected a PeftError');
}

/** A plugin-like quantizer claiming `method` (only what the lookup reads matters here). */
const plugin = (name: string, quantMethod?: string): QuantizerDef => ({
  name, description: name, options: {}, quantMethod,
  quantize: () => [], dequantize: () => ({ data: new Float32Array(0), shape: [0, 0] }), config: () => ({ quant_method: quantMethod ?? name }),
});

describe('quantizerFor: quantization_config -> quantizer', () => {
  const r = createRegistry();
  registerBuiltins(r);
  r.quantizer(plugin('int4-sym'));

  it('maps bitsandbytes configs to nf4, fp4 and int8 (transformers\' defaults: 4-bit without a type is fp4)', () => {
    const four = (type: 'nf4' | 'fp4') => bnbQuantizationConfig({ type, doubleQuant: true, computeDtype: 'bfloat16' });
    expect(r.quantizerFor(four('nf4')).name).toBe('nf4');
    expect(r.quantizerFor(four('fp4')).name).toBe('fp4');
    expect(r.quantizerFor(bnbQuantizationConfig({ type: 'int8' })).name).toBe('int8');
    expect(r.quantizerFor({ quant_method: 'bitsandbytes', load_in_4bit: true }).name).toBe('fp4');
    expect(builtinQuantizers.quantizerFor(four('nf4')).name).toBe('nf4');
  });

  it("maps a plugin's quant_method to the plugin", () => {
    expect(r.quantizerFor({ quant_method: 'int4-sym', bits: 4, group_size: 32 }).name).toBe('int4-sym');
  });

  it('refuses an unknown quant_method naming it and the plugin to install (exit 2), as the built-ins alone refuse a plugin\'s', () => {
    const e = errorOf(() => r.quantizerFor({ quant_method: 'gptq', bits: 4 }, '/m/config.json'));
    expect([e.code, e.exitCode]).toEqual(['E_INPUT', 2]);
    expect(e.message).toBe('/m/config.json: quantization_config.quant_method "gptq" is not read by any installed quantizer ' +
      '(installed: bitsandbytes (fp4, int8, nf4), int4-sym); install the peft plugin that registers a quantizer for "gptq" ' +
      '(peft plugins install <package>)');
    expect(errorOf(() => builtinQuantizers.quantizerFor({ quant_method: 'int4-sym' })).message).toMatch(/"int4-sym" is not read/);
  });

  it('refuses a bitsandbytes config no built-in reads, a config without quant_method, and two quantizers claiming one', () => {
    expect(errorOf(() => r.quantizerFor({ quant_method: 'bitsandbytes', load_in_4bit: true, bnb_4bit_quant_type: 'nf5' })).message)
      .toMatch(/^no bitsandbytes quantizer \(fp4, int8, nf4\) reads this quantization_config/);
    expect(errorOf(() => r.quantizerFor({ bits: 4 })).code).toBe('E_FORMAT');
    expect(errorOf(() => r.quantizerFor([])).code).toBe('E_FORMAT');
    const two = createRegistry();
    two.quantizer(plugin('a', 'same'));
    two.quantizer(plugin('b', 'same'));
    const e = errorOf(() => two.quantizerFor({ quant_method: 'same' }));
    expect([e.code, e.message]).toEqual(['E_RUNTIME', 'quantizers a, b all claim this quant_method "same" config (two plugins disagree; uninstall one)']);
  });

  it('refuses to register a quantizer whose read-back members are not functions', () => {
    expect(() => createRegistry().quantizer({ ...plugin('x'), frozen: 1 } as never)).toThrow(/frozen must be a function/);
    expect(() => createRegistry().quantizer({ ...plugin('x'), quantMethod: '' })).toThrow(/quantMethod "" must be a non-empty string/);
  });
});

/** Live and peak bytes of everything the current allocator hands out while counting. */
function byteCounter(inner: Allocator): Allocator & { live: number; peak: number } {
  const sizes = new Map<ArrayBuffer, number>();
  const c = {
    name: `counting ${inner.name}`, live: 0, peak: 0,
    alloc(bytes: number): ArrayBuffer {
      const b = inner.alloc(bytes);
      sizes.set(b, bytes);
      c.live += bytes;
      c.peak = Math.max(c.peak, c.live);
      return b;
    },
    free(b: ArrayBuffer): void {
      c.live -= sizes.get(b) ?? 0;
      sizes.delete(b);
      inner.free(b);
    },
  };
  return c;
}

describe('products with a packed weight', () => {
  const [OUT, IN, M] = [1100, 1000, 3]; // 1.1M values > BLOCK_ELEMS: readRows runs in two blocks
  const W = randn([OUT, IN], { seed: 9, std: 0.05 });
  const values = Float32Array.from(W.data);
  W.dispose();
  const kernels = getTrainKernels();
  const reads: number[] = [];
  const paths: Record<string, () => PackedData> = {
    readRows: () => ({
      kind: 'packed', format: 'rows', rowStep: 4,
      dequantize: (out) => out.set(values),
      readRows: (r0, r, out) => {
        reads.push(r);
        out.set(values.subarray(r0 * IN, (r0 + r) * IN));
      },
    }),
    dequantize: () => ({ kind: 'packed', format: 'whole', dequantize: (out) => out.set(values) }),
    gemm: () => ({
      kind: 'packed', format: 'fused', dequantize: () => { throw new Error('the fused path does not dequantize'); },
      gemm: (transB: boolean, m: number, n: number, k: number, a: Float32Array, beta: number, c: Float32Array, kk: TrainKernels) =>
        kk.gemm(false, transB, m, n, k, 1, a, values, beta, c),
    }),
  };

  /** loss = sum(linear(x, w)^2): its value and dL/dx (one forward and one backward product). */
  function run(w: Tensor): { loss: number; dx: Float32Array } {
    const x = randn([M, IN], { seed: 4, requiresGrad: true });
    const loss = tidy(() => {
      const y = ops.linear(x, w, undefined, { kernels });
      return ops.sum(ops.mul(y, y));
    });
    backward(loss);
    const r = { loss: loss.item(), dx: Float32Array.from(x.grad!.data) };
    for (const t of [x, loss]) t.dispose();
    return r;
  }

  for (const [path, make] of Object.entries(paths)) {
    it(`${path}: linear forward and backward equal the dense weight's, and the scratch is freed`, () => {
      const dense = tensor(values, [OUT, IN]);
      const want = run(dense);
      dense.dispose();
      const counter = byteCounter(getAllocator());
      setAllocator(counter);
      try {
        reads.length = 0;
        const packed = frozenTensor(make(), [OUT, IN]);
        const got = run(packed);
        packed.dispose();
        expect(Math.abs(got.loss - want.loss) / Math.abs(want.loss)).toBeLessThan(1e-5);
        let err = 0;
        let scale = 0;
        for (let i = 0; i < want.dx.length; i++) {
          err = Math.max(err, Math.abs(got.dx[i] - want.dx[i]));
          scale = Math.max(scale, Math.abs(want.dx[i]));
        }
        expect(err / scale).toBeLessThan(1e-5);
        expect(counter.live).toBe(0);
        if (path === 'readRows') {
          expect(reads.every((r) => r * IN <= BLOCK_ELEMS && r % 4 === 0)).toBe(true);
          expect(reads).toEqual([1048, 52, 1048, 52]); // forward and backward, two blocks each
          expect(counter.peak).toBeLessThan(OUT * IN * 4); // never the whole weight at once
        }
        if (path === 'dequantize') expect(counter.peak).toBeGreaterThanOrEqual(OUT * IN * 4);
      } finally {
        setAllocator(undefined);
      }
    });
  }
});
