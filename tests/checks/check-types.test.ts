/**
 * scripts/check-types.mjs on fixture trees: a clean project passes; a type error in a test file
 * fails with tsc's message; a TypeScript file that no tsconfig.json includes fails as unchecked.
 */
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { runCheck, writeTree } from './tree.js';

const TSCONFIG = JSON.stringify({
  compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: true, types: [] },
  include: ['src', 'test'],
});
const CLEAN = {
  'packages/p/tsconfig.json': TSCONFIG,
  'packages/p/src/index.ts': 'export const twice = (n: number): number => 2 * n;\n',
  'packages/p/test/index.test.ts': "import { twice } from '../src/index.js';\nexport const four: number = twice(2);\n",
};

const roots: string[] = [];
const check = (extra: Record<string, string>) => {
  const root = writeTree({ ...CLEAN, ...extra });
  roots.push(root);
  return runCheck('types', root);
};
afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

describe('check-types', () => {
  it('passes a project whose sources and tests type-check', () => {
    const r = check({});
    expect(r.lines).toEqual(['types: ok']);
    expect(r.status).toBe(0);
  });

  it('fails on a type error in a test', () => {
    const r = check({ 'packages/p/test/index.test.ts': "import { twice } from '../src/index.js';\nexport const four: string = twice(2);\n" });
    expect(r.status).toBe(1);
    expect(r.lines).toContain("packages/p: packages/p/test/index.test.ts(2,14): error TS2322: Type 'number' is not assignable to type 'string'.");
  });

  it('fails on a TypeScript file no project includes', () => {
    const r = check({ 'packages/p/bench/run.ts': 'export const n: number = 1;\n' });
    expect(r.status).toBe(1);
    expect(r.lines).toContain('packages/p/bench/run.ts: in no tsconfig.json project, so never type-checked');
  });
});
