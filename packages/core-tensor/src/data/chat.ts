/**
 * A conversation ({"messages"} row) as token ids with labels on the assistant turns only.
 * The template is a black box, so assistant spans are found by rendering prefixes: for the assistant
 * message i, render messages[:i] with add_generation_prompt (everything up to where the model starts
 * answering) and messages[:i+1] (the turn done); the tokens the second adds beyond the first are the
 * turn's answer, its end-of-turn marker included, and are trained. This needs the template's prefix
 * property (each rendering's tokens begin the whole conversation's tokens); a template or tokenizer
 * that breaks it is an E_INPUT naming the row, never a silently wrong mask.
 * Templates with {% generation %} markers (transformers' return_assistant_tokens_mask) are not
 * needed, so any template works. Not here: truncation and packing (tokenize.ts).
 */
import { inputError, PeftError } from '../errors.js';
import type { ChatMessage, ChatTemplateOptions } from '../tokenizer/chat-template.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { IGNORE_INDEX } from './example.js';

function startsWith(ids: readonly number[], prefix: readonly number[]): boolean {
  if (prefix.length > ids.length) return false;
  for (let i = 0; i < prefix.length; i++) if (ids[i] !== prefix[i]) return false;
  return true;
}

/** encodeChat, with a template error re-thrown naming the row. */
function render(tok: Tokenizer, messages: readonly ChatMessage[], opts: ChatTemplateOptions, where: string): number[] {
  try {
    return tok.encodeChat(messages, opts);
  } catch (e) {
    if (e instanceof PeftError && e.exitCode === 2) throw new PeftError(e.code, `${where}: ${e.message}`);
    throw e;
  }
}

/** ids of the rendered conversation and labels: the ids on assistant turns, -100 elsewhere. */
export function chatExample(tok: Tokenizer, messages: readonly ChatMessage[], where: string): { ids: number[]; labels: number[] } {
  const ids = render(tok, messages, {}, where);
  const labels = ids.map(() => IGNORE_INDEX);
  messages.forEach((m, i) => {
    if (m.role !== 'assistant') return;
    const before = render(tok, messages.slice(0, i), { addGenerationPrompt: true }, where);
    const after = render(tok, messages.slice(0, i + 1), {}, where);
    if (!startsWith(after, before) || !startsWith(ids, after)) {
      throw inputError('E_INPUT', `the chat template does not render messages[:${i}] as a prefix of the conversation ` +
        '(the prefix property fails), so the assistant tokens cannot be located', where);
    }
    if (after.length === before.length) throw inputError('E_INPUT', `messages[${i}] (assistant) renders to no tokens`, where);
    for (let t = before.length; t < after.length; t++) labels[t] = ids[t];
  });
  if (ids.length < 2 || labels.every((l, t) => t === 0 || l === IGNORE_INDEX)) {
    throw inputError('E_INPUT', 'the conversation has no assistant token after its first token: nothing to train', where);
  }
  return { ids, labels };
}
