/**
 * Who owns a lock file or a temp folder, and whether that owner still runs: this process's pid,
 * host and start time, and a liveness test for a recorded owner. A pid alone can be reused after a
 * reboot or a long time, so on Linux the owner also records the kernel's start time of the process
 * (/proc/PID/stat field 22, clock ticks since boot): same pid with another start time = a new process.
 * An owner on another host cannot be tested from here ('unknown'); callers treat it as alive.
 * Also the sync hooks run when the process ends (normally, or by a signal one of our handlers re-raises).
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
let installed = false;

/**
 * Runs `fn` (sync) when the process ends: on exit, or from a signal handler of ours before it
 * re-raises the signal (a process killed by a signal runs no 'exit' listeners). Returns the remover.
 */
export function onProcessEnd(fn: () => void): () => void {
  if (!installed) {
    process.on('exit', runEndHooks);
    installed = true;
  }
  hooks.add(fn);
  return () => hooks.delete(fn);
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
}

/** Ends the process by `sig` the way it would have without our handlers, after the end hooks ran. */
export function dieBy(sig: NodeJS.Signals): void {
  runEndHooks();
  process.kill(process.pid, sig);
}
