/**
 * Test-only fault injection, loaded with `node --import ./fault-preload.mjs` in front of the peft binary
 * (never imported by production code). It wraps Node's fs functions that change the disk and, for paths
 * under PEFT_FAULT_DIR only, injects what the environment asks for:
 *
 *   PEFT_FAULT_ENOSPC_AFTER=N   writes succeed for N bytes in total, then fail with ENOSPC (the write
 *                               that crosses the limit is written partly, as on a full disk)
 *   PEFT_FAULT_EROFS=all|write  every change fails with EROFS (all: also access(W_OK) and mkdir of a new
 *                               folder, a read-only mount; write: only file writes, a remount mid-run)
 *   PEFT_FAULT_KILL_AT=N        SIGKILL at the N-th change (a write is half done first)
 *   PEFT_FAULT_KILL_ON=RE       SIGKILL at the first change whose "OP PATH" matches RE (e.g. "^rm .*peft-del")
 *   PEFT_FAULT_COUNT_FILE=F     write {"changes": N, "bytes": B} (changes made, bytes written) to F at exit
 *   PEFT_FAULT_SIGINT_ON=RE     send SIGINT at the first write to a path matching RE (Ctrl-C while that
 *                               file is written) and, with PEFT_FAULT_SIGINT_TWICE=1, again at the next change
 *
 * Changes counted: open for writing, write (FileHandle, fd), writeFile/appendFile, mkdir, rename, rm,
 * rmdir, unlink, link, copyFile, in their promise and sync forms (what peft uses).
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { resolve, sep } from 'node:path';

const env = process.env;
const DIR = env.PEFT_FAULT_DIR ? resolve(env.PEFT_FAULT_DIR) : undefined;
let budget = env.PEFT_FAULT_ENOSPC_AFTER === undefined ? Infinity : Number(env.PEFT_FAULT_ENOSPC_AFTER);
const erofs = env.PEFT_FAULT_EROFS;
const killAt = env.PEFT_FAULT_KILL_AT === undefined ? Infinity : Number(env.PEFT_FAULT_KILL_AT);
const killRe = env.PEFT_FAULT_KILL_ON ? new RegExp(env.PEFT_FAULT_KILL_ON) : undefined;
const sigintRe = env.PEFT_FAULT_SIGINT_ON ? new RegExp(env.PEFT_FAULT_SIGINT_ON) : undefined;
const twice = env.PEFT_FAULT_SIGINT_TWICE === '1';
let changes = 0;
let written = 0;
let sigints = 0;

if (env.PEFT_FAULT_COUNT_FILE) {
  const file = env.PEFT_FAULT_COUNT_FILE;
  const write = fs.writeFileSync;
  process.on('exit', () => write(file, JSON.stringify({ changes, bytes: written })));
}

const under = (p) => DIR !== undefined && p !== undefined && (resolve(String(p)) + sep).startsWith(DIR + sep);
const errno = (code, syscall, path) =>
  Object.assign(new Error(`${code}: ${code === 'ENOSPC' ? 'no space left on device' : 'read-only file system'}, ${syscall} '${path}'`),
    { code, errno: code === 'ENOSPC' ? -28 : -30, syscall, path: String(path) });
const isWriteFlag = (flags) => typeof flags === 'string' ? /[wax+]/.test(flags) : typeof flags === 'number' && (flags & 3) !== 0;

/** Counts one change (`op` on `path`); kills or sends SIGINT as asked. `half` does half of a write first. */
function change(op, path, half) {
  changes++;
  if (sigintRe && twice && sigints === 1) {
    sigints = 2;
    process.kill(process.pid, 'SIGINT');
  }
  if (sigintRe && sigints === 0 && sigintRe.test(String(path))) {
    sigints = 1;
    process.kill(process.pid, 'SIGINT');
  }
  if (changes >= killAt || killRe?.test(`${op} ${path}`)) {
    half?.();
    process.kill(process.pid, 'SIGKILL');
  }
}

/** How many of `n` bytes a write may do before the disk is "full" (EROFS: none may). */
function allowed(n, path, syscall) {
  if (erofs) throw errno('EROFS', syscall, path);
  const ok = Math.min(n, budget);
  budget -= ok;
  written += ok;
  return ok;
}

const P = fs.promises;
const handlePath = new WeakMap();
const fdPath = new Map();

function wrapAsync(obj, name, pathOf, kind) {
  const orig = obj[name];
  obj[name] = async function (...args) {
    const path = pathOf(args);
    if (!under(path)) return orig.apply(this, args);
    if (kind === 'mkdir' && erofs === 'all' && !fs.existsSync(path)) throw errno('EROFS', name, path);
    if (kind === 'change' && erofs === 'all') throw errno('EROFS', name, path);
    change(name, path);
    return orig.apply(this, args);
  };
}

for (const name of ['rename', 'copyFile', 'link']) wrapAsync(P, name, (a) => a[1], 'change');
for (const name of ['rm', 'rmdir', 'unlink']) wrapAsync(P, name, (a) => a[0], 'change');
wrapAsync(P, 'mkdir', (a) => a[0], 'mkdir');

const access = P.access;
P.access = async function (path, mode) {
  if (under(path) && erofs === 'all' && (mode & fs.constants.W_OK)) throw errno('EROFS', 'access', path);
  return access.call(this, path, mode);
};

for (const name of ['writeFile', 'appendFile']) {
  const orig = P[name];
  P[name] = async function (path, data, opts) {
    if (!under(path)) return orig.call(this, path, data, opts);
    const buf = Buffer.from(data);
    change(name, path, () => fs.writeFileSync(path, buf.subarray(0, buf.length >> 1)));
    const ok = allowed(buf.length, path, 'write');
    if (ok < buf.length) {
      await orig.call(this, path, buf.subarray(0, ok), opts);
      throw errno('ENOSPC', 'write', path);
    }
    return orig.call(this, path, data, opts);
  };
}

/** (buffer, offset?, length?, position?) or (string, position?, encoding?) -> bytes, offset, length, position. */
function writeArgs(data, rest) {
  if (typeof data === 'string') {
    const buf = Buffer.from(data, typeof rest[1] === 'string' ? rest[1] : 'utf8');
    return [buf, 0, buf.length, rest[0]];
  }
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const offset = rest[0] ?? 0;
  return [buf, offset, rest[1] ?? buf.length - offset, rest[2]];
}

const open = P.open;
P.open = async function (path, flags, mode) {
  if (under(path) && isWriteFlag(flags ?? 'r')) {
    if (erofs === 'all') throw errno('EROFS', 'open', path);
    change('open', path);
  }
  const fh = await open.call(this, path, flags, mode);
  if (under(path)) handlePath.set(fh, String(path));
  return fh;
};

const probe = await open.call(P, process.execPath, 'r');
const FH = Object.getPrototypeOf(probe);
await probe.close();
const fhWrite = FH.write;
FH.write = async function (data, ...rest) {
  const path = handlePath.get(this);
  if (path === undefined) return fhWrite.call(this, data, ...rest);
  const [buf, offset, length, position] = writeArgs(data, rest);
  change('write', path, () => fs.writeSync(this.fd, buf, offset, length >> 1, position));
  const ok = allowed(length, path, 'write');
  if (ok < length) {
    if (ok > 0) await fhWrite.call(this, buf, offset, ok, position);
    throw errno('ENOSPC', 'write', path);
  }
  return fhWrite.call(this, data, ...rest);
};

const openSync = fs.openSync;
fs.openSync = function (path, flags, mode) {
  if (under(path) && isWriteFlag(flags ?? 'r')) {
    if (erofs === 'all') throw errno('EROFS', 'open', path);
    change('openSync', path);
  }
  const fd = openSync.call(this, path, flags, mode);
  if (under(path)) fdPath.set(fd, String(path));
  return fd;
};

const writeSync = fs.writeSync;
fs.writeSync = function (fd, data, ...rest) {
  const path = fdPath.get(fd);
  if (path === undefined) return writeSync.call(this, fd, data, ...rest);
  const [buf, offset, length, position] = writeArgs(data, rest);
  change('writeSync', path, () => writeSync.call(this, fd, buf, offset, length >> 1, position));
  const ok = allowed(length, path, 'write');
  if (ok < length) {
    if (ok > 0) writeSync.call(this, fd, buf, offset, ok, position);
    throw errno('ENOSPC', 'write', path);
  }
  return writeSync.call(this, fd, data, ...rest);
};

for (const [name, at] of [['renameSync', 1], ['linkSync', 1], ['unlinkSync', 0], ['rmSync', 0], ['mkdirSync', 0]]) {
  const orig = fs[name];
  fs[name] = function (...args) {
    if (under(args[at])) {
      if (erofs === 'all') throw errno('EROFS', name, args[at]);
      change(name, args[at]);
    }
    return orig.apply(this, args);
  };
}

syncBuiltinESMExports();
