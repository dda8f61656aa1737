/**
 * The trainer: the loop of `peft train`. Per optimizer step: gradAccum micro-batches (forward, scaled
 * backward), the grad norm (clipped when maxGradNorm > 0), a NaN/inf check, the optimizer update at the
 * schedule's lr, then one metrics line, maybe an evaluation, maybe a checkpoint. Resumes bit for bit from
 * a checkpoint (params, optimizer state, data position; dropout seeds and lr are functions of the step),
 * stops gracefully on Ctrl-C or an AbortSignal, and writes the adapter to outDir/adapter when done.
 * The run folder is locked while training (io/output-lock.ts: a second run or a --resume of a live one is
 * refused), marked as peft train's (--force clears an earlier run only in a folder with that mark), and
 * a save that fails (full disk) points at the newest checkpoint to --resume from.
 * Not here: data loading (the job's trainBatches), the model and its loss (the job's lossFn), the method.
 */
import { promises as fsp } from 'node:fs';
import { join, resolve } from 'node:path';
import { inputError, PeftError } from '../errors.js';
import { checkFinite } from '../finite.js';
import { removeAside, withAtomicFolder } from '../io/atomic.js';
import { guardOutput, writeError } from '../io/output-guard.js';
import { checkReplaceable, OUTPUT_MARKER, readOutputMarker, writeOutputMarker } from '../io/output-marker.js';
import { clipGradNorm, gradNorm } from '../optim/clip.js';
import { lrAt } from '../optim/schedule.js';
import {
  CHECKPOINTS_DIR, PARAMS_FILE, listCheckpoints, pruneCheckpoints, readTrainerState, removeStaleTemps, restoreCheckpoint, TRAINER_WRITES,
  writeCheckpoint,
} from './checkpoint.js';
import { watchStop, type StopWatch } from './interrupt.js';
import { METRICS_FILE, MetricsLog } from './metrics.js';
import { planRun, type RunPlan } from './plan.js';
import { accumulate, evaluate, selectTrainedParams, zeroGrads } from './step.js';
import { LOSS_SVG, writeLossSvg } from './svg.js';
import type { Tensor } from '../tensor/tensor.js';
import {
  TRAIN_COMMAND, type Batch, type CheckpointReason, type TrainEvent, type TrainJob, type TrainOptions, type TrainResult,
} from './types.js';

export const ADAPTER_DIR = 'adapter';

/** Where a run starts: the data position and the counters carried over from earlier sessions. */
interface StartPoint {
  step: number;
  epoch: number;
  batchIndex: number;
  tokens: number;
  elapsed: number;
  checkpoint?: string;
}

/**
 * A fresh run needs an outDir without a previous run's files, or `force` to remove them, which it does
 * only where peft train put its mark. Marks the folder as a train run.
 */
async function freshStart(outDir: string, force: boolean): Promise<StartPoint> {
  await fsp.mkdir(outDir, { recursive: true }).catch((e: NodeJS.ErrnoException) => {
    throw inputError('E_IO', `cannot create the output folder (${e.code ?? e.message})`, outDir);
  });
  const names = [METRICS_FILE, LOSS_SVG, CHECKPOINTS_DIR, ADAPTER_DIR];
  const found: string[] = [];
  for (const n of names) if (await fsp.lstat(join(outDir, n)).then(() => true, () => false)) found.push(n);
  if (found.length > 0 && !force) {
    throw inputError('E_EXISTS', `holds a previous run (${found.join(', ')}): resume it, or force a fresh start`, outDir);
  }
  const marker = await readOutputMarker(outDir);
  if (marker && marker.command !== TRAIN_COMMAND) {
    throw inputError('E_EXISTS', `was written by peft ${marker.command} (${OUTPUT_MARKER}): train into another --out`, outDir);
  }
  if (found.length > 0) await checkReplaceable(outDir, TRAIN_COMMAND, outDir);
  await removeStaleTemps(outDir);
  for (const n of found) await removeAside(join(outDir, n));
  await writeOutputMarker(outDir, TRAIN_COMMAND);
  return { step: 0, epoch: 0, batchIndex: 0, tokens: 0, elapsed: 0 };
}

/** Restores params and optimizer from the newest checkpoint whose settings match this run's. */
async function resumeStart(job: TrainJob, plan: RunPlan, outDir: string): Promise<StartPoint> {
  await removeStaleTemps(outDir);
  const latest = (await listCheckpoints(outDir)).at(-1);
  if (!latest) throw inputError('E_NOT_FOUND', `no checkpoint to resume from (${CHECKPOINTS_DIR}/step-N)`, outDir);
  const state = await readTrainerState(latest.dir, plan.settings);
  await restoreCheckpoint(latest.dir, job, state);
  const marker = await readOutputMarker(outDir);
  if (marker && marker.command !== TRAIN_COMMAND) throw inputError('E_INPUT', `was written by peft ${marker.command} (${OUTPUT_MARKER}), not by peft train`, outDir);
  if (!marker) await writeOutputMarker(outDir, TRAIN_COMMAND); // a run of a peft without marks
  // A resumed NaN / Inf would only surface as a non-finite loss, one step later and as exit 1.
  for (const [name, t] of job.params) checkFinite(t.data, { what: `trained tensor ${name}`, where: join(latest.dir, PARAMS_FILE) });
  return { ...state, checkpoint: latest.dir };
}

const yieldToEventLoop = () => new Promise<void>((r) => setImmediate(r));

/** Trains `job` as `opts` says; see the module comment. Throws PeftError E_INPUT for bad options (exit 2). */
export async function train(job: TrainJob, opts: TrainOptions): Promise<TrainResult> {
  const firstEpoch = job.trainBatches(0);
  const plan = planRun(job, opts, firstEpoch);
  const outDir = resolve(opts.outDir);
  const output = await guardOutput({ command: TRAIN_COMMAND, out: opts.outDir }); // nests inside runTrain's guard
  try {
    const start = opts.resume ? await resumeStart(job, plan, outDir) : await freshStart(outDir, !!opts.force);
    const metrics = await MetricsLog.open(outDir, opts.resume ? start.step : undefined);
    const run = new Run(job, plan, outDir, metrics, start, start.epoch === 0 ? firstEpoch : job.trainBatches(start.epoch));
    const stop = watchStop({
      signal: opts.signal, handleSigint: opts.handleSigint, onStop: (message) => run.emit({ type: 'warning', message }),
    });
    try {
      return await run.go(stop);
    } catch (e) {
      throw run.resumeHint(e);
    } finally {
      stop.dispose();
      metrics.close();
    }
  } finally {
    await output.close();
  }
}

class Run {
  step: number;
  epoch: number;
  batchIndex: number;
  tokensTotal: number;
  readonly t0 = performance.now();
  readonly session = { steps: 0, tokens: 0 };
  lastCheckpoint?: { step: number; dir: string };
  lastEval?: { step: number; loss: number };
  val?: Batch[];
  readonly tensors: Tensor[];

  constructor(readonly job: TrainJob, readonly plan: RunPlan, readonly outDir: string, readonly metrics: MetricsLog,
    readonly start: StartPoint, public batches: Batch[]) {
    ({ step: this.step, epoch: this.epoch, batchIndex: this.batchIndex, tokens: this.tokensTotal } = start);
    if (start.checkpoint) this.lastCheckpoint = { step: start.step, dir: start.checkpoint };
    this.tensors = job.params.map(([, t]) => t);
  }

  emit(e: TrainEvent): void {
    this.job.onEvent?.(e);
  }

  /** Seconds since this call started. */
  sessionSeconds(): number {
    return (performance.now() - this.t0) / 1000;
  }

  epochProgress(): number {
    return this.epoch + this.batchIndex / this.batches.length;
  }

  async go(stop: StopWatch): Promise<TrainResult> {
    const { totalSteps, stepsPerEpoch } = this.plan;
    this.emit({ type: 'start', step: this.step, totalSteps, stepsPerEpoch, resumedFrom: this.start.checkpoint });
    if (this.plan.schedule.schedule === 'constant' && this.plan.schedule.warmupSteps > 0) {
      this.emit({ type: 'warning', message: 'schedule "constant" has no warmup (as in transformers); use constant_with_warmup' });
    }
    zeroGrads(this.job.params);
    while (this.step < totalSteps) {
      await yieldToEventLoop(); // lets a pending SIGINT handler run between steps
      if (stop.requested) {
        await this.checkpoint('interrupt');
        return this.result('interrupt');
      }
      await this.oneStep();
    }
    if (this.job.valBatches && this.lastEval?.step !== this.step) this.evaluateNow();
    const adapterDir = join(this.outDir, ADAPTER_DIR);
    const adapterBytes = () => this.tensors.reduce((n, t) => n + 4 * t.size, 0);
    try {
      await withAtomicFolder(adapterDir, TRAINER_WRITES, (tmp) => this.job.save(tmp));
    } catch (e) {
      await this.checkpoint('final').catch(() => {}); // keeps the trained steps when there is room for it
      throw writeError(e, adapterDir, adapterBytes);
    }
    await writeLossSvg(this.outDir, this.metrics.train, this.metrics.evals);
    return this.result('done', adapterDir);
  }

  /** A failed write (full disk, unwritable folder) said with the checkpoint to --resume from; other errors unchanged. */
  resumeHint(e: unknown): unknown {
    const err = writeError(e, this.outDir);
    if (!(err instanceof PeftError) || (err.code !== 'E_NO_SPACE' && err.code !== 'E_IO')) return err;
    const fix = err.code === 'E_NO_SPACE' ? 'free some space' : 'fix that';
    const next = this.lastCheckpoint
      ? `the run is kept in ${this.lastCheckpoint.dir} (step ${this.lastCheckpoint.step}): ${fix}, then run the same command with --resume`
      : 'no checkpoint was saved, so there is nothing to --resume (--save-every N keeps checkpoints)';
    return new PeftError(err.code, `${err.message}; ${next}`, { cause: e });
  }

  /** The micro-batches of the next step: up to gradAccum, never across an epoch's end. */
  nextBatches(): Batch[] {
    if (this.batchIndex >= this.batches.length) {
      this.epoch++;
      this.batchIndex = 0;
      this.batches = this.job.trainBatches(this.epoch);
      if (this.batches.length === 0) throw new PeftError('E_INPUT', `train: the training data gives no batches for epoch ${this.epoch}`);
    }
    return this.batches.slice(this.batchIndex, this.batchIndex + this.plan.gradAccum);
  }

  async oneStep(): Promise<void> {
    const { job, plan } = this;
    const micro = this.nextBatches();
    const stepNo = this.step + 1;
    const lr = lrAt(this.step, plan.schedule);
    const t = performance.now();
    selectTrainedParams(job, stepNo);
    const { loss, tokens } = accumulate(job, micro, stepNo, plan.seed);
    let norm = NaN;
    if (Number.isFinite(loss)) norm = plan.maxGradNorm > 0 ? clipGradNorm(this.tensors, plan.maxGradNorm) : gradNorm(this.tensors);
    if (!Number.isFinite(loss) || !Number.isFinite(norm)) {
      zeroGrads(job.params);
      const what = Number.isFinite(loss) ? `grad norm is ${norm}` : `loss is ${loss}`;
      const dir = await this.checkpoint('nonfinite'); // params and optimizer are still those after step - 1
      throw new PeftError('E_RUNTIME', `${what} at step ${stepNo}; last good checkpoint: ${dir}`);
    }
    job.optimizer.step(lr);
    zeroGrads(job.params);
    this.step = stepNo;
    this.batchIndex += micro.length;
    this.record(loss, lr, norm, tokens, (performance.now() - t) / 1000);
    if (plan.evalEvery && stepNo % plan.evalEvery === 0 && job.valBatches) this.evaluateNow();
    if (plan.saveEvery && stepNo % plan.saveEvery === 0) await this.checkpoint('periodic');
  }

  record(loss: number, lr: number, gradNorm: number, tokens: number, seconds: number): void {
    const { step, plan } = this;
    this.session.steps++;
    this.session.tokens += tokens;
    this.tokensTotal += tokens;
    const sessionSeconds = this.sessionSeconds();
    const elapsed = this.start.elapsed + sessionSeconds;
    const epoch = this.epochProgress();
    this.metrics.step({
      step, epoch, loss, lr, grad_norm: gradNorm, tokens, tokens_per_s: tokens / Math.max(seconds, 1e-9), elapsed_s: elapsed,
    });
    if (step % plan.logEvery !== 0 && step !== plan.totalSteps) return;
    this.emit({
      type: 'step', step, totalSteps: plan.totalSteps, epoch, loss, lr, gradNorm, tokens, elapsed,
      tokensPerSec: this.session.tokens / Math.max(sessionSeconds, 1e-9),
      etaSeconds: ((plan.totalSteps - step) * sessionSeconds) / this.session.steps,
    });
  }

  evaluateNow(): void {
    this.val ??= this.job.valBatches!();
    const r = evaluate(this.job, this.val);
    if (!r) {
      this.emit({ type: 'warning', message: `step ${this.step}: the validation batches score no token; no eval loss` });
      return;
    }
    this.lastEval = { step: this.step, loss: r.loss };
    const evalPpl = Math.exp(r.loss);
    this.metrics.evaluation({ step: this.step, eval_loss: r.loss, eval_ppl: evalPpl });
    this.emit({ type: 'eval', step: this.step, evalLoss: r.loss, evalPpl, tokens: r.tokens });
  }

  /** Checkpoints the current state (once per step), keeps the newest ones, redraws loss.svg. */
  async checkpoint(reason: CheckpointReason): Promise<string> {
    if (this.lastCheckpoint?.step !== this.step) {
      const dir = await writeCheckpoint(this.outDir, this.job, {
        step: this.step, epoch: this.epoch, batchIndex: this.batchIndex, tokens: this.tokensTotal,
        elapsed: this.start.elapsed + this.sessionSeconds(), settings: this.plan.settings,
      });
      this.lastCheckpoint = { step: this.step, dir };
      await pruneCheckpoints(this.outDir, this.plan.keepCheckpoints);
    }
    await writeLossSvg(this.outDir, this.metrics.train, this.metrics.evals);
    this.emit({ type: 'checkpoint', step: this.step, dir: this.lastCheckpoint!.dir, reason });
    return this.lastCheckpoint!.dir;
  }

  result(stoppedBy: TrainResult['stoppedBy'], adapterDir?: string): TrainResult {
    const seconds = this.sessionSeconds();
    return {
      steps: this.step, epochs: this.epochProgress(), finalLoss: this.metrics.train.at(-1)?.[1] ?? NaN,
      evalLoss: this.lastEval?.loss ?? this.metrics.evals.at(-1)?.[1], seconds, tokens: this.session.tokens,
      tokensPerSec: this.session.tokens / Math.max(seconds, 1e-9), stoppedBy, lastCheckpoint: this.lastCheckpoint?.dir, adapterDir,
    };
  }
}
