/**
 * Issue 9, item 9, and the fault-injection suite: the built binary behind a test-only preload
 * (fault-preload.mjs) that fills the disk, makes folders read-only, presses Ctrl-C while a checkpoint is
 * written, or SIGKILLs the process at seeded random writes of train / quantize / merge / compress.
 * Every output is then complete (marked, loads) or absent; the next run leaves no temp folder or lock;
 * a resumed train gives the adapter bytes and losses of an uninterrupted one.
 */
import { generateTinyLlama } from '@peft/core-tensor';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from './helpers.js';
import { interrupted, leftovers, oneLine, runPeft, tree, type Faults, type Ran } from './run-peft.js';

let work: string;
let base: string;
let data: string;
let adapter: string;
const TRAIN = ['--steps', '6', '--batch', '4', '--seq-len', '32', '--set', 'r=4', '--seed', '5'];
const EVERY2 = [...TRAIN, '--save-every', '2'];
const EVERY4 = [...TRAIN, '--save-every', '4'];
const MARKER = '.peft-output.json';

let n = 0;
const fresh = () => {
  const d = join(work, `case${n++}`);
  mkdirSync(d);
  return d;
};

async function ok(args: string[], o: { cwd?: string; faults?: Faults } = {}): Promise<Ran> {
  const r = await runPeft(args, o);
  expect(r.exitCode, `${args.join(' ')}\n${r.stderr}`).toBe(0);
  return r;
}

const losses = (run: string) => readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n')
  .map((l) => JSON.parse(l)).filter((r) => 'loss' in r).map((r) => [r.step, r.loss]);
const adapterBytes = (run: string) => readFileSync(join(run, 'adapter/adapter_model.safetensors'));
/** The files of an output, its marker (which holds a time) left out. */
const contents = (dir: string) => Object.fromEntries(Object.entries(tree(dir)).filter(([k]) => k !== MARKER));

/** Train runs the tests compare with: uninterrupted, checkpoints every 2 / every 4 steps. */
const ref = { every2: '', every4: '' };

beforeAll(async () => {
  work = tempDir('peft-faults-');
  base = join(work, 'base');
  await generateTinyLlama(base, { preset: 'tiny', seed: 3 });
  data = join(work, 'rows.jsonl');
  writeFileSync(data, Array.from({ length: 24 }, (_, i) => JSON.stringify({ prompt: `Count ${i}:`, completion: ` ${i + 1}` })).join('\n') + '\n');
  ref.every2 = join(work, 'ref-every2');
  ref.every4 = join(work, 'ref-every4');
  await ok(['train', base, '--data', data, '--out', ref.every2, ...EVERY2]);
  await ok(['train', base, '--data', data, '--out', ref.every4, ...EVERY4]);
  adapter = join(ref.every2, 'adapter');
});

/** The same train as `reference`, resumed: identical adapter bytes and losses. */
function expectSameRun(run: string, reference: string): void {
  expect(losses(run)).toEqual(losses(reference));
  expect(adapterBytes(run)).toEqual(adapterBytes(reference));
}

describe('a full disk is exit 1: "no space left on device: OUT (needed about N MiB)", nothing left behind', () => {
  const commands: [string, (out: string) => string[]][] = [
    ['quantize', (out) => ['quantize', base, '--out', out]],
    ['merge (fold)', (out) => ['merge', base, '--adapter', adapter, '--out', out]],
    ['compress', (out) => ['compress', adapter, '--out', out]],
    ['compress --decompress', (out) => ['compress', '--decompress', join(work, 'ref-c'), '--out', out]],
  ];
  for (const [what, args] of commands) {
    it(what, async () => {
      if (what.includes('decompress') && !existsSync(join(work, 'ref-c'))) await ok(['compress', adapter, '--out', join(work, 'ref-c')]);
      const dir = fresh();
      const out = join(dir, 'out');
      const r = await runPeft(args(out), { faults: { dir, enospcAfter: 600 } });
      expect(r.exitCode, r.stderr).toBe(1);
      expect(oneLine(r), r.stderr).toBe(true);
      expect(r.stderr).toMatch(new RegExp(`no space left on device: ${out} \\(needed about \\d+ MiB\\)`));
      expect(readdirSync(dir)).toEqual([]);
    });
  }

  it('train: a checkpoint that does not fit names the checkpoint to --resume from; the resumed run is identical', async () => {
    const probe = fresh();
    await ok(['train', base, '--data', data, '--out', join(probe, 'run'), ...EVERY2], { faults: { dir: probe, countFile: join(work, 'count.json') } });
    const { bytes } = JSON.parse(readFileSync(join(work, 'count.json'), 'utf8'));
    const dir = fresh();
    const run = join(dir, 'run');
    const r = await runPeft(['train', base, '--data', data, '--out', run, ...EVERY2], { faults: { dir, enospcAfter: Math.floor(bytes / 2) } });
    expect(r.exitCode, r.stderr).toBe(1);
    const m = /no space left on device: \S+.*; the run is kept in (\S+) \(step (\d+)\): free some space, then run the same command with --resume/.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    expect(m![1]).toBe(join(run, 'checkpoints', `step-${m![2]}`));
    await ok(['train', base, '--data', data, '--out', run, ...EVERY2, '--resume']);
    expectSameRun(run, ref.every2);
    expect(leftovers(dir)).toEqual([]);
  });

  it('train: a final adapter save that does not fit keeps the last checkpoint and says --resume', async () => {
    const probe = fresh();
    await ok(['train', base, '--data', data, '--out', join(probe, 'run'), ...EVERY4], { faults: { dir: probe, countFile: join(work, 'count4.json') } });
    const { bytes } = JSON.parse(readFileSync(join(work, 'count4.json'), 'utf8'));
    const finalBytes = Object.keys(tree(join(probe, 'run/adapter'))).reduce((s, f) => s + readFileSync(join(probe, 'run/adapter', f)).length, 0);
    const svg = readFileSync(join(probe, 'run/loss.svg')).length;
    const dir = fresh();
    const run = join(dir, 'run');
    const r = await runPeft(['train', base, '--data', data, '--out', run, ...EVERY4], { faults: { dir, enospcAfter: bytes - svg - finalBytes + 100 } });
    expect(r.exitCode, r.stderr).toBe(1);
    expect(r.stderr).toContain(`no space left on device: ${join(run, 'adapter')} (needed about 1 MiB); the run is kept in ${join(run, 'checkpoints/step-4')} (step 4): free some space, then run the same command with --resume`);
    expect(existsSync(join(run, 'adapter'))).toBe(false);
    await ok(['train', base, '--data', data, '--out', run, ...EVERY4, '--resume']);
    expectSameRun(run, ref.every4);
  });
});

describe('a read-only output location is bad input (exit 2), found before any work', () => {
  it('a read-only mount: quantize and train are exit 2, nothing written', async () => {
    const dir = fresh();
    for (const args of [['quantize', base, '--out', join(dir, 'q')], ['train', base, '--data', data, '--out', join(dir, 'run'), ...TRAIN]]) {
      const r = await runPeft(args, { faults: { dir, erofs: 'all' } });
      expect(r.exitCode, r.stderr).toBe(2);
      expect(oneLine(r), r.stderr).toBe(true);
      expect(r.stderr).toMatch(/read-only file system/);
      expect(readdirSync(dir)).toEqual([]);
    }
  });

  it('files that cannot be written (remounted read-only): exit 2 at the first write, nothing left', async () => {
    const dir = fresh();
    const r = await runPeft(['merge', base, '--adapter', adapter, '--out', join(dir, 'm')], { faults: { dir, erofs: 'write' } });
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/read-only file system/);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('Ctrl-C while a checkpoint is written', () => {
  const during = 'step-4\\.(peft-)?tmp.*adapter_model'; // the old temp name too, to see the old failure
  it('once: the checkpoint completes, exit 130, --resume gives the uninterrupted run', async () => {
    const dir = fresh();
    const run = join(dir, 'run');
    const r = await runPeft(['train', base, '--data', data, '--out', run, ...EVERY2], { faults: { dir, sigintOn: during } });
    expect(r.exitCode, r.stderr).toBe(130);
    expect(r.stderr).toContain(`interrupted at step 4; checkpoint ${join(run, 'checkpoints/step-4')}; continue with --resume`);
    await ok(['train', base, '--data', data, '--out', run, ...EVERY2, '--resume']);
    expectSameRun(run, ref.every2);
  });

  it('twice: the process ends as interrupted (130, never exit 2); --resume cleans up and gives the same run', async () => {
    const dir = fresh();
    const run = join(dir, 'run');
    const r = await runPeft(['train', base, '--data', data, '--out', run, ...EVERY2], { faults: { dir, sigintOn: during, sigintTwice: true } });
    expect(interrupted(r), `${r.exitCode} ${r.signal} ${r.stderr}`).toBe(true);
    expect(r.stderr).not.toMatch(/no such file/);
    await ok(['train', base, '--data', data, '--out', run, ...EVERY2, '--resume']);
    expectSameRun(run, ref.every2);
    expect(leftovers(dir)).toEqual([]);
  });
});

describe('Ctrl-C while a folder output is written', () => {
  it('quantize ends as interrupted, with its temp folder and lock removed', async () => {
    const dir = fresh();
    const r = await runPeft(['quantize', base, '--out', join(dir, 'q')], { faults: { dir, sigintOn: '\\.q\\.peft-tmp-' } });
    expect(interrupted(r), `${r.exitCode} ${r.signal} ${r.stderr}`).toBe(true);
    expect(readdirSync(dir)).toEqual([]);
  });
});

/** mulberry32: the kill points are random but the same in every run of the suite. */
function seeded(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const inspects = async (dir: string) => (await runPeft(['inspect', dir])).exitCode === 0;

/** A folder output is absent, or marked and loadable. */
async function completeOrAbsent(out: string): Promise<void> {
  if (!existsSync(out)) return;
  expect(existsSync(join(out, MARKER)), out).toBe(true);
  expect(await inspects(out), out).toBe(true);
}

/** A train run folder: its adapter absent or loadable, every step-N complete and loadable. */
async function trainComplete(run: string): Promise<string[]> {
  if (existsSync(join(run, 'adapter'))) expect(await inspects(join(run, 'adapter'))).toBe(true);
  const steps = existsSync(join(run, 'checkpoints')) ? readdirSync(join(run, 'checkpoints')).filter((s) => /^step-\d+$/.test(s)) : [];
  for (const s of steps) {
    const dir = join(run, 'checkpoints', s);
    expect(readdirSync(dir).sort(), dir).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'optimizer.safetensors', 'params.safetensors', 'trainer_state.json']);
    expect(await inspects(dir), dir).toBe(true);
  }
  return steps;
}

describe('SIGKILL at seeded random writes: complete or absent, cleaned by the next run, train resumes bit for bit', () => {
  const random = seeded(9);
  const POINTS = 3;
  const folderCommands: [string, (out: string) => string[]][] = [
    ['quantize', (out) => ['quantize', base, '--out', out]],
    ['merge', (out) => ['merge', base, '--adapter', adapter, '--out', out]],
    ['compress', (out) => ['compress', adapter, '--out', out]],
  ];

  async function killPoints(args: string[]): Promise<number[]> {
    const dir = fresh();
    const count = join(dir, '..', `count-${n}.json`);
    await ok(args.map((a) => a.replace('@OUT', join(dir, 'out'))), { faults: { dir, countFile: count } });
    const { changes } = JSON.parse(readFileSync(count, 'utf8'));
    return Array.from({ length: POINTS }, () => 1 + Math.floor(random() * changes));
  }

  for (const [what, args] of folderCommands) {
    it(what, async () => {
      const reference = join(fresh(), 'out');
      await ok(args(reference));
      for (const at of await killPoints(args('@OUT'))) {
        const dir = fresh();
        const out = join(dir, 'out');
        const r = await runPeft(args(out), { faults: { dir, killAt: at } });
        expect(r.signal, `kill at change ${at}: ${r.stderr}`).toBe('SIGKILL');
        await completeOrAbsent(out);
        await ok([...args(out), ...(existsSync(out) ? ['--force'] : [])]);
        expect(contents(out), `kill at change ${at}`).toEqual(contents(reference));
        expect(leftovers(dir), `kill at change ${at}`).toEqual([]);
      }
    });
  }

  it('train', async () => {
    const trainArgs = (out: string) => ['train', base, '--data', data, '--out', out, ...EVERY2];
    for (const at of await killPoints(trainArgs('@OUT'))) {
      const dir = fresh();
      const run = join(dir, 'out');
      const r = await runPeft(trainArgs(run), { faults: { dir, killAt: at } });
      expect(r.signal, `kill at change ${at}: ${r.stderr}`).toBe('SIGKILL');
      const steps = await trainComplete(run);
      const again = steps.length ? ['--resume'] : existsSync(join(run, 'metrics.jsonl')) ? ['--force'] : [];
      await ok([...trainArgs(run), ...again]);
      expectSameRun(run, ref.every2);
      expect(leftovers(dir), `kill at change ${at}`).toEqual([]);
    }
  });

  it('train: a kill while pruning a checkpoint leaves no incomplete step-N (renamed aside first)', async () => {
    const dir = fresh();
    const run = join(dir, 'out');
    const r = await runPeft(['train', base, '--data', data, '--out', run, ...EVERY2], { faults: { dir, killOn: '^rm .*\\.step-2\\.peft-del-' } });
    expect(r.signal, r.stderr).toBe('SIGKILL');
    expect(await trainComplete(run)).toEqual(['step-4', 'step-6']); // step-2 was being pruned after step-6 was written
    expect(leftovers(run)).toEqual([expect.stringMatching(/^checkpoints\/\.step-2\.peft-del-/)]);
    await ok(['train', base, '--data', data, '--out', run, ...EVERY2, '--resume']);
    expectSameRun(run, ref.every2);
    expect(leftovers(dir)).toEqual([]);
  });

  it('quantize: the temp folder a kill leaves is removed by the next run', async () => {
    const dir = fresh();
    const out = join(dir, 'q');
    const r = await runPeft(['quantize', base, '--out', out], { faults: { dir, killOn: '^write .*\\.q\\.peft-tmp-' } });
    expect(r.signal).toBe('SIGKILL');
    expect(readdirSync(dir).sort()).toEqual([expect.stringMatching(/^\.q\.peft-lock$/), expect.stringMatching(/^\.q\.peft-tmp-/)]);
    await ok(['quantize', base, '--out', out]);
    expect(readdirSync(dir)).toEqual(['q']);
  });
});
