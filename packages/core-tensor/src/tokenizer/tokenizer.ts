/**
 * Text <-> token ids for a Hugging Face model folder: `tokenizer.json` run by @huggingface/tokenizers
 * (pure JS: BPE / byte-level / SentencePiece-style models, post-processors adding BOS as the file says),
 * special tokens from tokenizer_config.json, stop ids from generation_config.json / config.json, and
 * chat templates (chat-template.ts). Encoding with special tokens is what transformers'
 * `tokenizer(text)` does; a rendered chat is encoded without them (the template writes its own BOS),
 * as `apply_chat_template(tokenize=True)` does.
 * Not here: datasets, padding and batching (data/), slow `tokenizer.model`-only folders (unsupported).
 */
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { inputError, PeftError } from '../errors.js';
import { readTextFile } from '../io/regular-file.js';
import { findChatTemplate, renderChatTemplate, renderConversations, type ChatMessage, type ChatTemplateOptions,
  type ConversationRender } from './chat-template.js';
import { cutAtEverySpace, pieces, PIECE_CHARS, PROBE_TEXT } from './pieces.js';

type Json = Record<string, unknown>;

/** The JSON files a tokenizer is built from (only tokenizer.json is required). */
export interface TokenizerFiles {
  /** tokenizer.json */
  tokenizer: Json;
  /** tokenizer_config.json */
  config?: Json;
  /** the model's config.json (bos / eos ids when the tokenizer files lack them) */
  modelConfig?: Json;
  /** generation_config.json (eos_token_id: the ids generation stops at) */
  generationConfig?: Json;
  /** chat_template.jinja, which transformers prefers to tokenizer_config.json's chat_template */
  chatTemplate?: string;
}

async function readJson(path: string, required: boolean): Promise<Json | undefined> {
  let text: string;
  try {
    text = await readTextFile(path); // regular files only: a FIFO must not block
  } catch (e) {
    if (!required && e instanceof PeftError && e.code === 'E_NOT_FOUND') return undefined;
    throw e;
  }
  try {
    const v: unknown = JSON.parse(text);
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Json;
  } catch (e) {
    throw inputError('E_FORMAT', `not a valid JSON object (${(e as Error).message.split('\n')[0]})`, path);
  }
}

/** A special token as tokenizer_config.json writes it: a string or an AddedToken dict {content, ...}. */
function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return undefined;
}

function ids(v: unknown): number[] {
  const list = Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
  return list.filter((x): x is number => Number.isSafeInteger(x) && (x as number) >= 0);
}

export class Tokenizer {
  readonly #hf: HfTokenizer;
  readonly #files: TokenizerFiles;
  readonly bosToken: string | undefined;
  readonly eosToken: string | undefined;
  readonly bosTokenId: number | undefined;
  /** Every id generation stops at: generation_config.json, config.json and the tokenizer's eos_token. */
  readonly eosTokenIds: readonly number[];
  readonly padTokenId: number | undefined;
  /** The Jinja chat template, if the folder has one. */
  readonly chatTemplate: string | undefined;
  /** The file the template comes from (errors name it). */
  readonly chatTemplateSource: string;
  /** Special ids encode() adds around a text (BOS ...), when long texts may be encoded in pieces. */
  #frame: { prefix: number[]; suffix: number[] } | null | undefined;

  /** `where` names the source in errors (a folder path). */
  constructor(files: TokenizerFiles, readonly where = 'tokenizer.json') {
    this.#files = files;
    try {
      this.#hf = new HfTokenizer(files.tokenizer, files.config ?? {});
    } catch (e) {
      throw inputError('E_FORMAT', `tokenizer.json cannot be loaded: ${(e as Error).message}`, where);
    }
    const cfg = files.config ?? {};
    this.bosToken = tokenText(cfg.bos_token);
    this.eosToken = tokenText(cfg.eos_token);
    const idOf = (t: string | undefined) => (t === undefined ? undefined : this.#hf.token_to_id(t));
    this.bosTokenId = idOf(this.bosToken) ?? ids(files.modelConfig?.bos_token_id)[0];
    const eos = [...ids(files.generationConfig?.eos_token_id), ...ids(files.modelConfig?.eos_token_id), idOf(this.eosToken)];
    this.eosTokenIds = [...new Set(eos.filter((x): x is number => x !== undefined))];
    this.padTokenId = idOf(tokenText(cfg.pad_token)) ?? ids(files.generationConfig?.pad_token_id)[0];
    this.chatTemplate = findChatTemplate(files.chatTemplate, cfg, where);
    this.chatTemplateSource = join(where, files.chatTemplate !== undefined ? 'chat_template.jinja' : 'tokenizer_config.json');
  }

  /** tokenizer.json (+ tokenizer_config.json, config.json, generation_config.json, chat_template.jinja) of a folder. */
  static async fromFolder(dir: string): Promise<Tokenizer> {
    const tokenizer = await readJson(join(dir, 'tokenizer.json'), false);
    if (!tokenizer) throw inputError('E_NOT_FOUND', 'no tokenizer.json (only fast tokenizers are supported)', dir);
    let chatTemplate: string | undefined;
    try {
      chatTemplate = await readTextFile(join(dir, 'chat_template.jinja'));
    } catch (e) {
      if (!(e instanceof PeftError && e.code === 'E_NOT_FOUND')) throw e;
    }
    return new Tokenizer({
      tokenizer, chatTemplate,
      config: await readJson(join(dir, 'tokenizer_config.json'), false),
      modelConfig: await readJson(join(dir, 'config.json'), false),
      generationConfig: await readJson(join(dir, 'generation_config.json'), false),
    }, dir);
  }

  /**
   * Token ids of text; with special tokens (default) the post-processor adds BOS etc. as tokenizer.json
   * says. A text longer than PIECE_CHARS is encoded piece by piece (pieces.ts) when this tokenizer
   * encodes a probe cut that way exactly as whole, so a long row never costs the tokenizer's
   * per-character working memory for all of it at once; otherwise it is encoded whole.
   */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    const special = opts.addSpecialTokens ?? true;
    const frame = text.length > PIECE_CHARS ? this.#piecewiseFrame() : null;
    if (!frame) return this.#hf.encode(text, { add_special_tokens: special }).ids;
    const ids: number[] = special ? frame.prefix.slice() : [];
    for (const piece of pieces(text, PIECE_CHARS)) {
      for (const id of this.#hf.encode(piece, { add_special_tokens: false }).ids) ids.push(id);
    }
    if (special) for (const id of frame.suffix) ids.push(id);
    return ids;
  }

  /**
   * The special ids around an encoding (prefix + plain ids + suffix = encode with special tokens), or
   * null when encoding in pieces would change the ids (checked once, on PROBE_TEXT: e.g. a normalizer
   * that prepends "▁" to every input).
   */
  #piecewiseFrame(): { prefix: number[]; suffix: number[] } | null {
    if (this.#frame !== undefined) return this.#frame;
    const plain = this.#hf.encode(PROBE_TEXT, { add_special_tokens: false }).ids;
    const withSpecial = this.#hf.encode(PROBE_TEXT, { add_special_tokens: true }).ids;
    const cut: number[] = [];
    for (const piece of cutAtEverySpace(PROBE_TEXT)) for (const id of this.#hf.encode(piece, { add_special_tokens: false }).ids) cut.push(id);
    const same = (a: readonly number[], b: readonly number[], at = 0) => b.every((x, i) => a[at + i] === x);
    let at = -1;
    for (let k = 0; k + plain.length <= withSpecial.length && at < 0; k++) if (same(withSpecial, plain, k)) at = k;
    const ok = at >= 0 && cut.length === plain.length && same(cut, plain);
    this.#frame = ok ? { prefix: withSpecial.slice(0, at), suffix: withSpecial.slice(at + plain.length) } : null;
    return this.#frame;
  }

  decode(tokenIds: ArrayLike<number>, opts: { skipSpecialTokens?: boolean } = {}): string {
    if (tokenIds.length === 0) return ''; // tokenizers.js refuses an empty list
    return this.#hf.decode(Array.from(tokenIds), { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.#hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.#hf.id_to_token(id);
  }

  /** Number of ids the tokenizer can produce (vocabulary plus added tokens): the highest id + 1. */
  get vocabSize(): number {
    let max = -1;
    for (const id of this.#hf.get_vocab(true).values()) max = Math.max(max, id);
    return max + 1;
  }

  /** transformers' apply_chat_template(tokenize=False): the rendered prompt text (bounded render, chat-template.ts). */
  async applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): Promise<string> {
    return renderChatTemplate(this.#template(), messages, this.#specialTokens(), opts, this.chatTemplateSource);
  }

  /** apply_chat_template(tokenize=True): the rendered text encoded WITHOUT adding special tokens again. */
  async encodeChat(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): Promise<number[]> {
    return this.encode(await this.applyChatTemplate(messages, opts), { addSpecialTokens: false });
  }

  /** Training conversations rendered whole and up to each assistant turn (data/chat.ts); failures in place. */
  renderConversations(conversations: readonly (readonly ChatMessage[])[]): Promise<(ConversationRender | PeftError)[]> {
    return renderConversations(this.#template(), conversations, this.#specialTokens(), this.chatTemplateSource);
  }

  #template(): string {
    if (this.chatTemplate === undefined) {
      throw new PeftError('E_INPUT', `${this.where}: the tokenizer has no chat template (tokenizer_config.json chat_template)`);
    }
    return this.chatTemplate;
  }

  /** bos_token, eos_token, unk_token, pad_token, ... as strings: the variables transformers gives a template. */
  #specialTokens(): Record<string, string> {
    const out: Record<string, string> = {};
    const cfg = this.#files.config ?? {};
    for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token']) {
      const t = tokenText(cfg[key]);
      if (t !== undefined) out[key] = t;
    }
    return out;
  }
}
