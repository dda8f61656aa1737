/**
 * The one positions rule of `peft train`, `peft eval` and `peft generate`: a model sees at most
 * max_position_embeddings positions (config.json), as transformers' model_max_length assumes.
 *  - train / eval: --seq-len above it is exit 2; the default seq-len is min(command default, it).
 *  - generate: a prompt that does not fit is exit 2 before any forward pass (so a huge prompt
 *    costs its tokenization only); generation stops when prompt + new tokens fill the positions,
 *    with stopReason "max_position_embeddings" (and a note on stderr from the CLI).
 * The limit is read from config.json before data or weights are touched. Not here: rope tables
 * (models/rope.ts, which refuses positions past it for dynamic NTK scaling).
 */
import { join } from 'node:path';
import { inputError } from '../errors.js';
import { readHfConfig } from '../io/hf-config.js';
import { llamaConfig } from '../models/config.js';

/** max_position_embeddings of a model folder (config.json, with transformers' defaults). */
export async function maxPositionsOf(modelDir: string): Promise<number> {
  return llamaConfig(await readHfConfig(modelDir), join(modelDir, 'config.json')).maxPositionEmbeddings;
}

/** The seq-len to use: the given one (exit 2 above the model's positions), else min(fallback, positions). */
export function resolveSeqLen(seqLen: number | undefined, fallback: number, maxPositions: number, modelDir: string): number {
  if (seqLen === undefined) return Math.min(fallback, maxPositions);
  if (seqLen > maxPositions) {
    throw inputError('E_INPUT', `seq-len ${seqLen} exceeds max_position_embeddings ${maxPositions}`, join(modelDir, 'config.json'));
  }
  return seqLen;
}

/**
 * How many tokens can follow a prompt of `promptTokens` when `used` positions are taken already
 * (a prefix in the cache); a prompt that leaves no room for `wanted` > 0 tokens is exit 2.
 */
export function positionsLeft(maxPositions: number, used: number, promptTokens: number, wanted: number): number {
  const left = maxPositions - used - promptTokens;
  if (left < 0 || (left === 0 && wanted > 0)) {
    throw inputError('E_INPUT', `the prompt is ${promptTokens} tokens${used ? ` after ${used} cached positions` : ''}; the model has ` +
      `max_position_embeddings ${maxPositions}, so no token can follow it (shorten the prompt)`);
  }
  return left;
}
