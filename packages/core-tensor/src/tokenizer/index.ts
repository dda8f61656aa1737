/**
 * tokenizer/: Hugging Face fast tokenizers (tokenizer.json) for encode / decode, special and stop
 * token ids, and chat templates. Not here: datasets, padding, batching (data/).
 */
export { Tokenizer, type TokenizerFiles } from './tokenizer.js';
export { findChatTemplate, renderChatTemplate, type ChatMessage, type ChatTemplateOptions } from './chat-template.js';
