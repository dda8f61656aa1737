/**
 * A conversation ({"messages"} row) as token ids with labels on the assistant turns only.
 * The template is a black box, so assistant spans are found by rendering prefixes: for the assistant
 * message i, render messages[:i] with add_generation_prompt (everything up to where the model starts
 * answering) and messages[:i+1] (the turn done); the tokens the second adds beyond the first are the
 * turn's answer, its end-of-turn marker included, and are trained. This needs the template's prefix
 * property (each rendering's tokens begin the whole conversation's tokens); a template or tokenizer
 * that breaks it is an E_INPUT naming the row, never a silently wrong mask.
 * The renders happen in the bounded render worker (tokenizer/render-pool.ts), which returns the
 * conversation's text and each prefix's length (a prefix's text is then a slice of it); their total
 * size is limited (RENDER_LIMITS.conversationChars), as prefix rendering is quadratic in the turns.
 * Templates with {% generation %} markers (transformers' return_assistant_tokens_mask) are not
 * needed, so any template works. Not here: truncation and packing (tokenize.ts).
 */
import { inputError, PeftError } from '../errors.js';
import type { ChatMessage, ConversationRender } from '../tokenizer/chat-template.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { IGNORE_INDEX } from './example.js';

function startsWith(ids: readonly number[], prefix: readonly number[]): boolean {
  if (prefix.length > ids.length) return false;
  for (let i = 0; i < prefix.length; i++) if (ids[i] !== prefix[i]) return false;
  return true;
}

/**
 * The renders of conversations (one round trip to the render worker for all of them), a failure
 * re-thrown naming its row (`where` = file:line).
 */
export async function renderChats(tok: Tokenizer, rows: readonly { messages: readonly ChatMessage[]; where: string }[]): Promise<ConversationRender[]> {
  const results = await tok.renderConversations(rows.map((r) => r.messages));
  const out: ConversationRender[] = [];
  results.forEach((r, i) => {
    if (r instanceof PeftError) throw r.exitCode === 2 ? new PeftError(r.code, `${rows[i].where}: ${r.message}`) : r; // a broken renderer is no row's fault
    out.push(r);
  });
  if (out.length !== rows.length) throw new PeftError('E_RUNTIME', `the chat template renderer answered ${out.length} of ${rows.length} rows`);
  return out;
}

/** ids of the rendered conversation and labels: the ids on assistant turns, -100 elsewhere. */
export function chatExample(tok: Tokenizer, chat: ConversationRender, where: string): { ids: number[]; labels: number[] } {
  const encode = (chars: number) => tok.encode(chat.text.slice(0, chars), { addSpecialTokens: false });
  const ids = encode(chat.text.length);
  const labels = ids.map(() => IGNORE_INDEX);
  for (const turn of chat.turns) {
    const before = encode(turn.before);
    const after = encode(turn.after);
    if (!startsWith(after, before) || !startsWith(ids, after)) {
      throw inputError('E_INPUT', `the chat template does not render messages[:${turn.index}] as a prefix of the conversation ` +
        '(the prefix property fails), so the assistant tokens cannot be located', where);
    }
    if (after.length === before.length) throw inputError('E_INPUT', `messages[${turn.index}] (assistant) renders to no tokens`, where);
    for (let t = before.length; t < after.length; t++) labels[t] = ids[t];
  }
  if (ids.length < 2 || labels.every((l, t) => t === 0 || l === IGNORE_INDEX)) {
    throw inputError('E_INPUT', 'the conversation has no assistant token after its first token: nothing to train', where);
  }
  return { ids, labels };
}
