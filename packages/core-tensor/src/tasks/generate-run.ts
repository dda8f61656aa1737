/**
 * `peft generate` as a library call: load a model folder and its tokenizer, optionally apply an
 * adapter, encode the prompt (raw, or as one user turn through the chat template, rendered bounded),
 * generate with the KV cache and stream text deltas to a callback. The model's positions bound the
 * prompt and the generation (positions.ts).
 */
import type { TrainKernels } from '../backend/train-kernels.js';
import { PeftError } from '../errors.js';
import { Llama } from '../models/llama.js';
import type { QuantizerLookup } from '../quant/format.js';
import { Tokenizer } from '../tokenizer/tokenizer.js';
import { generateTokens, TextStream, type SamplingOptions, type StopReason } from './generate.js';

/** Applies an adapter to a loaded base model (the CLI builds one from a method plugin). */
export type ApplyAdapter = (model: Llama) => Promise<void> | void;

export interface GenerateTaskOptions extends SamplingOptions {
  modelDir: string;
  prompt: string;
  /** Wrap the prompt as a user message with the chat template and add the generation prompt. */
  chat?: boolean;
  maxNewTokens?: number;
  applyAdapter?: ApplyAdapter;
  kernels?: TrainKernels;
  /** Finds a quantized model's quantizer (the CLI passes its registry; default: the built-in bitsandbytes ones). */
  quantizers?: QuantizerLookup;
  /** Each piece of text as soon as it is stable. */
  onText?: (delta: string) => void;
}

export interface GenerateSummary {
  text: string;
  /** New token ids (a final stop token included). */
  tokenIds: number[];
  promptTokenIds: number[];
  /** "max_position_embeddings": prompt + new tokens filled the model's positions (positions.ts) */
  stopReason: StopReason;
  /** the model's max_position_embeddings */
  maxPositions: number;
  seconds: number;
  tokensPerSecond: number;
}

/** The model and tokenizer of a folder, checked to agree on the vocabulary. */
export async function loadForInference(
  modelDir: string, applyAdapter?: ApplyAdapter, quantizers?: QuantizerLookup,
): Promise<{ model: Llama; tokenizer: Tokenizer }> {
  const tokenizer = await Tokenizer.fromFolder(modelDir);
  const model = await Llama.fromFolder(modelDir, { quantizers });
  if (tokenizer.vocabSize > model.config.vocabSize) {
    model.dispose();
    throw new PeftError('E_FORMAT', `${modelDir}: the tokenizer has ${tokenizer.vocabSize} ids, the model's vocab_size is ${model.config.vocabSize}`);
  }
  await applyAdapter?.(model);
  return { model, tokenizer };
}

export async function runGenerate(o: GenerateTaskOptions): Promise<GenerateSummary> {
  const { model, tokenizer } = await loadForInference(o.modelDir, o.applyAdapter, o.quantizers);
  try {
    const promptTokenIds = o.chat
      ? await tokenizer.encodeChat([{ role: 'user', content: o.prompt }], { addGenerationPrompt: true })
      : tokenizer.encode(o.prompt);
    const stream = new TextStream(tokenizer);
    const t0 = performance.now();
    const gen = generateTokens(model, promptTokenIds, {
      ...o, stopTokenIds: tokenizer.eosTokenIds.length > 0 ? tokenizer.eosTokenIds : model.config.eosTokenIds,
    });
    let step = gen.next();
    while (!step.done) {
      const delta = stream.push(step.value);
      if (delta) o.onText?.(delta);
      step = gen.next();
    }
    const rest = stream.flush();
    if (rest) o.onText?.(rest);
    const seconds = (performance.now() - t0) / 1000;
    const { tokenIds, stopReason } = step.value;
    return {
      text: tokenizer.decode(tokenIds, { skipSpecialTokens: true }), tokenIds, promptTokenIds, stopReason,
      maxPositions: model.config.maxPositionEmbeddings, seconds, tokensPerSecond: seconds > 0 ? tokenIds.length / seconds : 0,
    };
  } finally {
    model.dispose();
  }
}
