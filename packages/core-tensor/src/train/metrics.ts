/**
 * outDir/metrics.jsonl: one JSON line per optimizer step and one per evaluation, appended with one
 * synchronous write each (the only file write of the hot loop; a line is complete or absent even if the
 * process dies). On resume the file is cut back to the checkpoint's step, so it reads as one run. The
 * losses are also kept in memory for the loss curve (svg.ts).
 */
import { closeSync, openSync, promises as fsp, writeSync } from 'node:fs';
import { join } from 'node:path';

export const METRICS_FILE = 'metrics.jsonl';

export interface StepRecord {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  grad_norm: number;
  tokens: number;
  tokens_per_s: number;
  elapsed_s: number;
}

export interface EvalRecord {
  step: number;
  eval_loss: number;
  eval_ppl: number;
}

export type Point = [step: number, loss: number];

function parseLine(line: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(line);
    return v && typeof v === 'object' && typeof (v as { step?: unknown }).step === 'number' ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined; // a line cut short by a killed process
  }
}

export class MetricsLog {
  readonly train: Point[] = [];
  readonly evals: Point[] = [];
  #fd: number | undefined;

  private constructor(readonly path: string) {}

  /** A fresh log, or (keepUpTo given) the existing one cut back to the lines of steps <= keepUpTo. */
  static async open(outDir: string, keepUpTo?: number): Promise<MetricsLog> {
    const log = new MetricsLog(join(outDir, METRICS_FILE));
    const kept: string[] = [];
    if (keepUpTo !== undefined) {
      const text = await fsp.readFile(log.path, 'utf8').catch(() => '');
      for (const line of text.split('\n')) {
        const rec = parseLine(line);
        if (!rec || (rec.step as number) > keepUpTo) continue;
        kept.push(line);
        log.#remember(rec);
      }
    }
    const tmp = `${log.path}.tmp-${process.pid}`;
    await fsp.writeFile(tmp, kept.map((l) => l + '\n').join(''));
    await fsp.rename(tmp, log.path);
    log.#fd = openSync(log.path, 'a');
    return log;
  }

  #remember(rec: Record<string, unknown>): void {
    if (typeof rec.loss === 'number') this.train.push([rec.step as number, rec.loss]);
    if (typeof rec.eval_loss === 'number') this.evals.push([rec.step as number, rec.eval_loss]);
  }

  #append(rec: StepRecord | EvalRecord): void {
    if (this.#fd === undefined) return;
    writeSync(this.#fd, JSON.stringify(rec) + '\n');
    this.#remember(rec as unknown as Record<string, unknown>);
  }

  step(rec: StepRecord): void {
    this.#append(rec);
  }

  evaluation(rec: EvalRecord): void {
    this.#append(rec);
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}
