/**
 * Rows -> Examples for the text and prompt/completion formats, plus the token ids every format
 * shares (EOS, pad). What is trained, and why:
 *  - text: causal LM on every token. Encoded with special tokens (BOS) and EOS appended, as TRL's
 *    SFTTrainer does (trl/trainer/sft_trainer.py `add_eos` appends eos_token to "text").
 *    A text longer than seqLen is split, not dropped: chunks of seqLen overlapping by one token, so
 *    every token after the first is still predicted once (a chunk's first token is only context).
 *  - prompt/completion: loss on the completion only (prompt labels -100). Tokenized as `peft eval`
 *    does (tasks/eval-data.ts): prompt with special tokens, completion without. EOS is appended to the
 *    completion and trained, as TRL's `add_eos` does for "completion", so the model learns to stop;
 *    `peft eval` scores the completion without it. Truncation is eval-data's rule, with EOS counted
 *    as a completion token (a completion cut short loses its EOS: it must not learn to stop there).
 * With packing nothing is cut here (the packer splits rows at seqLen); an example that does not end
 * in EOS gets one appended, unscored, as the separator TRL's ConstantLengthDataset puts between
 * examples (trl/trainer/utils.py `concat_token_id`).
 */
import { inputError, PeftError } from '../errors.js';
import type { ConversationRender } from '../tokenizer/chat-template.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { chatExample } from './chat.js';
import { IGNORE_INDEX, type Example } from './example.js';
import type { DataRow } from './jsonl.js';

export interface TokenizeOptions {
  seqLen: number;
  packing: boolean;
  /** file name for errors (rows carry their line) */
  file: string;
}

/** Examples of one row, and whether the row lost tokens to seqLen. */
export interface RowExamples {
  examples: Example[];
  truncated: boolean;
}

/** The EOS to append: the tokenizer's eos_token (what TRL appends), else the first stop id. */
export function eosIdOf(tok: Tokenizer): number | undefined {
  const own = tok.eosToken === undefined ? undefined : tok.tokenToId(tok.eosToken);
  return own ?? tok.eosTokenIds[0];
}

/** The padding id: the tokenizer's pad token, else EOS, else 0 (padding is never scored). */
export function padIdFor(tok: Tokenizer): number {
  return tok.padTokenId ?? eosIdOf(tok) ?? 0;
}

function example(ids: readonly number[], labels: readonly number[], line: number): Example {
  return { ids: Int32Array.from(ids), labels: Int32Array.from(labels), line };
}

/** text: [BOS] text [EOS], all trained; unpacked, chunks of seqLen sharing one token with the last. */
function textExamples(tok: Tokenizer, text: string, eos: number | undefined, line: number, o: TokenizeOptions): RowExamples {
  const ids = tok.encode(text);
  if (eos !== undefined) ids.push(eos);
  if (ids.length < 2) throw inputError('E_INPUT', 'the text encodes to fewer than 2 tokens: nothing to predict', `${o.file}:${line}`);
  if (o.packing || ids.length <= o.seqLen) return { examples: [example(ids, ids, line)], truncated: false };
  const examples: Example[] = [];
  for (let start = 0; start + 1 < ids.length; start += o.seqLen - 1) {
    const chunk = ids.slice(start, start + o.seqLen);
    examples.push(example(chunk, chunk, line));
  }
  return { examples, truncated: false };
}

/**
 * Prompt ids (with the tokenizer's special tokens, e.g. BOS) and completion ids (without), EOS appended to
 * the completion when given; `where` (file:line) names a row that cannot be scored. Shared with `peft eval`.
 */
export function encodePromptCompletion(tok: Tokenizer, prompt: string, completion: string, where: string, eos?: number): { p: number[]; c: number[] } {
  const p = tok.encode(prompt);
  const c = tok.encode(completion, { addSpecialTokens: false });
  // The first completion token needs a position before it to be predicted from.
  if (p.length === 0) throw inputError('E_INPUT', 'the prompt encodes to no tokens (and the tokenizer adds no BOS)', where);
  if (c.length === 0) throw inputError('E_INPUT', 'the completion encodes to no tokens', where);
  if (eos !== undefined) c.push(eos);
  return { p, c };
}

/**
 * Cuts prompt + completion to seqLen: the prompt loses its start, so the completion is still scored
 * whole; a completion that alone does not fit keeps its first seqLen - 1 tokens after the last prompt token.
 */
export function fitPromptCompletion(p: number[], c: number[], seqLen: number): { p: number[]; c: number[]; truncated: boolean } {
  if (p.length + c.length <= seqLen) return { p, c, truncated: false };
  const cut = c.length >= seqLen ? c.slice(0, seqLen - 1) : c;
  return { p: p.slice(p.length - (seqLen - cut.length)), c: cut, truncated: true };
}

/** prompt (special tokens) + completion [EOS], trained on the completion; cut as `peft eval` cuts. */
function promptCompletionExample(tok: Tokenizer, prompt: string, completion: string, eos: number | undefined,
  line: number, o: TokenizeOptions): RowExamples {
  const enc = encodePromptCompletion(tok, prompt, completion, `${o.file}:${line}`, eos);
  const { p, c, truncated } = o.packing ? { ...enc, truncated: false } : fitPromptCompletion(enc.p, enc.c, o.seqLen);
  return { examples: [example([...p, ...c], [...p.map(() => IGNORE_INDEX), ...c], line)], truncated };
}

/** messages: rendered by the chat template, assistant turns trained (chat.ts); keeps the first seqLen. */
function messagesExample(tok: Tokenizer, row: Extract<DataRow, { format: 'messages' }>, chat: ConversationRender, o: TokenizeOptions): RowExamples {
  const where = `${o.file}:${row.line}`;
  let { ids, labels } = chatExample(tok, chat, where);
  // TRL truncates conversations from the end (keeps input_ids[:max_length]).
  const truncated = !o.packing && ids.length > o.seqLen;
  if (truncated) {
    ids = ids.slice(0, o.seqLen);
    labels = labels.slice(0, o.seqLen);
    if (!labels.some((l, i) => i > 0 && l !== IGNORE_INDEX)) {
      throw inputError('E_INPUT', `no assistant token within the first ${o.seqLen} tokens (raise --seq-len or shorten the conversation)`, where);
    }
  }
  return { examples: [example(ids, labels, row.line)], truncated };
}

/** With packing: an example not already ending in EOS gets one, unscored, as the separator. */
function withSeparator(ex: Example, tok: Tokenizer, eos: number | undefined): Example {
  if (eos === undefined || tok.eosTokenIds.includes(ex.ids[ex.ids.length - 1])) return ex;
  const ids = new Int32Array(ex.ids.length + 1);
  ids.set(ex.ids);
  ids[ex.ids.length] = eos;
  const labels = new Int32Array(ex.labels.length + 1);
  labels.set(ex.labels);
  labels[ex.labels.length] = IGNORE_INDEX;
  return { ids, labels, line: ex.line };
}

/**
 * The examples of one row (E_INPUT naming file:line when the row cannot be trained on); a messages
 * row needs its render (chat.ts renderChats).
 */
export function rowExamples(tok: Tokenizer, row: DataRow, o: TokenizeOptions, chat?: ConversationRender): RowExamples {
  const eos = eosIdOf(tok);
  let out: RowExamples;
  if (row.format === 'text') out = textExamples(tok, row.text, eos, row.line, o);
  else if (row.format === 'prompt_completion') out = promptCompletionExample(tok, row.prompt, row.completion, eos, row.line, o);
  else if (chat) out = messagesExample(tok, row, chat, o);
  else throw new PeftError('E_RUNTIME', `${o.file}:${row.line}: a messages row was tokenized without its render`);
  if (o.packing) out.examples = out.examples.map((ex) => withSeparator(ex, tok, eos));
  return out;
}
