/**
 * Rotary embedding tables, computed exactly as transformers computes them in f32
 * (modeling_rope_utils.py + LlamaRotaryEmbedding.forward), so positions far into a long context
 * rotate by the same f32 angles as in the reference model:
 *   inv_freq[i] = 1 / theta ** (2i / hd)                  (_compute_default_rope_parameters, f32)
 *   linear: inv_freq / factor; llama3: per-band rescale   (_compute_linear_scaling / _compute_llama3_parameters)
 *   cos[p, i] = cos(f32(p * inv_freq[i])), sin likewise   (emb = cat(freqs, freqs): one half is stored)
 * Every step is rounded to f32 in torch's order (`a / t` is reciprocal(t) * a in torch; scalars are f32).
 * The tables feed the rope op ([maxPos, hd/2]) and grow on demand, so a 128k-context config costs
 * only the positions actually used. f64 tables (an f64 model, for gradient checks) hold the same angles'
 * cos / sin unrounded. Not here: the rotation itself (ops/rope.ts).
 */
import { PeftError } from '../errors.js';
import { zeros } from '../tensor/create.js';
import { keep } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { FloatDtype } from '../tensor/types.js';
import type { LlamaConfig, RopeScaling } from './config.js';

const f = Math.fround;

/** _compute_default_rope_parameters: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), all f32. */
export function defaultInvFreq(theta: number, headDim: number): Float32Array {
  const inv = new Float32Array(headDim / 2);
  for (let i = 0; i < inv.length; i++) inv[i] = f(1 / f(Math.pow(theta, f((2 * i) / headDim))));
  return inv;
}

/**
 * _compute_llama3_parameters (Llama 3.1): wavelengths shorter than original/high_freq_factor keep
 * their frequency, longer than original/low_freq_factor are divided by factor, and the band between
 * is interpolated by `smooth`.
 */
export function llama3InvFreq(inv: Float32Array, s: Extract<RopeScaling, { type: 'llama3' }>): Float32Array {
  const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  const twoPi = f(2 * Math.PI);
  return inv.map((x) => {
    const wavelen = f(f(1 / x) * twoPi); // 2 * math.pi / inv_freq
    const base = wavelen > lowWavelen ? f(x / s.factor) : x;
    if (wavelen < highWavelen || wavelen > lowWavelen) return base;
    const ratio = f(f(1 / wavelen) * f(s.originalMaxPositionEmbeddings)); // old_context_len / wavelen
    const smooth = f(f(ratio - f(s.lowFreqFactor)) / f(s.highFreqFactor - s.lowFreqFactor));
    return f(f(f(f(1 - smooth) * base) / f(s.factor)) + f(smooth * base));
  });
}

/** The inverse frequencies [hd/2] of a config, scaling applied. */
export function ropeInvFreq(cfg: Pick<LlamaConfig, 'ropeTheta' | 'headDim' | 'ropeScaling'>): Float32Array {
  const inv = defaultInvFreq(cfg.ropeTheta, cfg.headDim);
  const s = cfg.ropeScaling;
  if (s?.type === 'linear') return inv.map((x) => f(x / s.factor));
  if (s?.type === 'llama3') return llama3InvFreq(inv, s);
  return inv; // default, and dynamic NTK below max_position_embeddings
}

/** cos / sin [rows, hd/2] of positions 0..rows-1: cos(f32(p * inv_freq[i])), rounded to f32 in f32 tables. */
export function ropeTables(invFreq: Float32Array, rows: number, dtype: FloatDtype = 'f32'): { cos: Tensor; sin: Tensor } {
  const half = invFreq.length;
  const cos = zeros([rows, half], { dtype });
  const sin = zeros([rows, half], { dtype });
  const c = cos.data;
  const s = sin.data;
  for (let p = 0; p < rows; p++) {
    for (let i = 0; i < half; i++) {
      const angle = f(p * invFreq[i]);
      c[p * half + i] = Math.cos(angle);
      s[p * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/**
 * The tables of one model, grown (doubling) to cover the positions asked for, one set per dtype. Tensors
 * handed out stay valid while anything uses them: growing replaces the model's handles, and the tape
 * keeps its own.
 */
export class Rotary {
  readonly invFreq: Float32Array;
  readonly #tables = new Map<FloatDtype, { cos: Tensor; sin: Tensor; rows: number }>();
  /** Positions past this are refused (dynamic NTK scaling would change the tables there). */
  readonly #limit: number;

  constructor(cfg: Pick<LlamaConfig, 'ropeTheta' | 'headDim' | 'ropeScaling' | 'maxPositionEmbeddings'>) {
    this.invFreq = ropeInvFreq(cfg);
    this.#limit = cfg.ropeScaling?.type === 'dynamic' ? cfg.maxPositionEmbeddings : Infinity;
  }

  /** Tables [rows >= positions, hd/2] of `dtype` (the activations'). */
  tables(positions: number, dtype: FloatDtype = 'f32'): { cos: Tensor; sin: Tensor } {
    if (positions > this.#limit) {
      throw new PeftError('E_INPUT', `position ${positions - 1} is past max_position_embeddings (${this.#limit}): ` +
        'dynamic NTK rope scaling is only supported within it');
    }
    const have = this.#tables.get(dtype);
    if (have && positions <= have.rows) return have;
    const rows = Math.min(this.#limit, Math.max(64, 2 ** Math.ceil(Math.log2(Math.max(positions, 1)))));
    have?.cos.dispose();
    have?.sin.dispose();
    const t = ropeTables(this.invFreq, rows, dtype);
    const next = { cos: keep(t.cos), sin: keep(t.sin), rows };
    this.#tables.set(dtype, next);
    return next;
  }

  dispose(): void {
    for (const t of this.#tables.values()) {
      t.cos.dispose();
      t.sin.dispose();
    }
    this.#tables.clear();
  }
}
