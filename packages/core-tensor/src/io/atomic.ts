/**
 * Atomic output folders: a command writes into a hidden sibling temp folder and renames it into
 * place only when everything succeeded, so a failed or interrupted run leaves nothing behind and
 * an existing output is replaced (with --force) only by a complete one.
 * The temp folder sits in the same parent so the final rename never crosses filesystems.
 * Not here: what goes into the folder (writers), single-file outputs.
 */
import { constants as fsc, promises as fsp, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { inputError } from '../errors.js';
import type { ModelFolder } from './model-folder.js';
import { fsError } from './safetensors-reader.js';

export interface AtomicOptions {
  /** Replace an existing output. */
  force?: boolean;
}

async function exists(path: string): Promise<boolean> {
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

/** Creates the parent if needed and checks it is writable, before any work is done. */
async function ensureWritableParent(parent: string): Promise<void> {
  try {
    await fsp.mkdir(parent, { recursive: true });
  } catch (e) {
    throw inputError('E_IO', `cannot create the output's parent folder (${(e as NodeJS.ErrnoException).code ?? 'error'})`, parent);
  }
  try {
    await fsp.access(parent, fsc.W_OK | fsc.X_OK);
  } catch {
    throw inputError('E_IO', 'the output folder cannot be created here: parent folder is not writable', parent);
  }
}

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/**
 * On SIGINT/SIGTERM, removes `tmp` synchronously (the process may end right after), then, when no
 * one else listens for the signal, re-raises it so the process still dies the way it would have.
 * Returns the function that uninstalls the handlers.
 */
function cleanupOnSignal(tmp: string): () => void {
  const handlers = SIGNALS.map((sig) => {
    const h = () => {
      rmSync(tmp, { recursive: true, force: true });
      uninstall();
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, h);
    return [sig, h] as const;
  });
  const uninstall = () => {
    for (const [sig, h] of handlers) process.off(sig, h);
  };
  return uninstall;
}

const tag = () => `${process.pid}-${randomBytes(4).toString('hex')}`;

/**
 * Runs `fn(tmpDir)` and moves tmpDir to `outDir` when it resolves. Fails with E_EXISTS before any
 * work if outDir exists and !force; with E_IO if its parent cannot be written.
 */
export async function withAtomicOutput<T>(outDir: string, opts: AtomicOptions, fn: (tmpDir: string) => Promise<T>): Promise<T> {
  const out = resolve(outDir);
  const parent = dirname(out);
  const name = basename(out);
  if (!opts.force && (await exists(out))) throw inputError('E_EXISTS', `${outDir} exists; pass --force to replace it`);
  await ensureWritableParent(parent);
  const tmp = join(parent, `.${name}.peft-tmp-${tag()}`);
  try {
    await fsp.mkdir(tmp);
  } catch (e) {
    throw fsError(e, tmp, 'creating a temporary folder');
  }
  const uninstall = cleanupOnSignal(tmp);
  try {
    const result = await fn(tmp);
    await moveIntoPlace(tmp, out, outDir, !!opts.force);
    return result;
  } catch (e) {
    await fsp.rm(tmp, { recursive: true, force: true }).catch(() => {});
    throw e;
  } finally {
    uninstall();
  }
}

/** Renames tmp to out; an existing out (force) is moved aside first and deleted only once the new one is in. */
async function moveIntoPlace(tmp: string, out: string, shown: string, force: boolean): Promise<void> {
  const old = (await exists(out)) ? join(dirname(out), `.${basename(out)}.peft-old-${tag()}`) : undefined;
  // Something may have created the output while we worked; never clobber it without --force.
  if (old && !force) throw inputError('E_EXISTS', `${shown} exists; pass --force to replace it`);
  try {
    if (old) await fsp.rename(out, old);
    try {
      await fsp.rename(tmp, out);
    } catch (e) {
      if (old) await fsp.rename(old, out).catch(() => {});
      throw e;
    }
  } catch (e) {
    throw fsError(e, out, 'moving the finished output into place');
  }
  if (old) await fsp.rm(old, { recursive: true, force: true });
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
