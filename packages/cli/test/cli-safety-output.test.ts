/**
 * Issue 9, items 1 and 8, on the built binary: an --out that is, holds or lies inside an input (after
 * symlinks), or holds the current folder, is exit 2 with every file beside and above the input intact;
 * --force replaces only a folder the same command marked; one writer per output (lock file naming the
 * holder, stale locks taken over, a --resume of a live run refused).
 */
import { generateTinyLlama } from '@peft/core-tensor';
import { cpSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT, tempDir } from './helpers.js';
import { interrupted, leftovers, oneLine, runPeft, spawnPeft, tree, type Ran } from './run-peft.js';

let work: string;
let base: string;
let data: string;
let adapter: string;
const TRAIN = ['--steps', '2', '--batch', '4', '--seq-len', '32', '--set', 'r=4'];

beforeAll(async () => {
  work = tempDir('peft-safety-');
  base = join(work, 'base');
  await generateTinyLlama(base, { preset: 'tiny', seed: 3 });
  data = join(work, 'rows.jsonl');
  writeFileSync(data, Array.from({ length: 16 }, (_, i) => JSON.stringify({ prompt: `Count ${i}:`, completion: ` ${i + 1}` })).join('\n') + '\n');
  const r = await runPeft(['train', base, '--data', data, '--out', join(work, 'run'), ...TRAIN]);
  expect(r.exitCode, r.stderr).toBe(0);
  adapter = join(work, 'run/adapter');
});

let n = 0;
/** A fresh folder `a` holding x/ (with the given inputs copied in), x/precious.txt and above.txt. */
function scene(inputs: Record<string, string>): string {
  const a = join(work, `scene${n++}`);
  mkdirSync(join(a, 'x'), { recursive: true });
  for (const [name, from] of Object.entries(inputs)) cpSync(from, join(a, 'x', name), { recursive: true });
  writeFileSync(join(a, 'x/precious.txt'), 'keep\n');
  writeFileSync(join(a, 'above.txt'), 'keep too\n');
  return a;
}

/** Exit 2, one line naming both paths, and the whole scene byte for byte as before (no lock or temp left). */
async function refused(a: string, args: string[], message: RegExp, cwd = a): Promise<Ran> {
  const before = tree(a);
  const r = await runPeft(args, { cwd });
  expect(r.exitCode, r.stderr).toBe(2);
  expect(oneLine(r), r.stderr).toBe(true);
  expect(r.stderr).toMatch(message);
  expect(tree(a)).toEqual(before);
  expect(readFileSync(join(a, 'x/precious.txt'), 'utf8')).toBe('keep\n');
  expect(readFileSync(join(a, 'above.txt'), 'utf8')).toBe('keep too\n');
  return r;
}

describe('--out against the inputs (data loss)', () => {
  it("the issue's repro: cd a && peft quantize x/b --out x --force is exit 2, x/b and x/precious.txt intact", async () => {
    const a = scene({ b: join(ROOT, 'demo/base') });
    await refused(a, ['quantize', 'x/b', '--out', 'x', '--force'], /--out x contains the input x\/b/);
  });

  it('quantize: --out equal to the input, inside it, the current folder, or a symlink to its parent', async () => {
    const a = scene({ b: base });
    await refused(a, ['quantize', 'x/b', '--out', 'x/b', '--force'], /--out x\/b is the input x\/b/);
    await refused(a, ['quantize', 'x/b', '--out', 'x/b/q'], /--out x\/b\/q lies inside the input x\/b/);
    await refused(a, ['quantize', 'x/b', '--out', '.', '--force'], /--out \. contains the input x\/b/);
    await refused(a, ['quantize', base, '--out', '.', '--force'], /--out \. is the current folder/, join(a, 'x'));
    symlinkSync(join(a, 'x'), join(work, `link${n}`));
    await refused(a, ['quantize', join(a, 'x/b'), '--out', join(work, `link${n}`), '--force'], /contains the input/);
  });

  it('merge: fold into an ancestor of the base, flags and recipe merges, adapter merges', async () => {
    const a = scene({ b: base, ad: adapter, 'recipe.yml': data });
    writeFileSync(join(a, 'x/recipe.yml'), `merge_method: linear\nmodels:\n  - model: ${base}\n    parameters: {weight: 1}\n`);
    await refused(a, ['merge', 'x/b', '--adapter', adapter, '--out', 'x', '--force'], /--out x contains the input x\/b/);
    await refused(a, ['merge', base, '--adapter', 'x/ad', '--out', 'x', '--force'], /--out x contains the input x\/ad/);
    await refused(a, ['merge', '--method', 'linear', '--model', 'x/b', '--model', base, '--weight', '1', '--out', 'x/b', '--force'], /--out x\/b is the input x\/b/);
    await refused(a, ['merge', 'x/recipe.yml', '--out', 'x', '--force'], /--out x contains the input x\/recipe\.yml/);
    await refused(a, ['merge', '--adapter', 'x/ad', '--adapter', adapter, '--method', 'linear', '--out', 'x', '--force'], /--out x contains the input x\/ad/);
  });

  it('compress and --decompress: --out the parent of the input, or the input itself', async () => {
    const a = scene({ ad: adapter });
    await refused(a, ['compress', 'x/ad', '--out', 'x', '--force'], /--out x contains the input x\/ad/);
    await refused(a, ['compress', 'x/ad', '--out', 'x/ad', '--force'], /--out x\/ad is the input x\/ad/);
    const c = join(work, `c${n}`);
    expect((await runPeft(['compress', adapter, '--out', c])).exitCode).toBe(0);
    cpSync(c, join(a, 'x/c'), { recursive: true });
    await refused(a, ['compress', '--decompress', 'x/c', '--out', 'x', '--force'], /--out x contains the input x\/c/);
    await refused(a, ['compress', '--decompress', 'x/c/compressed.peftz', '--out', 'x/c', '--force'], /--out x\/c contains the input x\/c\/compressed\.peftz/);
  });

  it('train: --out holding the data, the validation data, the model or the recipe', async () => {
    const a = scene({ b: base, 'd.jsonl': data, 'v.jsonl': data });
    writeFileSync(join(a, 'x/r.yaml'), 'steps: 2\n');
    await refused(a, ['train', base, '--data', 'x/d.jsonl', '--out', 'x', '--force', ...TRAIN], /--out x contains the input x\/d\.jsonl/);
    await refused(a, ['train', base, '--data', data, '--val-data', 'x/v.jsonl', '--out', 'x', ...TRAIN], /contains the input x\/v\.jsonl/);
    await refused(a, ['train', 'x/b', '--data', data, '--out', 'x/b/run', ...TRAIN], /--out x\/b\/run lies inside the input x\/b/);
    await refused(a, ['train', base, '--data', data, '--recipe', 'x/r.yaml', '--out', 'x', ...TRAIN], /contains the input x\/r\.yaml/);
  });

  it('a missing input is still reported as not found', async () => {
    const r = await runPeft(['quantize', join(work, 'nope'), '--out', join(work, 'nope-q')]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/nope.*(no such|not found|does not exist)/i);
  });
});

describe('--force replaces only what the same command wrote', () => {
  it('a folder peft did not write is refused (no marker) and left as it was', async () => {
    const a = scene({ b: base });
    mkdirSync(join(a, 'x/user'));
    writeFileSync(join(a, 'x/user/notes.txt'), 'mine');
    await refused(a, ['quantize', 'x/b', '--out', 'x/user', '--force'],
      /x\/user: was not written by peft quantize \(no \.peft-output\.json\): --force replaces only an earlier output of the same command/);
  });

  it("another command's output is refused; its own output and an empty folder are replaced", async () => {
    const out = join(work, 'forced');
    const merge = ['merge', '--method', 'linear', '--model', base, '--weight', '1', '--out', out];
    expect((await runPeft(merge)).exitCode).toBe(0);
    const before = tree(out);
    const q = await runPeft(['quantize', base, '--out', out, '--force']);
    expect(q.exitCode).toBe(2);
    expect(q.stderr).toMatch(/forced: was written by peft merge, not peft quantize/);
    expect(tree(out)).toEqual(before);
    expect((await runPeft([...merge, '--force'])).exitCode).toBe(0);
    expect(JSON.parse(readFileSync(join(out, '.peft-output.json'), 'utf8'))).toMatchObject({ format: 'peft-output', version: 1, command: 'merge' });
    const empty = join(work, 'empty-out');
    mkdirSync(empty);
    expect((await runPeft(['quantize', base, '--out', empty])).stderr).toMatch(/exists; pass --force/);
    expect((await runPeft(['quantize', base, '--out', empty, '--force'])).exitCode).toBe(0);
    expect(JSON.parse(readFileSync(join(empty, '.peft-output.json'), 'utf8')).command).toBe('quantize');
    expect(leftovers(work)).toEqual([]);
  });

  it('train --force clears an earlier run only where peft train marked it', async () => {
    const a = scene({ run: join(work, 'run') });
    const { rmSync } = await import('node:fs');
    rmSync(join(a, 'x/run/.peft-output.json')); // a run folder peft did not mark (or someone's own checkpoints/)
    await refused(a, ['train', base, '--data', data, '--out', 'x/run', '--force', ...TRAIN], /x\/run: was not written by peft train \(no \.peft-output\.json\)/);
    writeFileSync(join(a, 'x/run/.peft-output.json'), JSON.stringify({ format: 'peft-output', version: 1, command: 'train', peft: '0', created: '' }));
    const r = await runPeft(['train', base, '--data', data, '--out', 'x/run', '--force', ...TRAIN], { cwd: a });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readFileSync(join(a, 'x/precious.txt'), 'utf8')).toBe('keep\n');
  });
});

describe('one writer per output', () => {
  const lockOf = (dir: string, name: string) => join(dir, `.${name}.peft-lock`);
  const writeLock = (path: string, owner: { pid: number; host: string }) => writeFileSync(path, JSON.stringify({
    format: 'peft-lock', version: 1, command: 'quantize', started: '2025-01-01T00:00:00.000Z', ...owner,
  }));

  it('a live holder is named and refused; once it is gone its lock is stale and taken over', async () => {
    const sleeper = execa('sleep', ['60'], { reject: false });
    const out = join(work, 'locked');
    writeLock(lockOf(work, 'locked'), { pid: sleeper.pid!, host: hostname() });
    const r = await runPeft(['quantize', base, '--out', out]);
    expect(r.exitCode).toBe(2);
    expect(oneLine(r)).toBe(true);
    expect(r.stderr).toContain(`locked: is being written by another peft process (peft quantize, pid ${sleeper.pid} on ${hostname()}, since 2025-01-01T00:00:00.000Z); wait for it to finish`);
    expect(existsSync(out)).toBe(false);
    sleeper.kill();
    await sleeper;
    const ok = await runPeft(['quantize', base, '--out', out]);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(existsSync(lockOf(work, 'locked'))).toBe(false);
  });

  it("another host's lock is never taken over; the message names the file to remove", async () => {
    writeLock(lockOf(work, 'far'), { pid: 1, host: 'some-other-host' });
    const r = await runPeft(['quantize', base, '--out', join(work, 'far')]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(`(peft quantize, pid 1 on some-other-host, since 2025-01-01T00:00:00.000Z); if that run is gone, remove ${lockOf(work, 'far')}`);
  });

  it('two trains on one --out: a second one and a --resume are exit 2 naming the first, which finishes its way', async () => {
    const out = join(work, 'two');
    const long = ['--steps', '3000', '--batch', '4', '--seq-len', '32', '--set', 'r=4', '--save-every', '1000'];
    const first = spawnPeft(['train', base, '--data', data, '--out', out, ...long]);
    for (let t = 0; t < 600 && !existsSync(join(out, 'metrics.jsonl')); t++) await sleep(100);
    expect(existsSync(lockOf(work, 'two'))).toBe(true);
    for (const extra of [['--force'], ['--resume']]) {
      const r = await runPeft(['train', base, '--data', data, '--out', out, ...long, ...extra]);
      expect(r.exitCode, r.stderr).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`two: is being written by another peft process \\(peft train, pid ${first.pid} on `));
    }
    first.kill('SIGINT');
    const f = await first;
    expect(f.exitCode, String(f.stderr)).toBe(130);
    expect(existsSync(lockOf(work, 'two'))).toBe(false);
    const again = await runPeft(['train', base, '--data', data, '--out', out, '--force', ...TRAIN]);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(interrupted({ exitCode: f.exitCode, stdout: '', stderr: '' })).toBe(true);
  });
});
