/**
 * The positions rule (tasks/positions.ts) as library calls on a fixture model with
 * max_position_embeddings 24: generation stops when prompt + new tokens fill the positions
 * (stopReason "max_position_embeddings"), a prompt that leaves no room is refused before any forward,
 * and --seq-len above the limit is E_INPUT in eval and train alike, with defaults clamped to it.
 */
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateTinyLlama } from '../src/fixtures/tiny-llama.js';
import { Llama } from '../src/models/llama.js';
import { registerBuiltins } from '../src/plugin/builtins.js';
import { createRegistry } from '../src/plugin/registry.js';
import { runEval } from '../src/tasks/eval.js';
import { generateTokens } from '../src/tasks/generate.js';
import { runGenerate } from '../src/tasks/generate-run.js';
import { maxPositionsOf, positionsLeft, resolveSeqLen } from '../src/tasks/positions.js';
import { runTrain } from '../src/tasks/train-run.js';
import { testLora } from './adapters-lora-method.js';

let work: string;
let dir: string;
beforeAll(async () => {
  work = await fsp.mkdtemp(join(tmpdir(), 'peft-positions-'));
  dir = join(work, 'model');
  await generateTinyLlama(dir, { numLayers: 1, maxPositionEmbeddings: 24, seed: 1 });
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

describe('positions rule', () => {
  it('reads max_position_embeddings from config.json; seq-len above it is E_INPUT, the default is clamped', async () => {
    expect(await maxPositionsOf(dir)).toBe(24);
    expect(resolveSeqLen(undefined, 512, 24, dir)).toBe(24);
    expect(resolveSeqLen(undefined, 16, 24, dir)).toBe(16);
    expect(resolveSeqLen(24, 512, 24, dir)).toBe(24);
    expect(() => resolveSeqLen(25, 512, 24, dir)).toThrow(expect.objectContaining({
      code: 'E_INPUT', message: `${join(dir, 'config.json')}: seq-len 25 exceeds max_position_embeddings 24`,
    }));
  });

  it('leaves max - used - prompt positions; a prompt that leaves none for a wanted token is E_INPUT', () => {
    expect(positionsLeft(24, 0, 10, 64)).toBe(14);
    expect(positionsLeft(24, 4, 10, 64)).toBe(10);
    expect(positionsLeft(24, 0, 24, 0)).toBe(0);
    expect(() => positionsLeft(24, 0, 24, 1)).toThrow(/the prompt is 24 tokens; the model has max_position_embeddings 24/);
    expect(() => positionsLeft(24, 0, 100, 0)).toThrow(/no token can follow it/);
  });

  it('generation stops when prompt + new tokens fill the positions, and says why', async () => {
    const model = await Llama.fromFolder(dir);
    try {
      const gen = generateTokens(model, [1, 5, 6, 7], { maxNewTokens: 100, stopTokenIds: [] });
      let step = gen.next();
      while (!step.done) step = gen.next();
      expect(step.value.tokenIds).toHaveLength(20);
      expect(step.value.stopReason).toBe('max_position_embeddings');
      const short = generateTokens(model, [1, 5], { maxNewTokens: 3, stopTokenIds: [] });
      let s = short.next();
      while (!s.done) s = short.next();
      expect(s.value.stopReason).toBe('length');
      expect(() => generateTokens(model, Array.from({ length: 24 }, () => 5), { maxNewTokens: 1 }).next()).toThrow(/no token can follow it/);
    } finally {
      model.dispose();
    }
  });

  it('runGenerate reports the limit; a long prompt is refused without running the model over it', async () => {
    const r = await runGenerate({ modelDir: dir, prompt: 'Hi', maxNewTokens: 100 });
    expect(r.promptTokenIds.length + r.tokenIds.length).toBeLessThanOrEqual(24);
    if (r.stopReason !== 'stop') expect(r.stopReason).toBe('max_position_embeddings');
    expect(r.maxPositions).toBe(24);
    const t0 = performance.now();
    await expect(runGenerate({ modelDir: dir, prompt: 'x '.repeat(50_000), maxNewTokens: 1 })).rejects.toMatchObject({ code: 'E_INPUT' });
    expect(performance.now() - t0).toBeLessThan(20_000);
  });

  it('eval and train refuse --seq-len above the limit before reading data', async () => {
    const missing = join(work, 'no-such.jsonl');
    await expect(runEval({ modelDir: dir, dataFile: missing, seqLen: 100_000 })).rejects.toThrow(/seq-len 100000 exceeds max_position_embeddings 24/);
    const registry = createRegistry();
    registerBuiltins(registry);
    registry.method(testLora);
    await expect(runTrain({ modelDir: dir, dataFile: missing, outDir: join(work, 'out'), method: testLora.name, steps: 1, lr: 1e-3, batchSize: 1, seed: 0, seqLen: 25 },
      registry)).rejects.toThrow(/seq-len 25 exceeds max_position_embeddings 24/);
  });
});
