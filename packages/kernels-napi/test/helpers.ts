// Shared by the binding tests: load the built module (or skip when it is not built, unless
// PEFT_REQUIRE_NATIVE=1 makes a missing build a failure), and assert an EINVAL naming an argument.
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { expect } from 'vitest';

export type Kernels = typeof import('../index.js');

export const pkgDir = join(__dirname, '..');
const built = readdirSync(pkgDir).some((f) => f.startsWith('kernels-napi.') && f.endsWith('.node'));
const required = process.env.PEFT_REQUIRE_NATIVE === '1';

export const kernels: Kernels | undefined =
  built || required ? (createRequire(join(pkgDir, 'package.json'))('./index.js') as Kernels) : undefined;

export function expectEinval(fn: () => void, argName: string): void {
  let err: (Error & { code?: string }) | undefined;
  try {
    fn();
  } catch (e) {
    err = e as Error & { code?: string };
  }
  expect(err, `expected a throw naming ${argName}`).toBeInstanceOf(Error);
  expect(err?.code).toBe('EINVAL');
  expect(err?.message).toContain(`\`${argName}\``);
}
