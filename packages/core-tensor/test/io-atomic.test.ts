/**
 * The output-safety pieces of io/ on their own: --out against the inputs (realpath, missing inputs, the
 * current folder), the marker rules of --force, the lock (live, dead, reused-pid, other-host and torn
 * holders; nesting), dead temp folders, delete-by-rename, and how write failures are said
 * (ENOSPC -> E_NO_SPACE exit 1, EROFS -> E_IO exit 2).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PeftError } from '../src/errors.js';
import {
  AtomicFolder, checkOutsideInputs, lockPathOf, openOutput, OutputLock, readOutputMarker, removeAside, removeDeadTemps, withAtomicOutput,
} from '../src/io/index.js';
import { hostTag } from '../src/io/owner.js';

const root = mkdtempSync(join(tmpdir(), 'peft-io-atomic-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => {
  const d = join(root, `c${n++}`);
  mkdirSync(d);
  return d;
};

async function failure(p: Promise<unknown>): Promise<PeftError> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  expect(e).toBeInstanceOf(PeftError);
  return e as PeftError;
}

describe('checkOutsideInputs', () => {
  it('refuses --out equal to, containing or inside an input, through symlinks; skips missing inputs', async () => {
    const d = fresh();
    mkdirSync(join(d, 'x/b'), { recursive: true });
    writeFileSync(join(d, 'x/data.jsonl'), '');
    symlinkSync(join(d, 'x'), join(d, 'link'));
    const cases: [string, string, RegExp][] = [
      [join(d, 'x/b'), join(d, 'x/b'), /is the input/],
      [join(d, 'x'), join(d, 'x/b'), /contains the input/],
      [join(d, 'x/b/out'), join(d, 'x/b'), /lies inside the input/],
      [join(d, 'link'), join(d, 'x/b'), /contains the input/],
      [join(d, 'x/b/new/deeper'), join(d, 'link/b'), /lies inside the input/],
      [join(d, 'x'), join(d, 'x/data.jsonl'), /contains the input/],
      ['/', join(d, 'x/b'), /contains the input/],
    ];
    for (const [out, input, msg] of cases) {
      const e = await failure(checkOutsideInputs(out, [input]));
      expect(e, `${out} vs ${input}`).toMatchObject({ code: 'E_INPUT', exitCode: 2 });
      expect(e.message).toMatch(msg);
      expect(e.message).toContain(`--out ${out}`);
      expect(e.message).toContain(`the input ${input}`);
    }
    await checkOutsideInputs(join(d, 'x/sibling'), [join(d, 'x/b'), join(d, 'missing'), undefined]);
    await checkOutsideInputs(join(d, 'x'), [join(d, 'x/missing')]); // reported as not found by the command
  });

  it('refuses an empty --out and one that is or holds the current folder', async () => {
    expect((await failure(checkOutsideInputs('', []))).message).toBe('--out is empty');
    expect((await failure(checkOutsideInputs('.', []))).message).toMatch(/--out \. is the current folder/);
    expect((await failure(checkOutsideInputs(join(process.cwd(), '..'), []))).message).toMatch(/contains the current folder/);
  });
});

describe('--force and the marker', () => {
  it('replaces its own output, an empty folder; refuses a foreign or other-command folder and a file', async () => {
    const d = fresh();
    const out = join(d, 'out');
    await withAtomicOutput(out, { command: 'quantize' }, async (tmp) => writeFileSync(join(tmp, 'a'), '1'));
    expect(await readOutputMarker(out)).toMatchObject({ format: 'peft-output', version: 1, command: 'quantize', peft: '0.1.0' });
    await withAtomicOutput(out, { command: 'quantize', force: true }, async (tmp) => writeFileSync(join(tmp, 'a'), '2'));
    expect(readFileSync(join(out, 'a'), 'utf8')).toBe('2');
    const other = await failure(withAtomicOutput(out, { command: 'merge', force: true }, async () => {}));
    expect(other).toMatchObject({ code: 'E_EXISTS', message: `${out}: was written by peft quantize, not peft merge: --force replaces only an earlier output of the same command; remove it yourself or choose another --out` });
    const mine = join(d, 'mine');
    mkdirSync(mine);
    writeFileSync(join(mine, 'notes'), 'x');
    const foreign = await failure(openOutput({ command: 'quantize', out: mine, force: true }));
    expect(foreign.message).toMatch(/mine: was not written by peft quantize \(no \.peft-output\.json\)/);
    expect(readdirSync(mine)).toEqual(['notes']);
    writeFileSync(join(d, 'file'), 'x');
    expect((await failure(openOutput({ command: 'quantize', out: join(d, 'file'), force: true }))).message).toMatch(/exists and is not a folder peft wrote/);
    mkdirSync(join(d, 'empty'));
    await withAtomicOutput(join(d, 'empty'), { command: 'quantize', force: true }, async (tmp) => writeFileSync(join(tmp, 'a'), '1'));
    expect(readdirSync(d).sort()).toEqual(['empty', 'file', 'mine', 'out']); // no lock, temp or aside left
  });

  it('removes the parent folders it created when nothing was written', async () => {
    const d = fresh();
    await expect(withAtomicOutput(join(d, 'p/q/out'), { command: 't' }, async () => {
      throw new Error('boom');
    })).rejects.toThrow('boom');
    expect(readdirSync(d)).toEqual([]);
  });
});

describe('write failures', () => {
  const errno = (code: string) => Object.assign(new Error(`${code}: failed, write`), { code, syscall: 'write' });
  it('ENOSPC / EDQUOT: E_NO_SPACE, exit 1, naming the output and the estimate; EROFS / EACCES: E_IO, exit 2', async () => {
    const d = fresh();
    for (const code of ['ENOSPC', 'EDQUOT']) {
      const e = await failure(openOutput({ command: 't', out: join(d, 'o') }).then((o) => o.write(async () => {
        throw errno(code);
      }, { neededBytes: () => 3.5 * 2 ** 20 }).finally(() => o.close())));
      expect(e).toMatchObject({ code: 'E_NO_SPACE', exitCode: 1, message: `no space left on device: ${join(d, 'o')} (needed about 4 MiB)` });
    }
    for (const [code, msg] of [['EROFS', /read-only file system/], ['EACCES', /permission denied/]] as const) {
      const e = await failure(withAtomicOutput(join(d, 'o'), { command: 't' }, async () => {
        throw errno(code);
      }));
      expect(e).toMatchObject({ code: 'E_IO', exitCode: 2 });
      expect(e.message).toMatch(msg);
    }
    expect(readdirSync(d)).toEqual([]);
  });
});

/** A process that stays alive until killed, and one that has exited (its pid is free). */
function liveChild() {
  return spawn('sleep', ['60']);
}
function deadPid(): number {
  return Number(execFileSync('sh', ['-c', 'echo $$']).toString());
}
const lockJson = (o: Record<string, unknown>) => JSON.stringify({ format: 'peft-lock', version: 1, command: 'quantize', started: '2025-01-01T00:00:00.000Z', ...o });

describe('OutputLock', () => {
  it('refuses a live holder by name; takes over a dead one, a reused pid and an old torn lock; never another host', async () => {
    const d = fresh();
    const out = join(d, 'out');
    const lock = lockPathOf(out);
    const child = liveChild();
    try {
      writeFileSync(lock, lockJson({ pid: child.pid, host: hostname() }));
      const e = await failure(OutputLock.acquire(out, 'quantize'));
      expect(e).toMatchObject({ code: 'E_LOCKED', exitCode: 2 });
      expect(e.message).toBe(`${out}: is being written by another peft process (peft quantize, pid ${child.pid} on ${hostname()}, since 2025-01-01T00:00:00.000Z); wait for it to finish (lock ${lock})`);
      writeFileSync(lock, lockJson({ pid: child.pid, host: hostname(), procStart: '1' })); // same pid, another process
      (await OutputLock.acquire(out, 'quantize')).release();
      expect(existsSync(lock)).toBe(false);
    } finally {
      child.kill();
    }
    writeFileSync(lock, lockJson({ pid: deadPid(), host: hostname() }));
    const taken = await OutputLock.acquire(out, 'train');
    expect(JSON.parse(readFileSync(lock, 'utf8'))).toMatchObject({ command: 'train', pid: process.pid, host: hostname() });
    taken.release();
    writeFileSync(lock, '');
    utimesSync(lock, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    (await OutputLock.acquire(out, 'train')).release();
    writeFileSync(lock, lockJson({ pid: 1, host: 'elsewhere' }));
    expect((await failure(OutputLock.acquire(out, 'quantize'))).message).toMatch(/pid 1 on elsewhere, .*; if that run is gone, remove .*\.out\.peft-lock$/);
    expect(readdirSync(d)).toEqual(['.out.peft-lock']); // the foreign lock, and no temp file
  });

  it('nests in one process: the file goes with the outermost release', async () => {
    const out = join(fresh(), 'out');
    const outer = await OutputLock.acquire(out, 'train');
    const inner = await OutputLock.acquire(out, 'train');
    inner.release();
    expect(existsSync(lockPathOf(out))).toBe(true);
    outer.release();
    outer.release();
    expect(existsSync(lockPathOf(out))).toBe(false);
  });
});

describe('temp folders', () => {
  it('removeDeadTemps removes dead owners’ temp and aside folders, puts back an aside whose output is missing, keeps live and foreign ones', async () => {
    const d = fresh();
    const me = hostTag();
    const dead = deadPid();
    const names = {
      deadTmp: `.out.peft-tmp-${me}-${dead}-0000abcd`, deadDel: `.out.peft-del-${me}-${dead}-0000abcd`,
      liveTmp: `.out.peft-tmp-${me}-${process.pid}-0000abcd`, foreign: `.out.peft-tmp-ffffffff-${dead}-0000abcd`,
      otherName: `.other.peft-tmp-${me}-${dead}-0000abcd`, oldAside: `.gone.peft-old-${me}-${dead}-0000abcd`,
    };
    for (const name of Object.values(names)) mkdirSync(join(d, name));
    writeFileSync(join(d, names.oldAside, 'kept'), 'x');
    await removeDeadTemps(d, 'out');
    expect(readdirSync(d).sort()).toEqual([names.foreign, names.liveTmp, names.oldAside, names.otherName].sort());
    await removeDeadTemps(d);
    expect(readdirSync(d).sort()).toEqual(['gone', names.foreign, names.liveTmp].sort());
    expect(readFileSync(join(d, 'gone/kept'), 'utf8')).toBe('x');
  });

  it('removeAside deletes by renaming first; onSignal keep leaves the temp folder on SIGINT', async () => {
    const d = fresh();
    mkdirSync(join(d, 'step-1'));
    await removeAside(join(d, 'step-1'));
    expect(readdirSync(d)).toEqual([]);
    const keepAlive = () => {};
    process.on('SIGINT', keepAlive);
    try {
      const f = await AtomicFolder.create(join(d, 'ck'), { existing: 'replace', onSignal: 'keep' });
      process.emit('SIGINT', 'SIGINT');
      expect(existsSync(f.tmp)).toBe(true);
      await f.commit();
      expect(readdirSync(d)).toEqual(['ck']);
    } finally {
      process.off('SIGINT', keepAlive);
    }
  });
});
