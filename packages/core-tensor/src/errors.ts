/**
 * One error type for the whole core. The CLI maps `exitCode` to the process exit code:
 * 2 = bad usage or bad input (nothing was written), 1 = failure while running.
 * Messages are one line and name the file or tensor at fault.
 */
export type ErrorCode =
  | 'E_INPUT' // bad user input: flags, options, recipe values
  | 'E_FORMAT' // a file that is not what it claims to be (safetensors, config.json, ...)
  | 'E_NOT_FOUND' // a path that does not exist
  | 'E_EXISTS' // an output that exists without --force
  | 'E_IO' // cannot read/write (permissions, disk)
  | 'E_SHAPE' // tensor shape does not fit the model config
  | 'E_RUNTIME'; // anything else that failed while working

const INPUT_CODES: ReadonlySet<ErrorCode> = new Set(['E_INPUT', 'E_FORMAT', 'E_NOT_FOUND', 'E_EXISTS', 'E_IO', 'E_SHAPE']);

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
export function inputError(code: Exclude<ErrorCode, 'E_RUNTIME'>, message: string, file?: string): PeftError {
  return new PeftError(code, file ? `${file}: ${message}` : message);
}

export function isPeftError(e: unknown): e is PeftError {
  return e instanceof PeftError;
}
