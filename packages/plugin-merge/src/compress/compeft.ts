/**
 * ComPEFT (Yadav et al. 2023, https://arxiv.org/abs/2311.13171; prateeky2806/ComPEFT
 * src/qlora/ties_utils.py get_compressed_lora_weights with replace_factor = alpha > 0): keep the
 * top-K fraction of the flattened update by magnitude (topk.ts), replace every kept value by
 * sign(tv) · alpha · std(tv). One scale for the whole update, as the reference computes it.
 *
 * Payload (codec fields: count, rice_k, gap_bytes, scale):
 *   [gap_bytes]        Rice-coded gaps of the kept positions (gaps.ts), zero-padded to a byte
 *   [ceil(count / 8)]  one sign bit per kept value in position order, MSB first (1 = negative)
 * so the cost is about H(K) + K bits per parameter, against 16 for the fp16 adapter.
 * Not here: the container around the payload (core tasks/adapters/container.ts).
 */
import type { CompressorDef } from '@peft/core-tensor';
import { BitReader, BitWriter } from './bits.js';
import { encodePositions } from './gaps.js';
import { formatError, readSparse, scatter } from './sparse.js';
import { entropyBits, flatten, keepThreshold, keptPositions, unbiasedStd } from './topk.js';

const fail = formatError('compeft');

export const compeft: CompressorDef = {
  name: 'compeft',
  description: 'ComPEFT: top-K by magnitude, kept values -> sign * alpha * std; Rice-coded positions + sign bits',
  options: {
    density: { type: 'number', min: 0, max: 1, default: 0.1, description: 'Fraction K of the update kept, in (0, 1]' },
    alpha: { type: 'number', min: 0, default: 1, description: 'Kept values become sign * alpha * std(update)' },
  },
  compress(input, options) {
    const density = options.density as number;
    const alpha = options.alpha as number;
    const tv = flatten(input);
    const std = unbiasedStd(tv);
    // torch: `alpha = replace_factor * std` is an f32 tensor op (the Python float is rounded to f32 first).
    const scale = Math.fround(Math.fround(alpha) * std);
    const positions = keptPositions(tv, keepThreshold(tv, density));
    const { bytes: gaps, k } = encodePositions(positions);
    const signs = new BitWriter(positions.length);
    for (const p of positions) signs.bit(tv[p] < 0);
    const signBytes = signs.finish();
    const payload = new Uint8Array(gaps.length + signBytes.length);
    payload.set(gaps, 0);
    payload.set(signBytes, gaps.length);
    const p = positions.length / tv.length;
    return {
      codec: { count: positions.length, rice_k: k, gap_bytes: gaps.length, scale },
      payload,
      kept: positions.length,
      boundBits: entropyBits(p) + p,
    };
  },
  decompress(tensors, codec, payload) {
    const scale = codec.scale;
    if (typeof scale !== 'number' || !Number.isFinite(scale) || Math.fround(scale) !== scale) {
      throw fail(`codec field "scale" is ${JSON.stringify(scale)}, expected a finite f32`);
    }
    const { positions, rest, count } = readSparse(tensors, codec, payload, (n) => Math.ceil(n / 8), fail);
    const signs = new BitReader(rest, fail);
    const values = new Float32Array(count);
    for (let j = 0; j < count; j++) values[j] = signs.bit() ? -scale : scale;
    signs.end();
    return scatter(tensors, positions, (j) => values[j]);
  },
};
