/**
 * One error type for the whole core. The CLI maps `exitCode` to the process exit code:
 * 2 = bad usage or bad input (nothing was written), 1 = failure while running.
 * Messages are one line and name the file or tensor at fault.
 * A full disk is a run-time failure (E_NO_SPACE, exit 1: the same command works once space is
 * freed); a read-only or unwritable output location is bad input (E_IO, exit 2).
 */
export type ErrorCode =
  | 'E_INPUT' // bad user input: flags, options, recipe values
  | 'E_FORMAT' // a file that is not what it claims to be (safetensors, config.json, ...)
  | 'E_NOT_FOUND' // a path that does not exist
  | 'E_EXISTS' // an output that exists without --force
  | 'E_IO' // cannot read/write here (permissions, read-only file system, not a folder)
  | 'E_LOCKED' // another peft process is writing the same output
  | 'E_SHAPE' // tensor shape does not fit the model config
  | 'E_NO_SPACE' // the disk (or quota) filled up while writing: exit 1
  | 'E_RUNTIME'; // anything else that failed while working

const INPUT_CODES: ReadonlySet<ErrorCode> = new Set(['E_INPUT', 'E_FORMAT', 'E_NOT_FOUND', 'E_EXISTS', 'E_IO', 'E_LOCKED', 'E_SHAPE']);

export class PeftError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: 1 | 2;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PeftError';
    this.code = code;
    this.exitCode = INPUT_CODES.has(code) ? 2 : 1;
  }
}

/** Bad input (exit 2). `file` is prefixed to the message so the user sees what is wrong where. */
export function inputError(code: Exclude<ErrorCode, 'E_RUNTIME' | 'E_NO_SPACE'>, message: string, file?: string): PeftError {
  return new PeftError(code, file ? `${file}: ${message}` : message);
}

export function isPeftError(e: unknown): e is PeftError {
  return e instanceof PeftError;
}

const NO_SPACE_ERRNOS: ReadonlySet<string> = new Set(['ENOSPC', 'EDQUOT']);

/** A full disk or quota: an errno error (ENOSPC / EDQUOT) or our E_NO_SPACE. */
export function isNoSpace(e: unknown): boolean {
  const code = (e as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && (code === 'E_NO_SPACE' || NO_SPACE_ERRNOS.has(code));
}

/** "no space left on device: PATH (needed about N MiB)" (exit 1); `neededBytes` when the writer can estimate it. */
export function noSpaceError(path: string, neededBytes?: number, cause?: unknown): PeftError {
  const need = neededBytes !== undefined && neededBytes > 0 ? ` (needed about ${Math.max(1, Math.ceil(neededBytes / 2 ** 20))} MiB)` : '';
  return new PeftError('E_NO_SPACE', `no space left on device: ${path}${need}`, { cause });
}
