// @ts-check
/**
 * Symmetric per-group int4: for each row and each group of `group_size` inputs,
 * scale = max|w| / 7 and q = clamp(round(w / scale), -7, 7), stored as two's-complement
 * nibbles, element 2j in the low nibble. Stored tensors for module P:
 *   P.weight        U8  [rows, cols / 2]
 *   P.weight_scale  F32 [rows, cols / group_size]
 * A plain-JS example of the quantizer contract that third parties publish against: quantize and
 * config write folders; dequantize, layout and frozen read them back, so peft trains (QLoRA-style:
 * the base stays packed), evaluates, generates, merges and folds on them. `frozen` keeps the packed
 * codes as stored and offers `readRows`: peft's GEMM asks for a block of rows at a time, so a weight
 * is never expanded whole.
 */
import { PeftError } from '@peft/core-tensor';

/** @type {import('@peft/core-tensor').OptionsSchema} */
const options = {
  group_size: { type: 'integer', min: 8, max: 4096, powerOfTwo: true, default: 64, description: 'inputs sharing one scale' },
};

/** @param {readonly number[]} shape @param {number} g @param {string} prefix */
function checkShape(shape, g, prefix) {
  const [rows, cols] = shape;
  if (shape.length !== 2 || cols % g !== 0) {
    throw new PeftError('E_SHAPE', `${prefix}.weight: int4-sym needs 2-D weights whose width is a multiple of group_size ${g}, got [${shape}]`);
  }
  return { rows, cols, groups: cols / g };
}

/** @type {import('@peft/core-tensor').QuantizerDef} */
export const int4Sym = {
  name: 'int4-sym',
  description: 'Symmetric per-group int4 (example plugin)',
  options,
  quantize(prefix, w, shape, opts) {
    const g = /** @type {number} */ (opts.group_size);
    const { rows, cols, groups } = checkShape(shape, g, prefix);
    const packed = new Uint8Array((rows * cols) / 2);
    const scales = new Float32Array(rows * groups);
    for (let gi = 0; gi < rows * groups; gi++) {
      const start = gi * g;
      let absmax = 0;
      for (let i = start; i < start + g; i++) absmax = Math.max(absmax, Math.abs(w[i]));
      const scale = Math.fround(absmax / 7);
      scales[gi] = scale;
      for (let i = start; i < start + g; i++) {
        const q = scale === 0 ? 0 : Math.max(-7, Math.min(7, Math.round(w[i] / scale)));
        packed[i >> 1] |= (q & 0xf) << ((i & 1) * 4);
      }
    }
    return [
      { name: `${prefix}.weight`, dtype: 'U8', shape: [rows, cols / 2], data: packed },
      { name: `${prefix}.weight_scale`, dtype: 'F32', shape: [rows, groups], data: new Uint8Array(scales.buffer) },
    ];
  },
  dequantize(prefix, get, ctx) {
    const w = stored(prefix, get);
    const out = ctx.out ?? new Float32Array(w.rows * w.cols);
    decode(w, 0, w.rows, out);
    return { data: out, shape: [w.rows, w.cols] };
  },
  /** The shape from the headers alone: [rows of weight_scale, 2 * bytes per row of weight]. */
  layout(prefix, index) {
    const key = `${prefix}.weight`;
    if (!index.has(key) || index.info(key).dtype !== 'U8' || !index.has(`${key}_scale`)) return undefined;
    return { parts: [key, `${key}_scale`], shape: [index.info(key).shape[0], index.info(key).shape[1] * 2] };
  },
  /** In memory: the stored codes as they are, scales decoded once, rows read on demand. */
  frozen(prefix, get, shape) {
    const w = stored(prefix, get);
    if (w.rows !== shape[0] || w.cols !== shape[1]) {
      throw new PeftError('E_SHAPE', `${prefix}.weight: int4-sym weight is [${w.rows}, ${w.cols}], the model expects [${shape}]`);
    }
    return {
      kind: 'packed',
      format: 'int4-sym',
      dequantize: (out) => decode(w, 0, w.rows, out),
      readRows: (row0, rows, out) => decode(w, row0, rows, out),
    };
  },
  config(opts, skipModules) {
    return { quant_method: 'int4-sym', bits: 4, group_size: opts.group_size, modules_to_not_convert: [...skipModules] };
  },
};

/** @param {string} prefix @param {(name: string) => import('@peft/core-tensor').RawTensor | undefined} get */
function stored(prefix, get) {
  const packed = get(`${prefix}.weight`);
  const scale = get(`${prefix}.weight_scale`);
  if (!packed || !scale) throw new PeftError('E_FORMAT', `${prefix}: missing .weight or .weight_scale for int4-sym`);
  const [rows, groups] = scale.shape;
  const cols = packed.shape[1] * 2;
  if (packed.shape[0] !== rows || groups === 0 || cols % groups !== 0 || packed.data.length !== (rows * cols) / 2) {
    throw new PeftError('E_FORMAT', `${prefix}: int4-sym weight [${packed.shape}] and scales [${scale.shape}] do not fit`);
  }
  return { codes: packed.data, scales: new Float32Array(scale.data.slice().buffer), rows, cols, g: cols / groups };
}

/**
 * Rows [row0, row0 + rows) as f32 into out.
 * @param {{ codes: Uint8Array, scales: Float32Array, cols: number, g: number }} w
 * @param {number} row0 @param {number} rows @param {Float32Array} out
 */
function decode(w, row0, rows, out) {
  const start = row0 * w.cols;
  for (let j = 0; j < rows * w.cols; j++) {
    const i = start + j;
    const nib = (w.codes[i >> 1] >> ((i & 1) * 4)) & 0xf;
    out[j] = ((nib << 28) >> 28) * w.scales[Math.floor(i / w.g)];
  }
}
