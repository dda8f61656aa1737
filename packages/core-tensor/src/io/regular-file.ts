/**
 * Opening input files safely: only regular files are read. A FIFO, a device or a folder where a
 * file is expected is refused by name (exit 2) instead of blocking forever (`open()` of a FIFO
 * waits for a writer; reading /dev/zero never ends). The file is opened with O_NONBLOCK, which
 * makes `open()` of a FIFO return at once and changes nothing for regular files, and is checked
 * with fstat on the handle itself, so there is no window between the check and the read.
 * Also: Git LFS pointer files (a clone without `git lfs pull`) are named as such.
 * Not here: what the bytes mean (safetensors-reader.ts, json-file.ts, yaml-file.ts).
 */
import { constants, promises as fsp, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { inputError, isNoSpace, noSpaceError, PeftError } from '../errors.js';

/** O_NONBLOCK is POSIX; where Node lacks it (Windows) there are no FIFOs to block on. */
const READ_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

/** What a non-regular file is, for the message. */
function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/** Maps a Node fs error to our error codes (missing file -> E_NOT_FOUND, the rest -> E_IO). */
export function fsError(e: unknown, path: string, doing: string): PeftError {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return inputError('E_NOT_FOUND', 'no such file', path);
  if (code === 'EACCES' || code === 'EPERM') return inputError('E_IO', `permission denied while ${doing}`, path);
  if (code === 'EROFS') return inputError('E_IO', `read-only file system while ${doing}`, path);
  if (isNoSpace(e)) return noSpaceError(path, undefined, e);
  return inputError('E_IO', `${doing} failed: ${(e as Error)?.message ?? String(e)}`, path);
}

/** A read handle on `path`, which must be a regular file (E_FORMAT naming what it is otherwise). */
export async function openRegularFile(path: string): Promise<{ fh: FileHandle; size: number }> {
  let fh: FileHandle;
  try {
    fh = await fsp.open(path, READ_FLAGS);
  } catch (e) {
    throw fsError(e, path, 'opening');
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw inputError('E_FORMAT', `is ${kindOf(st)}, expected a regular file`, path);
    return { fh, size: st.size };
  } catch (e) {
    await fh.close().catch(() => {});
    throw e instanceof PeftError ? e : fsError(e, path, 'opening');
  }
}

/** The whole of a regular file (small files: configs, recipes, containers). */
export async function readRegularFile(path: string): Promise<Buffer> {
  const { fh } = await openRegularFile(path);
  try {
    return await fh.readFile();
  } catch (e) {
    throw fsError(e, path, 'reading');
  } finally {
    await fh.close().catch(() => {});
  }
}

/** A regular file as UTF-8 text. */
export async function readTextFile(path: string): Promise<string> {
  return (await readRegularFile(path)).toString('utf8');
}

/** https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md: a pointer file starts with this line. */
export const LFS_POINTER_PREFIX = 'version https://git-lfs.github.com/spec/';

/** Whether `head` (the first bytes of a file) is a Git LFS pointer rather than the file it stands for. */
export function isLfsPointer(head: Uint8Array): boolean {
  const n = LFS_POINTER_PREFIX.length;
  return head.byteLength >= n && Buffer.from(head.buffer, head.byteOffset, n).toString('latin1') === LFS_POINTER_PREFIX;
}

export function lfsPointerError(file: string): PeftError {
  return inputError('E_FORMAT', 'Git LFS pointer, not the file: run git lfs pull', file);
}
