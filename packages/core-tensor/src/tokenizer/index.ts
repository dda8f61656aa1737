/**
 * tokenizer/: Hugging Face fast tokenizers (tokenizer.json) for encode / decode, special and stop
 * token ids, and chat templates (rendered in a bounded worker). Not here: datasets, padding, batching (data/).
 */
export { Tokenizer, type TokenizerFiles } from './tokenizer.js';
export {
  findChatTemplate, renderChatTemplate, renderConversations, type ChatMessage, type ChatTemplateOptions, type ConversationRender,
} from './chat-template.js';
export { RENDER_HEAP_MIB, RENDER_LIMITS } from './render-pool.js';
export type { RenderLimits, Turn } from './render-worker.js';
