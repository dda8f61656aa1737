/**
 * Running the built `peft` binary with its cost measured: wall time and the child's peak RSS
 * (process.resourceUsage().maxRSS, written at exit by rss-preload.cjs), for tests that assert hostile
 * input is refused in bounded time and memory. A child that never exits is killed at `timeoutMs`.
 */
import { execa } from 'execa';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tempDir, type Run } from './helpers.js';

const BIN = join(ROOT, 'packages/cli/bin/run.js');
const PRELOAD = join(import.meta.dirname, 'rss-preload.cjs');

export interface MeasuredRun extends Run {
  /** Peak resident memory of the child in MiB (NaN when it died without exiting normally). */
  peakRssMiB: number;
  seconds: number;
  timedOut: boolean;
}

export async function peftMeasured(args: string[], opts: { timeoutMs?: number; cwd?: string } = {}): Promise<MeasuredRun> {
  const rssFile = join(tempDir('peft-rss-'), 'rss');
  const t0 = performance.now();
  const r = await execa('node', ['--require', PRELOAD, BIN, ...args], {
    reject: false,
    cwd: opts.cwd,
    env: { NO_COLOR: '1', FORCE_COLOR: '0', PEFT_TEST_RSS_FILE: rssFile },
    timeout: opts.timeoutMs ?? 60_000,
  });
  const seconds = (performance.now() - t0) / 1000;
  return {
    exitCode: r.exitCode ?? -1,
    stdout: String(r.stdout),
    stderr: String(r.stderr),
    json: () => JSON.parse(String(r.stdout)),
    peakRssMiB: existsSync(rssFile) ? Number(readFileSync(rssFile, 'utf8')) / 1024 : NaN,
    seconds,
    timedOut: r.timedOut,
  };
}
