/**
 * One writer per output: `OutputLock.acquire(out, command)` creates the sibling file
 * `PARENT/.NAME.peft-lock` (it can exist before the output folder does, and it survives the output's
 * rename into place), holding
 *
 *   {"format": "peft-lock", "version": 1, "command": "train", "pid": 4242, "host": "box",
 *    "started": "2025-01-01T10:00:00.000Z", "procStart": "123456"}
 *
 * It is created atomically: written to a temp name, then hard-linked to the lock name (link fails if the
 * lock exists, like O_EXCL, and the lock is never seen half written); where the filesystem has no hard
 * links, opened with O_EXCL ('wx') and filled. A second writer gets E_LOCKED (exit 2) naming the holder.
 * A lock whose holder is dead (same host; pid gone, or reused: /proc start time) is stale and taken over;
 * a lock from another host is never taken over (its liveness cannot be tested from here): the message
 * names the file to remove once that run is gone. Released on return, on error, on exit, and by our
 * signal handlers before they re-raise; a kill -9 leaves a stale lock that the next run takes over.
 * Re-acquiring a lock this process holds nests (runTrain and the trainer both take it).
 * Not here: where the output goes (output-guard.ts), what "alive" means (owner.ts).
 */
import { linkSync, readFileSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { promises as fsp } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { inputError } from '../errors.js';
import { tempName } from './atomic.js';
import { currentOwner, onProcessEnd, ownerState, type Owner } from './owner.js';
import { fsError } from './safetensors-reader.js';

export const LOCK_SUFFIX = '.peft-lock';
const FORMAT = 'peft-lock';
/** A lock file unparsable for this long was left by a writer killed while filling it (filesystems without hard links). */
const TORN_LOCK_MS = 10_000;
const NO_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV']);

export interface LockInfo extends Owner {
  format: typeof FORMAT;
  version: 1;
  command: string;
}

/** The lock file of the output at (resolved) path `out`. */
export const lockPathOf = (out: string): string => join(dirname(out), `.${basename(out)}${LOCK_SUFFIX}`);

function readLock(path: string): { info?: LockInfo; text: string } | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fsError(e, path, 'reading the lock file');
  }
  try {
    const v = JSON.parse(text) as LockInfo;
    if (v && v.format === FORMAT && typeof v.pid === 'number' && typeof v.host === 'string') return { info: v, text };
  } catch {
    // torn or foreign: judged by age
  }
  return { text };
}

/** Creates the lock file holding `text`; false when one exists. */
async function create(path: string, out: string, text: string): Promise<boolean> {
  const tmp = tempName(out, 'tmp');
  try {
    await fsp.writeFile(tmp, text, { flag: 'wx' });
    await fsp.link(tmp, path);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== undefined && NO_LINKS.has(code) && (e as NodeJS.ErrnoException).syscall === 'link') return createExclusive(path, text);
    throw fsError(e, path, 'creating the lock file');
  } finally {
    await fsp.rm(tmp, { force: true }).catch(() => {});
  }
}

/** O_EXCL, then fill (a reader may briefly see it empty); a failed write removes the file. */
async function createExclusive(path: string, text: string): Promise<boolean> {
  let fh;
  try {
    fh = await fsp.open(path, 'wx');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw fsError(e, path, 'creating the lock file');
  }
  try {
    await fh.write(text);
  } catch (e) {
    await fh.close().catch(() => {});
    await fsp.rm(path, { force: true });
    throw fsError(e, path, 'writing the lock file');
  }
  await fh.close();
  return true;
}

/** Moves a stale lock out of the way, unless someone replaced it since we read it (then it is put back). */
function takeOver(path: string, out: string, staleText: string): void {
  const aside = tempName(out, 'del');
  try {
    renameSync(path, aside);
  } catch {
    return; // gone already: another process took it over first
  }
  let same = false;
  try {
    same = readFileSync(aside, 'utf8') === staleText;
  } catch {
    // unreadable: ours to drop
  }
  if (!same) {
    try {
      linkSync(aside, path); // fails if a newer lock appeared meanwhile: then the one we moved loses
    } catch {
      // keep going
    }
  }
  try {
    unlinkSync(aside);
  } catch {
    // already gone
  }
}

const ageOf = (path: string): number => {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return 0;
  }
};

const describe = (info: LockInfo) => `peft ${info.command}, pid ${info.pid} on ${info.host}, since ${info.started}`;

const held = new Map<string, { count: number; release: () => void }>();

export class OutputLock {
  #released = false;

  private constructor(readonly path: string) {}

  /**
   * Takes the lock of the output at `out` (a resolved path; its parent must exist). Throws E_LOCKED
   * naming the holder, or E_IO / E_NO_SPACE when the lock cannot be created.
   */
  static async acquire(out: string, command: string, shown = out): Promise<OutputLock> {
    const path = lockPathOf(out);
    const mine = held.get(path);
    if (mine) {
      mine.count++;
      return new OutputLock(path);
    }
    const info: LockInfo = { format: FORMAT, version: 1, command, ...currentOwner() };
    for (let attempt = 0; !(await create(path, out, JSON.stringify(info) + '\n')); attempt++) {
      if (attempt >= 200) throw inputError('E_LOCKED', `another peft process keeps taking the lock of ${shown} (${path})`);
      const found = readLock(path);
      if (!found) continue; // released meanwhile
      if (!found.info) {
        if (ageOf(path) > TORN_LOCK_MS) takeOver(path, out, found.text);
        else await new Promise((r) => setTimeout(r, 100)); // being filled (no hard links here)
        continue;
      }
      const state = ownerState(found.info);
      if (state === 'dead') {
        takeOver(path, out, found.text);
        continue;
      }
      const how = state === 'unknown' ? `; if that run is gone, remove ${path}` : `; wait for it to finish (lock ${path})`;
      throw inputError('E_LOCKED', `is being written by another peft process (${describe(found.info)})${how}`, shown);
    }
    const release = () => {
      try {
        const now = readLock(path);
        if (now?.info?.pid === info.pid && now.info.started === info.started) unlinkSync(path);
      } catch {
        // already gone
      }
    };
    const unhook = onProcessEnd(release);
    held.set(path, { count: 1, release: () => (unhook(), release()) });
    return new OutputLock(path);
  }

  /** Gives the lock back (sync, idempotent); the file goes when the outermost holder releases. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    const h = held.get(this.path);
    if (!h || --h.count > 0) return;
    held.delete(this.path);
    h.release();
  }
}
