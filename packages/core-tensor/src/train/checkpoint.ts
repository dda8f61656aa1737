/**
 * Training checkpoints: outDir/checkpoints/step-<N>/ holds the adapter as job.save writes it (so the
 * folder loads as a PEFT adapter, like an HF Trainer checkpoint), params.safetensors (every trainable
 * tensor by name, exact f32), optimizer.safetensors (the optimizer's state tensors, each with its own dtype and
 * shape, checked against the optimizer's stateSpec() before reading) and trainer_state.json
 * (position in the data, counters, optimizer scalars, the settings a resume must repeat). Each folder is
 * an io/atomic.ts AtomicFolder (filled under a temp name, renamed into place), so a folder named step-<N>
 * is always complete; it keeps its temp folder on SIGINT (the trainer checkpoints precisely when Ctrl-C
 * arrives; a second Ctrl-C ends the process and a later run removes the dead run's temp folder).
 * Old checkpoints are pruned by renaming them aside first, so a kill during pruning never leaves a
 * half-deleted step-<N>.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { bytesOf } from '../dtype.js';
import { inputError, PeftError } from '../errors.js';
import { removeAside, removeDeadTemps, withAtomicFolder, type AtomicOptions } from '../io/atomic.js';
import { readJsonObject } from '../io/json-file.js';
import { writeError } from '../io/output-guard.js';
import { currentOwner, ownerState } from '../io/owner.js';
import { SafetensorsFile } from '../io/safetensors-reader.js';
import { writeSafetensors } from '../io/safetensors-writer.js';
import { stateSpecMismatch, type Optimizer, type OptimizerState, type StateTensor } from '../optim/types.js';
import { settingsMismatch, type Settings } from './plan.js';
import type { TrainJob } from './types.js';

export const CHECKPOINTS_DIR = 'checkpoints';
export const PARAMS_FILE = 'params.safetensors';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const STATE_FILE = 'trainer_state.json';
const STEP_RE = /^step-(\d+)$/;
const FORMAT = 'peft-trainer-state';

export interface TrainerState {
  format: typeof FORMAT;
  version: 1;
  /** Optimizer steps done. */
  step: number;
  /** The epoch being read and the index of its next batch (== its length at an epoch's end). */
  epoch: number;
  batchIndex: number;
  /** Trained tokens and seconds of training up to this step, over every session. */
  tokens: number;
  elapsed: number;
  settings: Settings;
  optimizer: OptimizerState['meta'];
}

/** How the trainer writes its folders (checkpoints, the adapter): it owns the run folder, and Ctrl-C must not delete what it is saving. */
export const TRAINER_WRITES: AtomicOptions = { existing: 'replace', onSignal: 'keep' };

export const checkpointDir = (outDir: string, step: number): string => join(outDir, CHECKPOINTS_DIR, `step-${step}`);

/** Writes the checkpoint of `state` (params and optimizer as they are now); returns its folder. */
export async function writeCheckpoint(outDir: string, job: TrainJob, state: Omit<TrainerState, 'format' | 'version' | 'optimizer'>): Promise<string> {
  const dir = checkpointDir(outDir, state.step);
  const opt = job.optimizer.stateDict();
  const full: TrainerState = { format: FORMAT, version: 1, ...state, optimizer: opt.meta };
  const paramBytes = job.params.reduce((n, [, t]) => n + 4 * t.size, 0);
  const needed = () => 4 * paramBytes; // about: the adapter, params and AdamW's two moments
  await withAtomicFolder(dir, TRAINER_WRITES, async (tmp) => {
    await job.save(tmp);
    await writeSafetensors(join(tmp, PARAMS_FILE),
      job.params.map(([name, t]) => ({ name, dtype: 'F32' as const, shape: [...t.shape], data: t.data })));
    await writeOptimizerState(join(tmp, OPTIMIZER_FILE), opt);
    await fsp.writeFile(join(tmp, STATE_FILE), JSON.stringify(full, null, 2) + '\n');
  }).catch((e) => {
    throw writeError(e, dir, needed);
  });
  return dir;
}

/** Complete checkpoints (renamed into place) by step, oldest first. */
export async function listCheckpoints(outDir: string): Promise<{ step: number; dir: string }[]> {
  const root = join(outDir, CHECKPOINTS_DIR);
  const names = await fsp.readdir(root).catch(() => [] as string[]);
  return names.flatMap((n) => {
    const m = STEP_RE.exec(n);
    return m ? [{ step: Number(m[1]), dir: join(root, n) }] : [];
  }).sort((a, b) => a.step - b.step);
}

/** Deletes all but the newest `keep` checkpoints (renamed aside first). */
export async function pruneCheckpoints(outDir: string, keep: number): Promise<void> {
  const all = await listCheckpoints(outDir);
  for (const c of all.slice(0, Math.max(0, all.length - keep))) await removeAside(c.dir);
}

/** The temp files metrics.ts (METRICS_FILE) and svg.ts (LOSS_SVG) rename into place: `<name>.tmp-<pid>`. */
const FILE_TEMP_RE = /^(metrics\.jsonl|loss\.svg)\.tmp-(\d+)$/;

/** Removes the temp and aside folders (and temp files) that dead runs left in the run folder and its checkpoints. */
export async function removeStaleTemps(outDir: string): Promise<void> {
  await removeDeadTemps(outDir);
  await removeDeadTemps(join(outDir, CHECKPOINTS_DIR));
  for (const n of await fsp.readdir(outDir).catch(() => [] as string[])) {
    const m = FILE_TEMP_RE.exec(n);
    if (m && ownerState({ pid: Number(m[2]), host: currentOwner().host }) === 'dead') await fsp.rm(join(outDir, n), { force: true });
  }
}

function checkState(raw: Record<string, unknown>, file: string): TrainerState {
  const ints = ['step', 'epoch', 'batchIndex'] as const;
  const ok = raw.format === FORMAT && raw.version === 1 && ints.every((k) => Number.isSafeInteger(raw[k]) && (raw[k] as number) >= 0) &&
    typeof raw.tokens === 'number' && typeof raw.elapsed === 'number' &&
    typeof raw.settings === 'object' && raw.settings !== null && typeof raw.optimizer === 'object' && raw.optimizer !== null;
  if (!ok) throw inputError('E_FORMAT', `not a ${FORMAT} version 1 file`, file);
  return raw as unknown as TrainerState;
}

/** Reads a checkpoint's state and refuses it (E_INPUT, naming the option) when its settings differ from `now`. */
export async function readTrainerState(dir: string, now: Settings): Promise<TrainerState> {
  const file = join(dir, STATE_FILE);
  const state = checkState(await readJsonObject(file), file);
  const diff = settingsMismatch(state.settings, now);
  if (diff) {
    const [key, saved, cur] = diff;
    const show = (v: unknown) => (v === undefined ? 'unset' : JSON.stringify(v));
    throw new PeftError('E_INPUT', `cannot resume from ${dir}: ${key} is ${show(cur)} but the checkpoint was trained with ${show(saved)} ` +
      '(resume with the same settings, or start over)');
  }
  return state;
}

/** Loads the optimizer state and copies the checkpoint's params into the job's tensors, all checked first. */
export async function restoreCheckpoint(dir: string, job: TrainJob, state: TrainerState): Promise<void> {
  const params = await SafetensorsFile.open(join(dir, PARAMS_FILE));
  try {
    const names = new Set(job.params.map(([n]) => n));
    for (const t of params.tensors) {
      if (!names.has(t.name)) throw inputError('E_INPUT', `the checkpoint trained "${t.name}", which this run does not train`, params.path);
    }
    for (const [name, t] of job.params) {
      const info = params.get(name);
      if (!info) throw inputError('E_INPUT', `the checkpoint has no "${name}", which this run trains`, params.path);
      if (info.dtype !== 'F32' || info.shape.join(',') !== t.shape.join(',')) {
        throw inputError('E_SHAPE', `"${name}" is ${info.dtype} [${info.shape.join(', ')}], this run has F32 [${t.shape.join(', ')}]`, params.path);
      }
    }
    // the optimizer state is checked and loaded before any param is overwritten: a refused checkpoint changes nothing
    const tensors = await readOptimizerState(join(dir, OPTIMIZER_FILE), job.optimizer);
    job.optimizer.loadStateDict({ tensors, meta: state.optimizer });
    for (const [name, t] of job.params) await params.readInto(name, bytesOf(t.data));
  } finally {
    await params.close();
  }
}

/** optimizer.safetensors: every state tensor under its name, with its own dtype and shape. */
async function writeOptimizerState(path: string, state: OptimizerState): Promise<void> {
  await writeSafetensors(path, [...state.tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: [...t.shape], data: t.data })));
}

/**
 * The state tensors of optimizer.safetensors, after its header is checked against what `optimizer`
 * keeps: a missing, extra, other-dtype or other-shape tensor is refused (exit 2) naming it, before any
 * data is read.
 */
async function readOptimizerState(path: string, optimizer: Optimizer): Promise<Map<string, StateTensor>> {
  const file = await SafetensorsFile.open(path);
  try {
    const bad = stateSpecMismatch(optimizer.stateSpec(), file.tensors.map((t) => [t.name, t] as const));
    if (bad) throw inputError(bad.code, bad.message, file.path);
    const tensors = new Map<string, StateTensor>();
    for (const t of file.tensors) {
      const bytes = await file.read(t.name); // a fresh buffer at offset 0: aligned for the f32 view
      tensors.set(t.name, t.dtype === 'F32'
        ? { dtype: 'F32', shape: t.shape, data: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4) }
        : { dtype: 'U8', shape: t.shape, data: bytes });
    }
    return tensors;
  } finally {
    await file.close();
  }
}
