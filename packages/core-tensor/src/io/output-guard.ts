/**
 * What every command does with its --out before it reads anything, and how it writes it:
 * 1. refuse (exit 2, naming both paths) an --out that equals, contains or lies inside any input, or
 *    holds the current folder, after resolving symlinks (inputs that do not exist are left to the
 *    command, which reports them as not found);
 * 2. create its parent if needed and check it is writable (E_IO, exit 2: a read-only location is bad input);
 * 3. take the output's lock (output-lock.ts; a second writer is E_LOCKED, exit 2) and remove temp
 *    folders that dead runs left for this output (atomic.ts);
 * 4. an existing --out is E_EXISTS, or with --force must carry this command's marker (output-marker.ts);
 * 5. `write(fn)` fills an atomic temp folder, adds the marker and renames it into place; a full disk
 *    becomes E_NO_SPACE (exit 1) "no space left on device: OUT (needed about N MiB)".
 * `guardOutput` does 1-3 only, for outputs written into rather than replaced (peft train's run folder).
 * Not here: the rename mechanics (atomic.ts), what goes into the folder (the tasks).
 */
import { promises as fsp } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { inputError, isNoSpace, noSpaceError, PeftError } from '../errors.js';
import { AtomicFolder, ensureWritableParent, pathExists, removeDeadTemps } from './atomic.js';
import { OutputLock } from './output-lock.js';
import { checkReplaceable, writeOutputMarker } from './output-marker.js';

export interface OutputSpec {
  /** The command writing (marker, lock, messages): quantize, merge, compress, compress --decompress, train, ... */
  command: string;
  out: string;
  /** What the command reads: --out may not equal, contain or lie inside any of these. */
  inputs?: readonly (string | undefined)[];
  /** Replace an existing --out (only one this command wrote). */
  force?: boolean;
}

export interface WriteOptions {
  /** Bytes the output needs on disk, for the message when the disk fills up. */
  neededBytes?: () => number;
}

/** `path` with symlinks resolved as far as it exists (the rest appended as given). */
export async function realPathish(path: string): Promise<string> {
  const rest: string[] = [];
  let head = resolve(path);
  for (;;) {
    try {
      return join(await fsp.realpath(head), ...rest);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const up = dirname(head);
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || up === head) return resolve(path);
      rest.unshift(basename(head));
      head = up;
    }
  }
}

const within = (inner: string, outer: string) => inner.startsWith(outer.endsWith(sep) ? outer : outer + sep);

/** Exit 2 when --out equals, contains or lies inside an input, or holds the current folder. */
export async function checkOutsideInputs(out: string, inputs: readonly (string | undefined)[]): Promise<void> {
  if (out.trim() === '') throw inputError('E_INPUT', '--out is empty');
  const o = await realPathish(out);
  for (const input of inputs) {
    if (input === undefined) continue;
    const i = await fsp.realpath(input).catch(() => undefined);
    if (i === undefined) continue; // missing: the command says so when it reads it
    const how = o === i ? 'is' : within(i, o) ? 'contains' : within(o, i) ? 'lies inside' : undefined;
    if (how) throw inputError('E_INPUT', `--out ${out} ${how} the input ${input}: nothing was written (choose an --out outside the inputs)`);
  }
  const cwd = await fsp.realpath(process.cwd()).catch(() => process.cwd());
  if (o === cwd || within(cwd, o)) throw inputError('E_INPUT', `--out ${out} ${o === cwd ? 'is' : 'contains'} the current folder: nothing was written (choose another --out)`);
}

/** An --out being guarded: holds its lock until `close`. */
export class Output {
  #committed = false;
  #closed = false;

  constructor(readonly spec: OutputSpec, readonly path: string, readonly lock: OutputLock, readonly madeParent?: string) {}

  /** The path as the user gave it. */
  get shown(): string {
    return this.spec.out;
  }

  /** Fills a temp folder with `fn`, marks it, renames it into place (replacing an earlier output with --force). */
  async write<T>(fn: (tmp: string) => Promise<T>, w: WriteOptions = {}): Promise<T> {
    const folder = await AtomicFolder.create(this.path, { existing: this.spec.force ? 'replace' : 'refuse' }, this.shown);
    let result: T;
    try {
      result = await fn(folder.tmp);
      await writeOutputMarker(folder.tmp, this.spec.command);
      await folder.commit();
    } catch (e) {
      await folder.abort();
      throw writeError(e, this.shown, w.neededBytes);
    }
    this.#committed = true;
    return result;
  }

  /** Releases the lock; when nothing was written, also removes the empty parent folders it created. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.lock.release();
    if (this.#committed || !this.madeParent) return;
    for (let d = dirname(this.path); ; d = dirname(d)) {
      if (!(await fsp.rmdir(d).then(() => true, () => false)) || d === this.madeParent || dirname(d) === d) break;
    }
  }
}

/**
 * A failure while writing `shown`, as the user should read it: full disk = exit 1 (with the estimate when
 * given; an E_NO_SPACE that already says where is kept without one), read-only / no permission = exit 2.
 */
export function writeError(e: unknown, shown: string, neededBytes?: () => number): unknown {
  if (isNoSpace(e) && (neededBytes || !(e instanceof PeftError))) return noSpaceError(shown, neededBytes?.(), e);
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'EROFS') return inputError('E_IO', 'read-only file system: cannot write the output here', shown);
  if (code === 'EACCES' || code === 'EPERM') return inputError('E_IO', 'permission denied: cannot write the output here', shown);
  return e;
}

/** Steps 1-3: inputs, parent, lock, dead temps. */
export async function guardOutput(spec: OutputSpec): Promise<Output> {
  await checkOutsideInputs(spec.out, spec.inputs ?? []);
  const path = await realPathish(spec.out);
  const made = await ensureWritableParent(dirname(path));
  const lock = await OutputLock.acquire(path, spec.command, spec.out);
  const output = new Output(spec, path, lock, made);
  try {
    await removeDeadTemps(dirname(path), basename(path));
  } catch (e) {
    await output.close();
    throw e;
  }
  return output;
}

/** Steps 1-4, for an output folder that is written whole. */
export async function openOutput(spec: OutputSpec): Promise<Output> {
  const output = await guardOutput(spec);
  try {
    if (await pathExists(output.path)) {
      if (!spec.force) throw inputError('E_EXISTS', `${spec.out} exists; pass --force to replace it`);
      await checkReplaceable(output.path, spec.command, spec.out);
    }
  } catch (e) {
    await output.close();
    throw e;
  }
  return output;
}

/** openOutput, `fn`, close (whatever happens). */
export async function withOutput<T>(spec: OutputSpec, fn: (output: Output) => Promise<T>): Promise<T> {
  const output = await openOutput(spec);
  try {
    return await fn(output);
  } finally {
    await output.close();
  }
}

/** The whole sequence for a command that only writes: open `out`, fill it with `fn(tmp)`, commit. */
export async function withAtomicOutput<T>(out: string, spec: Omit<OutputSpec, 'out'>, fn: (tmp: string) => Promise<T>, w?: WriteOptions): Promise<T> {
  return withOutput({ ...spec, out }, (o) => o.write(fn, w));
}
