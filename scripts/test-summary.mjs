#!/usr/bin/env node
// Prints the one plain line CI reads: "N passed, N failed" over vitest's JSON report, cargo test's
// log and the house checks' log (one "NAME passed|failed" line per check, from `make check-run`).
// Exits non-zero when anything failed or a report is missing.
import { existsSync, readFileSync } from 'node:fs';

const [vitestJson, cargoLog, checksLog] = process.argv.slice(2);
let passed = 0;
let failed = 0;
let skipped = 0;
let missing = false;

if (vitestJson && existsSync(vitestJson)) {
  const r = JSON.parse(readFileSync(vitestJson, 'utf8'));
  passed += r.numPassedTests;
  failed += r.numFailedTests + (r.numFailedTestSuites ?? 0);
  skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
} else missing = true;

if (cargoLog && existsSync(cargoLog)) {
  for (const m of readFileSync(cargoLog, 'utf8').matchAll(/test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored/g)) {
    passed += Number(m[1]);
    failed += Number(m[2]);
    skipped += Number(m[3]);
  }
  if (/error(\[E\d+\])?:/.test(readFileSync(cargoLog, 'utf8')) && !/test result/.test(readFileSync(cargoLog, 'utf8'))) failed += 1;
} else missing = true;

if (checksLog && existsSync(checksLog)) {
  const results = readFileSync(checksLog, 'utf8').split('\n').filter(Boolean);
  passed += results.filter((l) => / passed$/.test(l)).length;
  failed += results.filter((l) => !/ passed$/.test(l)).length;
  if (results.length === 0) missing = true;
} else if (checksLog) missing = true;

if (missing) failed += 1;
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
