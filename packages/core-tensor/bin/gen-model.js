#!/usr/bin/env node
// Deterministic tiny Llama-family model generator (tests, `make demo`, `make bench`).
import { genModelMain } from '../dist/index.js';

process.exitCode = await genModelMain(process.argv.slice(2));
