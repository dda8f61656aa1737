/**
 * Who owns a lock file or a temp folder, and whether that owner still runs: this process's pid,
 * host and start time, and a liveness test for a recorded owner. A pid alone can be reused after a
 * reboot or a long time, so on Linux the owner also records the kernel's start time of the process
 * (/proc/PID/stat field 22, clock ticks since boot): same pid with another start time = a new process.
 * An owner on another host cannot be tested from here ('unknown'); callers treat it as alive.
 * Also the sync hooks run when the process ends, normally or by SIGINT/SIGTERM (locks released, temp
 * folders removed), and the one place that re-raises those signals.
 * Not here: what is owned (output-lock.ts, atomic.ts).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

export interface Owner {
  pid: number;
  host: string;
  /** ISO time this process started. */
  started: string;
  /** /proc start time (Linux), to tell a reused pid from the owner. */
  procStart?: string;
}

export type OwnerState = 'alive' | 'dead' | 'unknown';

function procStartOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid ...": comm may hold spaces and parens, so split after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

let self: Owner | undefined;

export function currentOwner(): Owner {
  self ??= {
    pid: process.pid, host: hostname(), started: new Date(Date.now() - process.uptime() * 1000).toISOString(),
    procStart: procStartOf(process.pid),
  };
  return self;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by another user
  }
}

/** Whether a recorded owner still runs (only decidable on this host). */
export function ownerState(o: { pid: number; host: string; procStart?: string }): OwnerState {
  if (o.host !== currentOwner().host) return 'unknown';
  if (!Number.isSafeInteger(o.pid) || o.pid <= 0 || !pidAlive(o.pid)) return 'dead';
  if (o.procStart !== undefined) {
    const now = procStartOf(o.pid);
    if (now !== undefined && now !== o.procStart) return 'dead'; // the pid was reused
  }
  return 'alive';
}

/** 8 hex digits naming this host in temp folder names (host names can hold any character). */
export function hostTag(host = currentOwner().host): string {
  return createHash('sha256').update(host).digest('hex').slice(0, 8);
}

/** Liveness of the owner a temp name records as `<hostTag>-<pid>`. */
export function tagState(tag: string, pid: number): OwnerState {
  if (tag !== hostTag()) return 'unknown';
  return ownerState({ pid, host: currentOwner().host });
}

const hooks = new Set<() => void>();
const SIGNALS = ['SIGINT', 'SIGTERM'] as const;
let onExitInstalled = false;

/** Ours: ends the process on SIGINT/SIGTERM, after the end hooks, unless someone else handles the signal. */
function endOnSignal(sig: NodeJS.Signals): void {
  if (!othersListening(sig)) dieBy(sig);
}

function listen(on: boolean): void {
  for (const sig of SIGNALS) {
    process.off(sig, endOnSignal);
    if (on) process.on(sig, endOnSignal);
  }
}

/**
 * Runs `fn` (sync) when the process ends: on exit, or on SIGINT/SIGTERM when nothing else handles the
 * signal (the trainer's graceful stop does; then the process goes on and so do the hooks). A process
 * killed by a signal runs no 'exit' listeners, so we listen for the signals while hooks exist and
 * re-raise them after the hooks ran. Returns the remover.
 */
export function onProcessEnd(fn: () => void): () => void {
  if (!onExitInstalled) {
    process.on('exit', runEndHooks);
    onExitInstalled = true;
  }
  if (hooks.size === 0) listen(true);
  hooks.add(fn);
  return () => {
    if (hooks.delete(fn) && hooks.size === 0) listen(false);
  };
}

/** Whether a signal listener other than ours is installed (then it decides what the signal does). */
export function othersListening(sig: NodeJS.Signals): boolean {
  return process.listeners(sig).some((l) => l !== endOnSignal);
}

export function runEndHooks(): void {
  for (const fn of [...hooks]) {
    hooks.delete(fn);
    try {
      fn();
    } catch {
      // best effort: the process is ending
    }
  }
  listen(false);
}

/** Ends the process by `sig` the way it would have without listeners, after the end hooks ran. */
export function dieBy(sig: NodeJS.Signals): void {
  runEndHooks();
  process.kill(process.pid, sig);
}
