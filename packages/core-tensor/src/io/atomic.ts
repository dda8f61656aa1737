/**
 * Atomic folders, the one implementation every writer uses: a folder is filled under a hidden
 * sibling temp name, `PARENT/.NAME.peft-tmp-<host>-<pid>-<random>`, and renamed into place only when
 * everything succeeded, so a folder named NAME is always complete and a failed or killed run leaves
 * only a temp name. An existing NAME (replace) is first renamed aside to `.NAME.peft-old-<host>-<pid>-<random>`
 * and deleted once the new one is in; removeAside deletes through `.NAME.peft-del-...` the same way. These
 * names record their owner, so a later run removes those whose owner is dead (removeDeadTemps; an `old`
 * aside whose NAME is missing is put back instead).
 * The temp folder sits in the same parent, so the rename never crosses filesystems.
 * Not here: which folders may be replaced and who may write them (output-guard.ts, output-marker.ts,
 * output-lock.ts), what goes into a folder (writers), single-file outputs.
 */
import { constants as fsc, promises as fsp, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { inputError } from '../errors.js';
import type { ModelFolder } from './model-folder.js';
import { hostTag, onProcessEnd, tagState } from './owner.js';
import { fsError } from './safetensors-reader.js';

export interface AtomicOptions {
  /**
   * An existing folder at the final path: 'refuse' it (E_EXISTS, the default) or 'replace' it. Only a
   * caller that owns it replaces (output-guard.ts checks the marker; the trainer owns its run folder).
   */
  existing?: 'refuse' | 'replace';
  /**
   * The process ending while the folder fills (exit, SIGINT/SIGTERM that nothing else handles): 'remove'
   * the temp folder (the default), or 'keep' it for a later run to remove (the trainer: a second Ctrl-C
   * while it checkpoints ends the process at once).
   */
  onSignal?: 'remove' | 'keep';
}

const TEMP_RE = /^\.(.+)\.peft-(tmp|old|del)-([0-9a-f]{8})-(\d+)-[0-9a-f]{8}$/;
const tag = () => `${hostTag()}-${process.pid}-${randomBytes(4).toString('hex')}`;
/** tmp: being filled (a folder, or a lock file before it is linked); old: a replaced folder until the new one is in; del: being deleted. */
export const tempName = (final: string, kind: 'tmp' | 'old' | 'del') => join(dirname(final), `.${basename(final)}.peft-${kind}-${tag()}`);

/** Whether `name` is a temp or aside folder name of ours (for listings and tests). */
export const isPeftTemp = (name: string): boolean => TEMP_RE.test(name);

export async function pathExists(path: string): Promise<boolean> {
  try {
    await fsp.lstat(path);
    return true;
  } catch (e) {
    // ENOTDIR: a parent is a file; the parent check reports that more clearly.
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw fsError(e, path, 'checking');
  }
}

/**
 * Creates `parent` if needed and checks it is writable, before any work is done. Returns the first
 * folder it created (undefined when all existed), for callers that remove what they made on failure.
 */
export async function ensureWritableParent(parent: string): Promise<string | undefined> {
  let made: string | undefined;
  try {
    made = await fsp.mkdir(parent, { recursive: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'EROFS' ? 'read-only file system' : code ?? 'error';
    throw inputError('E_IO', `cannot create the output's parent folder (${why})`, parent);
  }
  try {
    await fsp.access(parent, fsc.W_OK | fsc.X_OK);
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'EROFS' ? 'read-only file system' : 'parent folder is not writable';
    throw inputError('E_IO', `the output folder cannot be created here: ${why}`, parent);
  }
  return made;
}

/** A folder being filled under a temp name; `commit` renames it into place, `abort` removes it. */
export class AtomicFolder {
  #uninstall: () => void;
  #done = false;

  private constructor(readonly final: string, readonly tmp: string, readonly opts: AtomicOptions, readonly shown: string) {
    // Removed synchronously when the process ends mid-write (exit, or a signal nothing else handles).
    this.#uninstall = opts.onSignal === 'keep' ? () => {} : onProcessEnd(() => rmSync(tmp, { recursive: true, force: true }));
  }

  /** Fails with E_EXISTS before any work when `final` exists and is not to be replaced; E_IO when its parent cannot be written. */
  static async create(final: string, opts: AtomicOptions = {}, shown = final): Promise<AtomicFolder> {
    const out = resolve(final);
    if (opts.existing !== 'replace' && (await pathExists(out))) throw inputError('E_EXISTS', `${shown} exists; pass --force to replace it`);
    await ensureWritableParent(dirname(out));
    const tmp = tempName(out, 'tmp');
    try {
      await fsp.mkdir(tmp);
    } catch (e) {
      throw fsError(e, tmp, 'creating a temporary folder');
    }
    return new AtomicFolder(out, tmp, opts, shown);
  }

  /** Renames the temp folder to the final path; an existing one (replace) is moved aside first and deleted once the new one is in. */
  async commit(): Promise<void> {
    this.#finish();
    const { final, tmp } = this;
    const had = await pathExists(final);
    // Something may have created the output while we worked; never clobber it unless told to.
    if (had && this.opts.existing !== 'replace') {
      await this.#drop();
      throw inputError('E_EXISTS', `${this.shown} exists; pass --force to replace it`);
    }
    const old = had ? tempName(final, 'old') : undefined;
    try {
      if (old) await fsp.rename(final, old);
      try {
        await fsp.rename(tmp, final);
      } catch (e) {
        if (old) await fsp.rename(old, final).catch(() => {});
        throw e;
      }
    } catch (e) {
      await this.#drop();
      throw fsError(e, final, 'moving the finished output into place');
    }
    if (old) await fsp.rm(old, { recursive: true, force: true });
  }

  /** Removes the temp folder (idempotent). */
  async abort(): Promise<void> {
    if (this.#done) return;
    this.#finish();
    await this.#drop();
  }

  #finish(): void {
    this.#done = true;
    this.#uninstall();
  }

  async #drop(): Promise<void> {
    await fsp.rm(this.tmp, { recursive: true, force: true }).catch(() => {});
  }
}

/** Runs `fn(tmp)` in an AtomicFolder for `final` and commits it when fn resolves; removes it when fn throws. */
export async function withAtomicFolder<T>(final: string, opts: AtomicOptions, fn: (tmp: string) => Promise<T>): Promise<T> {
  const folder = await AtomicFolder.create(final, opts);
  let result: T;
  try {
    result = await fn(folder.tmp);
  } catch (e) {
    await folder.abort();
    throw e;
  }
  await folder.commit();
  return result;
}

/**
 * Deletes a folder by renaming it aside first, so a process killed meanwhile leaves a temp name
 * (removed by a later removeDeadTemps), never a half-deleted folder under its real name.
 */
export async function removeAside(path: string): Promise<void> {
  if (!(await pathExists(path))) return;
  const aside = tempName(resolve(path), 'del');
  await fsp.rename(path, aside).catch((e) => {
    throw fsError(e, path, 'removing');
  });
  await fsp.rm(aside, { recursive: true, force: true });
}

/**
 * Removes the temp and aside folders in `parent` (those of `name` only, when given) whose owner is
 * dead: a run killed mid-write. An aside folder whose final name is missing (killed between the two
 * renames of a replacement) is renamed back instead. Owners on other hosts are left alone.
 */
export async function removeDeadTemps(parent: string, name?: string): Promise<void> {
  const names = await fsp.readdir(parent).catch(() => [] as string[]);
  for (const n of names) {
    const m = TEMP_RE.exec(n);
    if (!m || (name !== undefined && m[1] !== name)) continue;
    if (tagState(m[3], Number(m[4])) !== 'dead') continue;
    const path = join(parent, n);
    if (m[2] === 'old' && !(await pathExists(join(parent, m[1])))) {
      await fsp.rename(path, join(parent, m[1])).catch(() => {});
      continue;
    }
    await fsp.rm(path, { recursive: true, force: true }).catch(() => {});
  }
}

/** Copies the model's tokenizer/config side files into `destDir`; returns the names copied. */
export async function copyAuxFiles(model: Pick<ModelFolder, 'dir' | 'auxFiles'>, destDir: string): Promise<string[]> {
  for (const f of model.auxFiles) {
    try {
      await fsp.copyFile(join(model.dir, f), join(destDir, f));
    } catch (e) {
      throw fsError(e, join(model.dir, f), 'copying');
    }
  }
  return [...model.auxFiles];
}
