/**
 * scripts/check-size.mjs on fixture trees: 400 lines pass, 401 fail (TS, Rust, Python, .mjs alike),
 * unless the allowlist names the file with a reason; an entry without a reason, or for a file that
 * is gone or short again, fails; generated fixtures and node_modules are not ours.
 */
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { runCheck, writeTree } from './tree.js';

const lines = (n: number) => Array.from({ length: n }, (_, i) => `// line ${i + 1}`).join('\n') + '\n';
const ALLOW = 'scripts/size-allowlist.txt';

const roots: string[] = [];
const check = (files: Record<string, string>) => {
  const root = writeTree(files);
  roots.push(root);
  return runCheck('size', root);
};
afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

describe('check-size', () => {
  it('passes files of 400 lines, and long files that are not ours', () => {
    const r = check({
      'packages/core-tensor/src/a.ts': lines(400),
      'packages/kernels-napi/src/b.rs': lines(400),
      'packages/core-tensor/test/fixtures/generated.ts': lines(5000),
      'packages/core-tensor/node_modules/dep/index.js': lines(5000),
      'packages/core-tensor/dist/index.js': lines(5000),
      'packages/core-tensor/test/fixtures/data.json': lines(5000),
      [ALLOW]: '# nothing allowed\n',
    });
    expect(r.lines).toEqual(['size: ok']);
    expect(r.status).toBe(0);
  });

  for (const file of ['packages/core-tensor/src/big.ts', 'packages/kernels-napi/src/ffi.rs', 'scripts/ref/reference.py', 'scripts/tool.mjs', 'tests/integration/x.test.ts']) {
    it(`fails on a 401-line ${file}`, () => {
      const r = check({ [file]: lines(401) });
      expect(r.status).toBe(1);
      expect(r.lines).toContain(`${file}: 401 lines (> 400); split it, or list it in ${ALLOW} with a reason`);
    });
  }

  it('passes a long file the allowlist names with a reason', () => {
    const r = check({ 'packages/core-tensor/src/big.ts': lines(450), [ALLOW]: 'packages/core-tensor/src/big.ts  one generated table\n' });
    expect(r.lines).toEqual(['size: ok']);
    expect(r.status).toBe(0);
  });

  const bad: [string, string, string][] = [
    ['an entry without a reason', 'packages/core-tensor/src/big.ts\n', `${ALLOW}:1: "packages/core-tensor/src/big.ts" gives no reason`],
    ['an entry for a missing file', 'packages/core-tensor/src/gone.ts  was long\npackages/core-tensor/src/big.ts  table\n', `${ALLOW}: packages/core-tensor/src/gone.ts is not a source file here; drop the entry`],
  ];
  for (const [what, allow, line] of bad) {
    it(`fails on ${what}`, () => {
      const r = check({ 'packages/core-tensor/src/big.ts': lines(450), [ALLOW]: allow });
      expect(r.status).toBe(1);
      expect(r.lines).toContain(line);
    });
  }

  it('fails on an entry for a file back under the limit', () => {
    const r = check({ 'packages/core-tensor/src/big.ts': lines(399), [ALLOW]: 'packages/core-tensor/src/big.ts  was long\n' });
    expect(r.status).toBe(1);
    expect(r.lines).toContain(`${ALLOW}: packages/core-tensor/src/big.ts has 399 lines now; drop the entry`);
  });
});
