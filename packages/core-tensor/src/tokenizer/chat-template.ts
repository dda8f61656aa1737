/**
 * Chat templates: the Jinja program a model folder ships to turn a conversation into its prompt
 * text, rendered with @huggingface/jinja under transformers' apply_chat_template semantics
 * (tokenization_utils_base.py / utils/chat_template_utils.py): variables `messages`,
 * `add_generation_prompt`, optional `tools` / `documents`, every special token as a string
 * (`bos_token`, `eos_token`, ...) and any extra keyword; `raise_exception` and `strftime_now` are
 * globals. Where the template comes from follows transformers: chat_template.jinja beats
 * tokenizer_config.json's `chat_template`, which may be one string or a list of named templates
 * (the one named "default" is used).
 * Templates run in a worker with a capped heap and step / size / time limits (render-pool.ts,
 * render-worker.ts): a template is code from a downloaded folder, and must not take the process down.
 */
import { inputError, PeftError } from '../errors.js';
import { renderJobs } from './render-pool.js';
import type { JobResult, Turn } from './render-worker.js';

export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

export interface ChatTemplateOptions {
  /** Append the assistant's turn header so the model answers (default false, as transformers). */
  addGenerationPrompt?: boolean;
  tools?: unknown[];
  documents?: unknown[];
  /** Further template variables (transformers' **kwargs). */
  extra?: Record<string, unknown>;
}

/** The template text: the .jinja file's, else tokenizer_config.json's (string, or list with a "default"). */
export function findChatTemplate(file: string | undefined, tokenizerConfig: Record<string, unknown>, where: string): string | undefined {
  if (file !== undefined) return file;
  const t = tokenizerConfig.chat_template;
  if (t === undefined || t === null) return undefined;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const named = t.find((x) => x && typeof x === 'object' && (x as { name?: unknown }).name === 'default') as { template?: unknown } | undefined;
    if (named && typeof named.template === 'string') return named.template;
    throw inputError('E_FORMAT', 'tokenizer_config.json chat_template is a list without a "default" template', where);
  }
  throw inputError('E_FORMAT', 'tokenizer_config.json chat_template must be a string or a list of {name, template}', where);
}

function checkMessages(messages: readonly ChatMessage[]): void {
  messages.forEach((m, i) => {
    if (!m || typeof m.role !== 'string' || typeof m.content !== 'string') {
      throw new PeftError('E_INPUT', `chat message ${i} needs a string "role" and "content"`);
    }
  });
}

/** The variables transformers gives a template, except messages / add_generation_prompt. */
function baseVars(specialTokens: Record<string, string>, opts: ChatTemplateOptions): Record<string, unknown> {
  const vars: Record<string, unknown> = { ...specialTokens, ...opts.extra };
  if (opts.tools !== undefined) vars.tools = opts.tools;
  if (opts.documents !== undefined) vars.documents = opts.documents;
  return vars;
}

/** A failed job as the user reads it; `source` names the template (its file). */
function jobError(r: Extract<JobResult, { ok: false }>, source: string): PeftError {
  if (r.kind === 'limit') return new PeftError('E_INPUT', `${source}: the chat template exceeds a render limit: ${r.message}`);
  if (r.kind === 'parse') return inputError('E_FORMAT', `chat template ${r.message}`, source);
  if (r.kind === 'prefix') return new PeftError('E_INPUT', r.message);
  if (r.kind === 'crash') return new PeftError('E_RUNTIME', `${source}: the chat template renderer failed: ${r.message}`);
  return new PeftError('E_INPUT', `${source}: chat template failed: ${r.message}`);
}

/**
 * The prompt text for messages; a template's raise_exception, and a template past a render limit
 * (RENDER_LIMITS), become an E_INPUT naming `source` (the template's file).
 */
export async function renderChatTemplate(template: string, messages: readonly ChatMessage[], specialTokens: Record<string, string>,
  opts: ChatTemplateOptions, source: string): Promise<string> {
  checkMessages(messages);
  const vars = { ...baseVars(specialTokens, opts), messages, add_generation_prompt: opts.addGenerationPrompt ?? false };
  const [r] = await renderJobs(template, [{ kind: 'render', vars }]);
  if (!r.ok) throw jobError(r, source);
  return r.text;
}

/** A rendered training conversation: its text and, per assistant message, the prefix renders' lengths. */
export interface ConversationRender {
  text: string;
  turns: Turn[];
}

/**
 * Each conversation rendered whole and up to each assistant turn (data/chat.ts), in one round trip
 * to the render worker; a failed one is its PeftError (naming `source`), in place. The list may end
 * early, at a conversation that took the worker down.
 */
export async function renderConversations(template: string, conversations: readonly (readonly ChatMessage[])[],
  specialTokens: Record<string, string>, source: string): Promise<(ConversationRender | PeftError)[]> {
  conversations.forEach(checkMessages);
  const vars = baseVars(specialTokens, {});
  const results = await renderJobs(template, conversations.map((messages) => ({ kind: 'conversation', vars, messages: [...messages] })));
  return results.map((r) => (r.ok ? { text: r.text, turns: r.turns ?? [] } : jobError(r, source)));
}
