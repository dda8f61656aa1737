/**
 * scripts/check-layers.mjs on fixture trees: a tree that keeps the layering passes (the Tensor
 * facade's edges included), and each rule fails on a tree with one violation of it: kernels-napi
 * importing ours, core importing a plugin or the CLI, a plugin importing another plugin (by name or
 * by a relative path, from src or test) or the CLI, a relative import into another package, and a
 * cycle between core folders.
 */
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { runCheck, writeTree } from './tree.js';

// A core whose Tensor delegates to ops and backward (the facade), two plugins, a CLI, kernels.
const CLEAN: Record<string, string> = {
  'packages/kernels-napi/index.js': "module.exports = require('./native.js');\n",
  'packages/kernels-napi/native.js': 'module.exports = {};\n',
  'packages/core-tensor/src/errors.ts': 'export class PeftError extends Error {}\n',
  'packages/core-tensor/src/tensor/tensor.ts':
    "import * as ops from '../ops/index.js';\nimport { backward } from '../autograd/backward.js';\nexport class Tensor { add(b: Tensor): Tensor { return ops.add(this, b); } backward(): void { backward(this); } }\n",
  'packages/core-tensor/src/tensor/create.ts': "import { Tensor } from './tensor.js';\nexport const make = () => new Tensor();\n",
  'packages/core-tensor/src/ops/index.ts': "export { add } from './add.js';\n",
  'packages/core-tensor/src/ops/add.ts': "import { make } from '../tensor/create.js';\nimport type { Tensor } from '../tensor/tensor.js';\nexport const add = (a: Tensor, b: Tensor): Tensor => (a && b ? make() : make());\n",
  'packages/core-tensor/src/autograd/backward.ts': "import { add } from '../ops/add.js';\nimport type { Tensor } from '../tensor/tensor.js';\nexport function backward(t: Tensor): void { add(t, t); }\n",
  'packages/core-tensor/src/io/read.ts': "import { PeftError } from '../errors.js';\nimport { make } from '../tensor/create.js';\nexport const read = () => (make() ? 1 : new PeftError());\n",
  'packages/core-tensor/src/index.ts': "export * from './io/read.js';\nexport * from './ops/index.js';\n",
  'packages/plugin-a/src/index.ts': "import { helper } from './helper.js';\nexport const a = helper;\n",
  'packages/plugin-a/src/helper.ts': 'export const helper = 1;\n',
  'packages/plugin-a/test/a.test.ts': "import { a } from '../src/index.js';\nexport const t = a;\n",
  'packages/plugin-b/src/index.ts': 'export const b = 2;\n',
  'packages/cli/src/index.ts': 'export const cli = 3;\n',
  'examples/plugin-x/src/index.js': 'export const x = 4;\n',
};

const roots: string[] = [];
const check = (extra: Record<string, string>) => {
  const root = writeTree({ ...CLEAN, ...extra });
  roots.push(root);
  return runCheck('layers', root);
};
afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

describe('check-layers', () => {
  it('passes a tree that keeps the layers, Tensor facade included', () => {
    const r = check({});
    expect(r.lines).toEqual(['layers: ok']);
    expect(r.status).toBe(0);
  });

  const cases: [string, Record<string, string>, RegExp][] = [
    ['kernels-napi importing core', { 'packages/kernels-napi/native.js': "require('../core-tensor/src/errors.ts');\n" },
      /^kernels-import-nothing-of-ours: packages\/kernels-napi\/native\.js -> packages\/core-tensor\/src\/errors\.ts$/],
    ['core importing a plugin by relative path', { 'packages/core-tensor/src/io/read.ts': "import { a } from '../../../plugin-a/src/index.js';\nexport const read = a;\n" },
      /^core-imports-no-plugin-or-cli: packages\/core-tensor\/src\/io\/read\.ts -> packages\/plugin-a\/src\/index\.ts$/],
    ['core importing a plugin by name', { 'packages/core-tensor/src/io/read.ts': "import { a } from '@peft/plugin-a';\nexport const read = a;\n" },
      /^core-imports-no-plugin-or-cli: packages\/core-tensor\/src\/io\/read\.ts -> @peft\/plugin-a$/],
    ['core importing the CLI', { 'packages/core-tensor/src/io/read.ts': "import { cli } from '../../../cli/src/index.js';\nexport const read = cli;\n" },
      /^core-imports-no-plugin-or-cli: .* -> packages\/cli\/src\/index\.ts$/],
    ['a plugin importing another by relative path', { 'packages/plugin-a/src/helper.ts': "export { b as helper } from '../../plugin-b/src/index.js';\n" },
      /^plugin-imports-no-other-plugin: packages\/plugin-a\/src\/helper\.ts -> packages\/plugin-b\/src\/index\.ts$/],
    ['a plugin importing another by name', { 'packages/plugin-a/src/helper.ts': "export { b as helper } from '@peft/plugin-b';\n" },
      /^plugin-imports-no-other-plugin: packages\/plugin-a\/src\/helper\.ts -> @peft\/plugin-b$/],
    ["a plugin's test importing another plugin", { 'packages/plugin-a/test/a.test.ts': "import { b } from '../../plugin-b/src/index.js';\nexport const t = b;\n" },
      /^plugin-imports-no-other-plugin: packages\/plugin-a\/test\/a\.test\.ts -> packages\/plugin-b\/src\/index\.ts$/],
    ['a third-party plugin importing a plugin', { 'examples/plugin-x/src/index.js': "export { a as x } from '../../../packages/plugin-a/src/index.ts';\n" },
      /^plugin-imports-no-other-plugin: examples\/plugin-x\/src\/index\.js -> packages\/plugin-a\/src\/index\.ts$/],
    ['a plugin importing the CLI', { 'packages/plugin-b/src/index.ts': "export { cli as b } from '../../cli/src/index.js';\n" },
      /^plugin-imports-no-cli: packages\/plugin-b\/src\/index\.ts -> packages\/cli\/src\/index\.ts$/],
    ["a plugin's test importing core's sources", { 'packages/plugin-a/test/a.test.ts': "import { read } from '../../core-tensor/src/index.js';\nexport const t = read;\n" },
      /^packages-meet-by-name: packages\/plugin-a\/test\/a\.test\.ts -> packages\/core-tensor\/src\/index\.ts$/],
    ['a cycle between core folders', { 'packages/core-tensor/src/tensor/create.ts': "import { read } from '../io/read.js';\nimport { Tensor } from './tensor.js';\nexport const make = () => (read ? new Tensor() : new Tensor());\n" },
      /^core-folders-form-no-cycle: io\/, tensor\/: io\/ -> tensor\/ \(io\/read\.ts -> tensor\/create\.ts\); tensor\/ -> io\/ \(tensor\/create\.ts -> io\/read\.ts\)$/],
    ['a cycle through tensor/ that is not the facade', { 'packages/core-tensor/src/tensor/create.ts': "import { add } from '../ops/add.js';\nimport { Tensor } from './tensor.js';\nexport const make = () => (add ? new Tensor() : new Tensor());\n" },
      /^core-folders-form-no-cycle: ops\/, tensor\/: /],
  ];
  for (const [what, extra, line] of cases) {
    it(`fails on ${what}`, () => {
      const r = check(extra);
      expect(r.status).toBe(1);
      expect(r.lines.some((l) => line.test(l)), r.lines.join('\n')).toBe(true);
    });
  }
});
