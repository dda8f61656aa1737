export { loadRegistry } from './registry.js';
export { PeftCommand } from './base-command.js';
