/**
 * Stopping a run gracefully: an AbortSignal from the caller, and (by default) Ctrl-C. The first SIGINT
 * only raises a flag that the loop reads between steps (it finishes the step, checkpoints and returns);
 * a second one uninstalls the handler, runs the process-end hooks (the run folder's lock is released) and
 * re-raises SIGINT so the process dies as it normally would (the shell reports 130). Nothing deletes the
 * checkpoint being written at that moment; its temp folder is removed by the next run.
 * Tests drive it with an AbortSignal or process.emit('SIGINT'), without real signals.
 */
import { dieBy, othersListening } from '../io/owner.js';

export interface StopWatch {
  /** True once a stop was asked for. */
  readonly requested: boolean;
  /** Removes the SIGINT listener (idempotent). */
  dispose(): void;
}

export function watchStop(opts: { signal?: AbortSignal; handleSigint?: boolean; onStop?: (why: string) => void }): StopWatch {
  let sigint = false;
  let installed = false;
  const onSigint = () => {
    if (sigint) {
      dispose();
      if (!othersListening('SIGINT')) dieBy('SIGINT');
      return;
    }
    sigint = true;
    opts.onStop?.('interrupt: finishing this step and saving a checkpoint (Ctrl-C again to quit at once)');
  };
  const dispose = () => {
    if (installed) process.off('SIGINT', onSigint);
    installed = false;
  };
  if (opts.handleSigint ?? true) {
    process.on('SIGINT', onSigint);
    installed = true;
  }
  return {
    get requested() {
      return sigint || opts.signal?.aborted === true;
    },
    dispose,
  };
}
