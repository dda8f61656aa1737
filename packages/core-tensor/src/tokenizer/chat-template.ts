/**
 * Chat templates: the Jinja program a model folder ships to turn a conversation into its prompt
 * text, rendered with @huggingface/jinja under transformers' apply_chat_template semantics
 * (tokenization_utils_base.py / utils/chat_template_utils.py): variables `messages`,
 * `add_generation_prompt`, optional `tools` / `documents`, every special token as a string
 * (`bos_token`, `eos_token`, ...) and any extra keyword; `raise_exception` and `strftime_now` are
 * globals. Where the template comes from follows transformers: chat_template.jinja beats
 * tokenizer_config.json's `chat_template`, which may be one string or a list of named templates
 * (the one named "default" is used).
 */
import { Template } from '@huggingface/jinja';
import { inputError, PeftError } from '../errors.js';

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

const parsed = new Map<string, Template>();

function compile(template: string, where: string): Template {
  let t = parsed.get(template);
  if (!t) {
    try {
      t = new Template(template);
    } catch (e) {
      throw inputError('E_FORMAT', `chat template does not parse: ${(e as Error).message}`, where);
    }
    parsed.set(template, t);
  }
  return t;
}

function checkMessages(messages: readonly ChatMessage[]): void {
  messages.forEach((m, i) => {
    if (!m || typeof m.role !== 'string' || typeof m.content !== 'string') {
      throw new PeftError('E_INPUT', `chat message ${i} needs a string "role" and "content"`);
    }
  });
}

/** The prompt text for messages; a template's raise_exception becomes an E_INPUT naming the message. */
export function renderChatTemplate(template: string, messages: readonly ChatMessage[], specialTokens: Record<string, string>,
  opts: ChatTemplateOptions, where: string): string {
  checkMessages(messages);
  const vars: Record<string, unknown> = {
    ...specialTokens, ...opts.extra, messages, add_generation_prompt: opts.addGenerationPrompt ?? false,
  };
  if (opts.tools !== undefined) vars.tools = opts.tools;
  if (opts.documents !== undefined) vars.documents = opts.documents;
  try {
    return compile(template, where).render(vars);
  } catch (e) {
    if (e instanceof PeftError) throw e;
    throw new PeftError('E_INPUT', `${where}: chat template failed: ${(e as Error).message}`);
  }
}
