/**
 * Examples -> Batches for one epoch. The order is the seeded epoch permutation (shuffle.ts) or file
 * order (validation); it is never sorted by length. Unpacked: batchSize examples per batch, each row
 * right-padded to the batch's longest (pad id, label -100). Packed: the epoch's examples concatenated
 * into one stream cut into rows of exactly seqLen, as TRL's ConstantLengthDataset does; a cut may split
 * an example (its labels move with its ids; the first token of a row is context only). Unlike TRL the
 * short tail row is padded, not dropped. The last batch may hold fewer than batchSize rows.
 * Attention is not masked across packed examples (as TRL's ConstantLengthDataset).
 */
import { inputError } from '../errors.js';
import { IGNORE_INDEX, scoredLabels, type Batch, type Example } from './example.js';
import { epochOrder } from './shuffle.js';

export interface BatchOptions {
  batchSize: number;
  seqLen: number;
  seed: number;
  epoch: number;
  /** default true; false keeps the given order (validation) */
  shuffle?: boolean;
  packing?: boolean;
  padId: number;
}

interface Row {
  ids: Int32Array;
  labels: Int32Array;
}

/** Rows [B] padded to T into one Batch. */
function padBatch(rows: readonly Row[], T: number, padId: number): Batch {
  const B = rows.length;
  const inputIds = new Int32Array(B * T).fill(padId);
  const labels = new Int32Array(B * T).fill(IGNORE_INDEX);
  let trainedTokens = 0;
  rows.forEach((r, b) => {
    inputIds.set(r.ids, b * T);
    labels.set(r.labels, b * T);
    trainedTokens += scoredLabels(r.labels);
  });
  return { inputIds, labels, B, T, trainedTokens };
}

/** The examples as one stream, cut into rows of seqLen (the last one possibly shorter). */
function packRows(examples: readonly Example[], seqLen: number): Row[] {
  let total = 0;
  for (const ex of examples) total += ex.ids.length;
  const ids = new Int32Array(total);
  const labels = new Int32Array(total);
  let at = 0;
  for (const ex of examples) {
    ids.set(ex.ids, at);
    labels.set(ex.labels, at);
    at += ex.ids.length;
  }
  const rows: Row[] = [];
  for (let s = 0; s < total; s += seqLen) rows.push({ ids: ids.subarray(s, s + seqLen), labels: labels.subarray(s, s + seqLen) });
  return rows;
}

function checkOptions(examples: readonly Example[], o: BatchOptions): void {
  if (!Number.isSafeInteger(o.batchSize) || o.batchSize < 1) throw inputError('E_INPUT', `batch size must be an integer >= 1, got ${o.batchSize}`);
  if (!Number.isSafeInteger(o.seqLen) || o.seqLen < 2) throw inputError('E_INPUT', `seq-len must be an integer >= 2, got ${o.seqLen}`);
  for (const ex of examples) {
    if (ex.ids.length !== ex.labels.length) throw inputError('E_INPUT', `example of line ${ex.line}: ${ex.ids.length} ids but ${ex.labels.length} labels`);
    if (!o.packing && ex.ids.length > o.seqLen) {
      throw inputError('E_INPUT', `example of line ${ex.line} has ${ex.ids.length} tokens, more than seq-len ${o.seqLen} (load the dataset with the same seqLen)`);
    }
  }
}

/** The batches of one epoch (see the module doc). */
export function batchesFor(examples: readonly Example[], opts: BatchOptions): Batch[] {
  checkOptions(examples, opts);
  const ordered = opts.shuffle === false ? examples : Array.from(epochOrder(examples.length, opts.seed, opts.epoch), (i) => examples[i]);
  const rows: readonly Row[] = opts.packing ? packRows(ordered, opts.seqLen) : ordered;
  const batches: Batch[] = [];
  for (let s = 0; s < rows.length; s += opts.batchSize) {
    const group = rows.slice(s, s + opts.batchSize);
    const T = opts.packing ? opts.seqLen : group.reduce((m, r) => Math.max(m, r.ids.length), 0);
    batches.push(padBatch(group, T, opts.padId));
  }
  return batches;
}
