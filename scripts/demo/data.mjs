#!/usr/bin/env node
/**
 * Writes the demo's data, deterministically (same seeds -> byte-identical files):
 *   <out>/task-a/{train,test}.jsonl   add one (tasks.mjs)
 *   <out>/task-b/{train,test}.jsonl   reverse the digits
 * and, on request, the pretraining text as {"text"} rows (a few MB, so generated where it is needed,
 * not committed). `node scripts/demo/data.mjs [--out demo/data]` rewrites the committed task files.
 * Self-contained (no build needed), so tests import it directly.
 * Not here: the sentence templates (corpus.mjs), the rules (tasks.mjs), pretraining (pretrain.mjs).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { corpus } from './corpus.mjs';
import { Rng } from './rng.mjs';
import { addOneTask, reverseTask } from './tasks.mjs';

export const SEEDS = { taskA: 101, taskB: 202, pretrain: 303, pretrainVal: 304 };
export const SIZES = { taskA: { train: 719, test: 180 }, taskB: { train: 720, test: 180 } };
/** Characters of pretraining text: 3M byte-level tokens, which pretrain.mjs passes over twice. */
export const PRETRAIN_CHARS = 3_000_000;
export const PRETRAIN_VAL_CHARS = 60_000;

export const jsonl = (rows) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

/** { "task-a/train.jsonl": text, ... } for the committed task files. */
export function taskFiles() {
  const a = addOneTask(new Rng(SEEDS.taskA));
  const b = reverseTask(new Rng(SEEDS.taskB));
  return {
    'task-a/train.jsonl': jsonl(a.train), 'task-a/test.jsonl': jsonl(a.test),
    'task-b/train.jsonl': jsonl(b.train), 'task-b/test.jsonl': jsonl(b.test),
  };
}

/** The pretraining and validation text as {"text"} JSONL. */
export function pretrainFiles(chars = PRETRAIN_CHARS) {
  const toRows = (docs) => jsonl(docs.map((text) => ({ text })));
  return {
    'pretrain/train.jsonl': toRows(corpus(new Rng(SEEDS.pretrain), chars)),
    'pretrain/val.jsonl': toRows(corpus(new Rng(SEEDS.pretrainVal), PRETRAIN_VAL_CHARS)),
  };
}

export function writeFiles(outDir, files) {
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(outDir, name, '..'), { recursive: true });
    writeFileSync(join(outDir, name), text);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { out: { type: 'string' }, pretrain: { type: 'boolean' } } });
  const out = resolve(values.out ?? join(import.meta.dirname, '../../demo/data'));
  writeFiles(out, values.pretrain ? pretrainFiles() : taskFiles());
  console.log(`wrote ${values.pretrain ? 'pretraining text' : 'task files'} under ${out}`);
}
