/**
 * data/: JSONL training datasets for `peft train` (text, prompt/completion, chat messages) tokenized
 * into Examples with HF-convention labels, a seeded train/val split, and per-epoch seeded batches
 * (padded or packed), and the windows `peft eval` scores long texts in (windows.ts). Not here: the training loop
 * (train/), the eval command's data (tasks/eval-data.ts).
 */
export { IGNORE_INDEX, type Batch, type DataFormat, type Dataset, type DatasetStats, type Example } from './example.js';
export { loadDataset, type LoadDatasetOptions } from './dataset.js';
export { batchesFor, type BatchOptions } from './batch.js';
export { padIdFor, eosIdOf } from './tokenize.js';
export { MAX_ROW_BYTES, readLines, type FileFingerprint } from './lines.js';
export { rollingWindows, stridedWindows, type Window } from './windows.js';
