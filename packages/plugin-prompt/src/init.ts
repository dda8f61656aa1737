/**
 * Where prompt tuning's (and DePT's) virtual tokens start (huggingface/peft v0.20.0
 * src/peft/tuners/prompt_tuning/model.py PromptEmbedding.__init__, training only):
 *   RANDOM        nn.Embedding's default N(0, 1)
 *   SAMPLE_VOCAB  N ids drawn uniformly with replacement from [0, num_embeddings) (the whole vocabulary),
 *                 their rows of the frozen input embedding
 *   TEXT          tokenizer(prompt_tuning_init_text)["input_ids"] (the tokenizer's default
 *                 add_special_tokens=True, so Llama's BOS is included), cut to N if longer, else the whole
 *                 list repeated ceil(N / len) times and cut to N (BOS repeats too); their rows
 * The tokenizer is the base model folder's (PEFT's tokenizer_name_or_path, written as its name). Rows are
 * copied (detached) in the activations' dtype, as PEFT casts them to f32.
 * Not here: the options (options.ts), the encoder (encoders.ts).
 */
import { noGrad, PeftError, Tokenizer, tidy, uniform, type Llama, type Tensor } from '@peft/core-tensor';
import { seedFor, type ParamFactory } from './nn/layers.js';
import type { PromptInitSettings } from './options.js';

/** The TEXT init's ids: `ids` cut to n, or repeated whole and cut (PromptEmbedding.__init__). */
export function textInitIds(ids: readonly number[], n: number): number[] {
  if (ids.length === 0) throw new PeftError('E_INPUT', 'prompt_tuning_init_text tokenizes to no ids');
  if (ids.length >= n) return ids.slice(0, n);
  return new Array<number[]>(Math.ceil(n / ids.length)).fill([...ids]).flat().slice(0, n);
}

/** SAMPLE_VOCAB's ids: n uniform draws from [0, vocab) (torch.randint's range), seeded. */
export function sampledIds(n: number, vocab: number, seed: number): number[] {
  const u = uniform([n], 0, vocab, { seed });
  const ids = Array.from(u.data, (v) => Math.min(vocab - 1, Math.floor(v)));
  u.dispose();
  return ids;
}

/** The frozen input-embedding rows of `ids`, [n * C] values in the model's activation dtype. */
function embeddingRows(model: Llama, ids: readonly number[]): Float32Array | Float64Array {
  return noGrad(() => tidy(() => {
    const rows = model.embed(Int32Array.from(ids));
    return rows.dtype === 'f64' ? Float64Array.from(rows.data) : Float32Array.from(rows.data);
  }));
}

/** The [n, C] trainable virtual tokens for `s` (name: the parameter's PEFT name, for its seed). */
export async function initialTokens(model: Llama, s: PromptInitSettings, n: number, f: ParamFactory, baseModelDir: string, name: string): Promise<Tensor> {
  const C = model.config.hiddenSize;
  if (s.init === 'RANDOM') return f.normal(name, [n, C]);
  let ids: number[];
  if (s.init === 'SAMPLE_VOCAB') ids = sampledIds(n, model.config.vocabSize, seedFor(f.seed, `${name}.sample_vocab`));
  else ids = textInitIds((await Tokenizer.fromFolder(baseModelDir)).encode(s.text!), n);
  return f.values(embeddingRows(model, ids), [n, C]);
}
