// Loader for the native kernels (hand-written; `napi build` generates nothing here).
// Picks ./kernels-napi.<platform>-<arch>[-<abi>].node, the name `napi build --platform`
// gives the file, and fails with a message naming that file when it is missing.
'use strict';

const { existsSync } = require('node:fs');
const { join } = require('node:path');

function isMusl() {
  // glibc reports its version in the process report; musl does not.
  try {
    const report = process.report && process.report.getReport();
    const header = report && (typeof report === 'string' ? JSON.parse(report) : report).header;
    return !(header && header.glibcVersionRuntime);
  } catch {
    return false;
  }
}

function fileFor(abi) {
  return `kernels-napi.${process.platform}-${process.arch}${abi}.node`;
}

function pickFileName() {
  const { platform, arch } = process;
  if (platform === 'win32') return fileFor('-msvc');
  if (platform !== 'linux') return fileFor('');
  const [gnu, musl] = ['gnu', 'musl'].map((libc) => fileFor(arch === 'arm' ? `-${libc}eabihf` : `-${libc}`));
  // Only one is normally built; ask the process report (slow-ish) only when both are there or neither.
  const has = (f) => existsSync(join(__dirname, f));
  if (has(gnu) !== has(musl)) return has(gnu) ? gnu : musl;
  return isMusl() ? musl : gnu;
}

const fileName = pickFileName();
const filePath = join(__dirname, fileName);

if (!existsSync(filePath)) {
  throw new Error(
    `@peft/kernels-napi: native binary ${fileName} not found in ${__dirname}; ` +
      'run `make build` (or `pnpm --filter @peft/kernels-napi build`) to compile it',
  );
}

try {
  module.exports = require(filePath);
} catch (cause) {
  throw new Error(`@peft/kernels-napi: failed to load ${filePath}: ${cause && cause.message}`, { cause });
}
