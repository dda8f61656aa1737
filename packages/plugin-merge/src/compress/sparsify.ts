/**
 * Top-K sparsification without ternarisation, for comparison with ComPEFT: the same selection
 * (topk.ts; the reference's replace_factor = -1 "just pruning" branch), kept values stored as
 * f16 (round to nearest even) instead of sign bits.
 *
 * Payload (codec fields: count, rice_k, gap_bytes):
 *   [gap_bytes]   Rice-coded gaps of the kept positions (gaps.ts)
 *   [2 · count]   the kept values as IEEE f16, little-endian, in position order
 * Not here: the container (core).
 */
import { PeftError, referenceBackend, type CompressorDef } from '@peft/core-tensor';
import { encodePositions } from './gaps.js';
import { formatError, readSparse, scatter } from './sparse.js';
import { entropyBits, flatten, keepThreshold, keptPositions } from './topk.js';

const fail = formatError('sparsify');
const F16_MAX = 65504;

export const sparsify: CompressorDef = {
  name: 'sparsify',
  description: 'Top-K by magnitude, kept values stored as f16 (no ternarisation); Rice-coded positions',
  options: {
    density: { type: 'number', min: 0, max: 1, default: 0.1, description: 'Fraction K of the update kept, in (0, 1]' },
  },
  compress(input, options) {
    const tv = flatten(input);
    const positions = keptPositions(tv, keepThreshold(tv, options.density as number));
    const kept = new Float32Array(positions.length);
    for (let j = 0; j < positions.length; j++) {
      kept[j] = tv[positions[j]];
      if (Math.abs(kept[j]) > F16_MAX) throw new PeftError('E_INPUT', `sparsify: value ${kept[j]} exceeds the f16 range (use compeft)`);
    }
    const { bytes: gaps, k } = encodePositions(positions);
    const halves = referenceBackend.f32ToF16(kept);
    const payload = new Uint8Array(gaps.length + 2 * kept.length);
    payload.set(gaps, 0);
    const view = new DataView(payload.buffer, gaps.length);
    for (let j = 0; j < halves.length; j++) view.setUint16(2 * j, halves[j], true);
    const p = positions.length / tv.length;
    return {
      codec: { count: positions.length, rice_k: k, gap_bytes: gaps.length },
      payload,
      kept: positions.length,
      boundBits: entropyBits(p) + 16 * p,
    };
  },
  decompress(tensors, codec, payload) {
    const { positions, rest, count } = readSparse(tensors, codec, payload, (n) => 2 * n, fail);
    const view = new DataView(rest.buffer, rest.byteOffset, rest.byteLength);
    const halves = new Uint16Array(count);
    for (let j = 0; j < count; j++) halves[j] = view.getUint16(2 * j, true);
    const values = referenceBackend.f16ToF32(halves);
    return scatter(tensors, positions, (j) => values[j]);
  },
};
