/**
 * Generation through the KV cache: the side layers keep their own keys and values in a slot of the
 * model's cache, so a prompt then one token at a time gives the logits of full forwards over the growing
 * sequence (QST and LST, batch of two); reset() frees the slot and the next sequence starts clean; and
 * core's generateTokens gives the greedy continuation the full forwards give.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { generateTokens, Llama, noGrad, tidy, type KvCache } from '@peft/core-tensor';
import { SIDE_SLOT } from '../src/head.js';
import { loadSideAdapter } from '../src/load.js';
import { readReference, relErr, type CaseName } from './helpers.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

let model: Llama | undefined;
afterEach(() => {
  model?.dispose();
  model = undefined;
});

async function loaded(name: CaseName): Promise<Llama> {
  const ref = await readReference(name);
  const m = await Llama.fromFolder(ref.modelDir);
  await loadSideAdapter(ref.method, m, ref.adapterDir, JSON.parse(readFileSync(join(ref.adapterDir, 'adapter_config.json'), 'utf8')));
  return m;
}

/** Logits of the last position of every row of ids [B, T] (a full forward). */
function lastLogits(m: Llama, rows: number[][], cache?: KvCache): number[][] {
  return tidy(() => noGrad(() => {
    const T = rows[0].length;
    const h = m.forward(rows, { kvCache: cache }).hidden;
    const l = m.logits(h.slice(1, T - 1, T));
    const V = l.shape[2];
    return rows.map((_, b) => Array.from(l.data.subarray(b * V, (b + 1) * V)));
  }));
}

describe.each(['qst_gqa', 'qst_nf4', 'lst_linear'] as const)('%s with a KV cache', (name) => {
  it('prompt then one token at a time == full forwards; reset() starts a clean sequence', async () => {
    model = await loaded(name);
    const seqs = [[1, 7, 30, 12, 5], [1, 40, 41, 3, 9]];
    const next = [[11, 60, 2], [17, 4, 90]];
    const cache = model.newCache();
    for (let round = 0; round < 2; round++) {
      const got = [lastLogits(model, seqs, cache)];
      for (let s = 0; s < next[0].length; s++) got.push(lastLogits(model, next.map((n) => [n[s]]), cache));
      expect(cache.length).toBe(seqs[0].length + next[0].length);
      got.forEach((step, s) => {
        const full = lastLogits(model!, seqs.map((q, b) => [...q, ...next[b].slice(0, s)]));
        for (let b = 0; b < 2; b++) expect(relErr(step[b], full[b]), `round ${round} step ${s} row ${b}`).toBeLessThan(1e-5);
      });
      let slot: KvCache | undefined;
      cache.slot(SIDE_SLOT, () => { throw new Error('the side cache slot should exist'); });
      cache.reset();
      cache.slot(SIDE_SLOT, () => (slot = model!.newCache()));
      expect(slot).toBeDefined(); // reset() dropped the old slot
      cache.reset();
    }
    cache.dispose();
  });
});

describe('generateTokens', () => {
  it('the greedy continuation of qst equals argmax over full forwards', async () => {
    model = await loaded('qst_tied');
    const prompt = [1, 20, 33, 47];
    const gen = generateTokens(model, prompt, { maxNewTokens: 5 });
    const tokens: number[] = [];
    for (let r = gen.next(); !r.done; r = gen.next()) tokens.push(r.value);
    const seq = [...prompt];
    for (let i = 0; i < tokens.length; i++) {
      const l = lastLogits(model, [seq])[0];
      seq.push(l.indexOf(Math.max(...l)));
    }
    expect(tokens).toEqual(seq.slice(prompt.length));
  });
});
