/**
 * Text generation with a KV cache (what `peft generate` runs): the prompt is prefilled in one
 * forward, then one token per step attends to the cache. Sampling follows transformers' warpers in
 * order: temperature, then top-p (TopPLogitsWarper: drop the least likely tokens whose cumulative
 * probability stays <= 1 - top_p, keeping at least one); temperature 0 is greedy (argmax, first of
 * ties). Seeded (xoshiro128**): the same seed gives the same text. Batch of one sequence.
 * Positions follow positions.ts: a prompt that leaves no room is refused before any forward, and
 * generation stops when prompt + new tokens fill max_position_embeddings.
 * Not here: beam search, repetition penalties, batched generation.
 */
import { noGrad } from '../ops/tape.js';
import type { TrainKernels } from '../backend/train-kernels.js';
import { PeftError } from '../errors.js';
import { Xoshiro128 } from '../random/rng.js';
import type { Llama } from '../models/llama.js';
import { tidy } from '../tensor/scope.js';
import { Tokenizer } from '../tokenizer/tokenizer.js';
import { positionsLeft } from './positions.js';

export interface SamplingOptions {
  /** 0 (default) = greedy; otherwise logits are divided by it before softmax. */
  temperature?: number;
  /** Nucleus sampling mass in (0, 1]; 1 (default) keeps every token. */
  topP?: number;
  /** Seed of the sampling stream (default 0). */
  seed?: number;
}

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate at most (default 64). */
  maxNewTokens?: number;
  /** Ids that end generation (included in the result); default the model config's eos ids. */
  stopTokenIds?: readonly number[];
  kernels?: TrainKernels;
}

/** Why generation ended: a stop token, --max-new-tokens, or the model's positions were full. */
export type StopReason = 'stop' | 'length' | 'max_position_embeddings';

export interface GenerateResult {
  /** The new tokens (a stop token, if one ended generation, is the last). */
  tokenIds: number[];
  stopReason: StopReason;
}

function checkSampling(o: GenerateOptions): void {
  const { temperature = 0, topP = 1, maxNewTokens = 64, seed = 0 } = o;
  if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new PeftError('E_INPUT', `temperature must be >= 0, got ${temperature}`);
  if (!(topP > 0 && topP <= 1)) throw new PeftError('E_INPUT', `top-p must be in (0, 1], got ${topP}`);
  if (!Number.isSafeInteger(maxNewTokens) || maxNewTokens < 0) throw new PeftError('E_INPUT', `max new tokens must be a non-negative integer, got ${maxNewTokens}`);
  if (!Number.isSafeInteger(seed)) throw new PeftError('E_INPUT', `seed must be an integer, got ${seed}`);
}

/** Index of the largest logit (the first one on ties, as torch.argmax). */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** One token from logits [V]: greedy at temperature 0, else temperature -> top-p -> a draw from rng. */
export function sampleToken(logits: ArrayLike<number>, o: SamplingOptions, rng: Xoshiro128): number {
  const temperature = o.temperature ?? 0;
  if (temperature === 0) return argmax(logits);
  const V = logits.length;
  const max = logits[argmax(logits)];
  const p = new Float64Array(V);
  let sum = 0;
  for (let i = 0; i < V; i++) sum += p[i] = Math.exp((logits[i] - max) / temperature);
  for (let i = 0; i < V; i++) p[i] /= sum;
  const topP = o.topP ?? 1;
  if (topP < 1) {
    const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => p[a] - p[b] || b - a); // ascending
    let cum = 0;
    for (let k = 0; k < V - 1; k++) { // the most likely token is always kept
      cum += p[order[k]];
      if (cum > 1 - topP) break;
      p[order[k]] = 0;
    }
  }
  let total = 0;
  for (let i = 0; i < V; i++) total += p[i];
  let u = rng.nextFloat() * total;
  for (let i = 0; i < V; i++) {
    u -= p[i];
    if (u < 0 && p[i] > 0) return i;
  }
  return argmax(p); // round-off left u >= 0: the likeliest kept token
}

/**
 * Yields each new token as it is chosen; returns the whole result. The prompt is prefilled through a
 * fresh KV cache, freed when the generator finishes or is abandoned (return()).
 */
export function* generateTokens(model: Llama, promptIds: ArrayLike<number>, opts: GenerateOptions = {}): Generator<number, GenerateResult, void> {
  checkSampling(opts);
  if (promptIds.length === 0) throw new PeftError('E_INPUT', 'the prompt has no tokens');
  const vocab = model.config.vocabSize;
  for (const id of Array.from(promptIds)) {
    if (!Number.isSafeInteger(id) || id < 0 || id >= vocab) throw new PeftError('E_INPUT', `prompt token ${id} is outside the model's vocabulary (${vocab})`);
  }
  const stop = new Set(opts.stopTokenIds ?? model.config.eosTokenIds);
  const rng = new Xoshiro128(opts.seed ?? 0);
  const maxNew = opts.maxNewTokens ?? 64;
  const cache = model.newCache();
  const out: number[] = [];
  try {
    // A fresh cache takes the hooks' positions (prefix, virtual tokens) on its first forward.
    const room = positionsLeft(model.config.maxPositionEmbeddings, cache.length + model.virtualTokens(), promptIds.length, maxNew);
    let input = Int32Array.from(promptIds);
    while (out.length < maxNew) {
      if (out.length === room) return { tokenIds: out, stopReason: 'max_position_embeddings' };
      const logits = noGrad(() => tidy(() => {
        const h = model.forward(input, { kvCache: cache, kernels: opts.kernels }).hidden; // [1, T, C]
        return model.logits(h.slice(1, input.length - 1, input.length), { kernels: opts.kernels }).data.slice(); // [V]
      }));
      const next = sampleToken(logits, opts, rng);
      out.push(next);
      yield next;
      if (stop.has(next)) return { tokenIds: out, stopReason: 'stop' };
      input = Int32Array.of(next);
    }
    return { tokenIds: out, stopReason: 'length' };
  } finally {
    cache.dispose();
  }
}

/**
 * Turns a growing token list into text deltas: the decoded text is re-derived each step and only a
 * stable suffix is emitted (held back while it ends in an incomplete UTF-8 sequence, U+FFFD), as
 * transformers' TextStreamer does.
 */
export class TextStream {
  readonly #ids: number[] = [];
  #emitted = '';
  constructor(readonly tokenizer: Tokenizer) {}

  push(id: number): string {
    this.#ids.push(id);
    const text = this.tokenizer.decode(this.#ids, { skipSpecialTokens: true });
    if (text.endsWith('\uFFFD') || !text.startsWith(this.#emitted)) return '';
    const delta = text.slice(this.#emitted.length);
    this.#emitted = text;
    return delta;
  }

  /** What is left to print once generation ended (the final decode's unprinted tail). */
  flush(): string {
    const text = this.tokenizer.decode(this.#ids, { skipSpecialTokens: true });
    const rest = text.startsWith(this.#emitted) ? text.slice(this.#emitted.length) : '';
    this.#emitted = text;
    return rest;
  }
}
