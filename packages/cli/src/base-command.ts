/**
 * What every `peft` command shares: `--json`, and the mapping of failures to exit codes
 * (2 = bad usage or input, 1 = failure while running) with exactly one line on stderr
 * (or a JSON error object on stdout under --json). DEBUG=1 adds the stack.
 */
import { Command } from '@oclif/core';

interface Failure extends Error {
  exitCode?: number;
  code?: string;
  oclif?: { exit?: number };
}

/** Core errors carry `exitCode`; oclif's parse errors carry `oclif.exit` (2); anything else is 1. */
function exitCodeOf(err: Failure): number {
  if (err.name === 'PeftError' && typeof err.exitCode === 'number') return err.exitCode;
  if (typeof err.oclif?.exit === 'number') return err.oclif.exit;
  return 1;
}

export abstract class PeftCommand extends Command {
  static override enableJsonFlag = true;

  protected override async catch(err: Failure): Promise<unknown> {
    const exit = exitCodeOf(err);
    if (err.code === 'EEXIT') throw err; // oclif's own this.exit(): nothing to report
    const message = (err.message || String(err)).replace(/\s*\n\s*/g, ' ').trim();
    if (this.jsonEnabled()) {
      this.logJson({ error: { code: err.code ?? 'E_RUNTIME', message, exitCode: exit } });
    } else {
      this.logToStderr(`Error: ${message}`);
      if (process.env.DEBUG && err.stack) this.logToStderr(err.stack);
    }
    process.exitCode = exit;
    return undefined;
  }
}
