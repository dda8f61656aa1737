/**
 * The shapes the data pipeline hands to training: one tokenized training sequence (Example), a padded
 * or packed batch of them (Batch), and a loaded dataset with its counts (Dataset).
 * Labels follow Hugging Face's convention: labels[i] is the token AT position i (not the next one);
 * the model shifts (position t is scored on labels[t + 1], as transformers' ForCausalLMLoss and
 * Llama.loss do), and -100 marks a position that is never scored.
 * Not here: reading files (jsonl.ts), tokenizing (tokenize.ts, chat.ts), batching (batch.ts).
 */
import type { FileFingerprint } from './lines.js';

/** The ignore index of transformers' cross-entropy (torch.nn.CrossEntropyLoss ignore_index default). */
export const IGNORE_INDEX = -100;

export type DataFormat = 'text' | 'prompt_completion' | 'messages';

/** One training sequence. */
export interface Example {
  /** [L] token ids */
  ids: Int32Array;
  /** [L] the token to learn at each position, or -100 (not trained); labels[0] is never scored */
  labels: Int32Array;
  /** 1-based line of the JSONL row it came from */
  line: number;
}

/** A batch as the trainer consumes it: row-major [B, T] buffers, right-padded (pad id, label -100). */
export interface Batch {
  /** [B * T] */
  inputIds: Int32Array;
  /** [B * T] */
  labels: Int32Array;
  B: number;
  /** longest row of the batch, or seqLen when packing */
  T: number;
  /** labels != -100 at positions 1..T-1 of each row: the tokens the loss is a mean over */
  trainedTokens: number;
}

export interface DatasetStats {
  /** rows read (training file and, with valFile, the validation file) */
  rows: number;
  trainRows: number;
  valRows: number;
  /** token ids over the training examples */
  tokens: number;
  /** scored labels over the training examples (positions 1.. of each) */
  trainedTokens: number;
  /** rows (train and val) that lost tokens to seqLen */
  truncated: number;
}

export interface Dataset {
  format: DataFormat;
  train: Example[];
  val: Example[];
  stats: DatasetStats;
  /** the training file's size and SHA-256 as read (resume refuses other bytes) */
  fingerprint: FileFingerprint;
  /** the validation file's, when one was given */
  valFingerprint?: FileFingerprint;
}

/** Labels the loss scores in one sequence: position 0 is never predicted (nothing precedes it). */
export function scoredLabels(labels: ArrayLike<number>, from = 0, to = labels.length): number {
  let n = 0;
  for (let i = from + 1; i < to; i++) if (labels[i] !== IGNORE_INDEX) n++;
  return n;
}
