/**
 * The chat-template render worker, main side: one lazily started worker_thread (render-worker.ts)
 * whose heap is capped (resourceLimits), so no template, however hostile, can exhaust this
 * process's memory or block it: the worker enforces the step, size and time limits itself, and a
 * worker that dies (heap limit) or stops answering (one builtin running past the time limit, checked
 * here) is replaced and its job reported as over a limit. Requests run one at a time, each a batch of
 * jobs (a data file's chat rows are sent a group at a time, so a row costs one message, not a thread).
 * The worker is unref'd while idle: it never keeps the process alive.
 * Not here: what a job renders (render-worker.ts), error messages for users (chat-template.ts).
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { renderWorkerMain, type Job, type JobResult, type RenderLimits, type WorkerInit } from './render-worker.js';

/** The limits of a chat-template render (README "Safety"). */
export const RENDER_LIMITS: Readonly<RenderLimits> = {
  steps: 1_000_000, chars: 16 * 2 ** 20, items: 100_000, seconds: 10, conversationChars: 64 * 2 ** 20,
};
/** The worker's heap (MiB): all the memory a render may use. */
export const RENDER_HEAP_MIB = 256;
/** Extra wall time before the pool stops a worker that does not answer (the worker checks its own clock). */
const GRACE_MS = 5000;

const SOURCE = `(${renderWorkerMain.toString()})(require)`;

interface Live {
  worker: Worker;
  /** [1] index of the job the worker is on */
  progress: Int32Array;
}

let live: Live | undefined;
let queue: Promise<unknown> = Promise.resolve();

function start(): Live {
  const progress = new SharedArrayBuffer(4);
  const init: WorkerInit = { jinjaPath: createRequire(import.meta.url).resolve('@huggingface/jinja'), limits: RENDER_LIMITS, progress };
  const worker = new Worker(SOURCE, {
    eval: true, workerData: init,
    resourceLimits: { maxOldGenerationSizeMb: RENDER_HEAP_MIB, maxYoungGenerationSizeMb: 32, stackSizeMb: 4 },
  });
  worker.unref();
  return { worker, progress: new Int32Array(progress) };
}

/** A worker that stopped during job `at`: over a limit (heap, time), or broken (a bug: exit 1). */
interface Death {
  at: number;
  kind: 'limit' | 'crash';
  message: string;
}

/** One request on the live worker: its results, or where and why the worker died. */
function request(w: Live, template: string, jobs: Job[]): Promise<JobResult[] | Death> {
  return new Promise((resolve) => {
    let settled = false;
    let timedOut = false;
    const finish = (r: JobResult[] | Death) => {
      if (settled) return;
      settled = true;
      clearInterval(watch);
      w.worker.off('message', finish).off('error', onError).off('exit', onExit);
      if (Array.isArray(r)) w.worker.unref();
      else void retire(w);
      resolve(r);
    };
    const at = () => Atomics.load(w.progress, 0);
    const onError = (e: Error & { code?: string }) => finish(e.code === 'ERR_WORKER_OUT_OF_MEMORY'
      ? { at: at(), kind: 'limit', message: `more than ${RENDER_HEAP_MIB} MiB of memory` }
      : { at: at(), kind: 'crash', message: `the render worker failed (${e.message})` });
    const onExit = (code: number) => finish(timedOut
      ? { at: at(), kind: 'limit', message: `more than ${RENDER_LIMITS.seconds} s` }
      : { at: at(), kind: 'crash', message: `the render worker exited (${code})` });
    // The worker checks its own clock between steps; this catches one builtin running long.
    let seen = -1;
    let since = Date.now();
    const watch = setInterval(() => {
      if (at() !== seen) [seen, since] = [at(), Date.now()];
      else if (Date.now() - since > RENDER_LIMITS.seconds * 1000 + GRACE_MS) {
        timedOut = true;
        void w.worker.terminate();
      }
    }, 1000);
    w.worker.on('message', finish).on('error', onError).on('exit', onExit);
    w.worker.ref();
    Atomics.store(w.progress, 0, 0);
    try {
      w.worker.postMessage({ template, jobs });
    } catch (e) {
      // Nothing reached the worker: vars that cannot be cloned (nested too deeply).
      settled = true;
      clearInterval(watch);
      w.worker.off('message', finish).off('error', onError).off('exit', onExit).unref();
      resolve({ at: -1, kind: 'limit', message: (e as Error).message });
    }
  });
}

async function retire(w: Live): Promise<void> {
  if (live === w) live = undefined;
  await w.worker.terminate().catch(() => undefined);
}

/** Jobs after a death: the ones before it run again (their results were lost), the one at it failed. */
async function runJobs(template: string, jobs: Job[]): Promise<JobResult[]> {
  live ??= start();
  const r = await request(live, template, jobs);
  if (Array.isArray(r)) return r;
  if (r.at < 0) {
    if (jobs.length === 1) return [{ ok: false, kind: 'limit', message: `the variables cannot be passed to the template (${r.message})` }];
    const out: JobResult[] = [];
    for (const job of jobs) out.push((await runJobs(template, [job]))[0]); // one result per single job
    return out;
  }
  if (r.kind === 'crash') return [{ ok: false, kind: 'crash', message: r.message }]; // not the data's fault: no retry
  const before = r.at > 0 ? await runJobs(template, jobs.slice(0, r.at)) : [];
  return [...before, { ok: false, kind: 'limit', message: r.message }];
}

/**
 * Renders `jobs` with `template` in the worker. Results come in job order; after a job that took the
 * worker down there are none (the caller stops at the first failure).
 */
export function renderJobs(template: string, jobs: Job[]): Promise<JobResult[]> {
  const run = queue.then(() => runJobs(template, jobs));
  queue = run.catch(() => undefined);
  return run;
}
