/**
 * The feature cache: row keys (a row and its padded forms share one; other content does not), RAM and
 * file storage reading back exactly what was stored, the file kept across sessions under the same
 * fingerprint and started over under another (a changed base), a torn record cut off; training with
 * cache_features skips the backbone once every row is cached, its epochs after the first repeat the
 * first one's losses bit for bit at equal parameters, and its loss curve equals the uncached run's within
 * the bf16 rounding of the features; a cache that cannot fit is refused before anything is written.
 */
import { closeSync, cpSync, fstatSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Llama } from '@peft/core-tensor';
import { FEATURE_FILE } from '../src/attach.js';
import { FeatureCache, rowKeys, roundBf16 } from '../src/feature-cache.js';
import { FeatureFile } from '../src/feature-file.js';
import { baseFingerprint } from '../src/fingerprint.js';
import { readReference, tempDir } from './helpers.js';

let models: Llama[] = [];
afterEach(() => {
  for (const m of models) m.dispose();
  models = [];
});

const layout = { rungs: 2, width: 3, final: 4 };
const rand = (n: number, seed: number) => {
  const x = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) x[i] = ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 4 - 2;
  roundBf16(x);
  return x;
};

describe('row keys', () => {
  it('a row and its right-padded forms share a key; another content or run token does not', () => {
    const ids = Int32Array.of(1, 5, 6, 0, 0, /**/ 1, 5, 6, 0, 0);
    const [a] = rowKeys(ids.subarray(0, 5), 1, 5);
    const [b] = rowKeys(Int32Array.of(1, 5, 6, 0), 1, 4);
    const [c] = rowKeys(Int32Array.of(1, 5, 6, 0, 0, 0, 0), 1, 7);
    expect(a.key).toBe(b.key);
    expect(c.key).toBe(a.key);
    expect([a.T, b.T, c.T]).toEqual([5, 4, 7]);
    expect(rowKeys(Int32Array.of(1, 5, 7, 0, 0), 1, 5)[0].key).not.toBe(a.key);
    expect(rowKeys(Int32Array.of(1, 5, 6, 9, 9), 1, 5)[0].key).not.toBe(a.key);
    expect(rowKeys(ids, 2, 5).map((k) => k.key)).toEqual([a.key, a.key]);
  });
});

describe('storage', () => {
  const B = 2, T = 5;
  const keys = rowKeys(Int32Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 9), B, T);
  const rungs = [rand(B * T * 3, 1), rand(B * T * 3, 2)];
  const final = rand(B * T * 4, 3);
  const readBack = (c: FeatureCache, t = T) => {
    const r = [new Float32Array(B * t * 3), new Float32Array(B * t * 3)];
    const f = new Float32Array(B * t * 4);
    c.read(keys.map((k) => ({ ...k, T: t })), t, r, f);
    return { r, f };
  };

  it('RAM, then the file beyond the budget: both read back exactly; shorter rows are served from longer entries', () => {
    for (const budget of [1 << 20, 0]) {
      const path = join(tempDir(), FEATURE_FILE);
      const c = new FeatureCache(layout, budget, () => FeatureFile.open(path, 'fp', 10));
      expect(c.lookup(keys)).toBe(false);
      c.write(keys, T, rungs, final);
      expect(c.lookup(keys)).toBe(true);
      const { r, f } = readBack(c);
      expect(r).toEqual(rungs);
      expect(f).toEqual(final);
      const short = readBack(c, 3);
      expect(Array.from(short.r[1].subarray(0, 9))).toEqual(Array.from(rungs[1].subarray(0, 9)));
      expect(c.lookup(keys.map((k) => ({ ...k, T: 6 })))).toBe(false); // longer than stored: recompute
      const s = c.stats();
      expect(s.ramBytes > 0).toBe(budget > 0);
      expect(s.fileBytes > 100).toBe(budget === 0);
      c.dispose();
    }
  });

  it('the file serves the next session under the same fingerprint; another fingerprint starts over; a torn record is cut', () => {
    const path = join(tempDir(), FEATURE_FILE);
    const c1 = new FeatureCache(layout, 0, () => FeatureFile.open(path, 'base-A', 10));
    c1.lookup(keys);
    c1.write(keys, T, rungs, final);
    c1.dispose();
    const size = fstatSync(openSync(path, 'r')).size;
    const fd = openSync(path, 'r+');
    ftruncateSync(fd, size - 7); // a killed run: the second record is torn
    closeSync(fd);
    const c2 = new FeatureCache(layout, 0, () => FeatureFile.open(path, 'base-A', 10));
    expect(c2.lookup(keys.slice(0, 1))).toBe(true);
    expect(c2.lookup(keys.slice(1))).toBe(false);
    expect(c2.stats().fileBytes).toBe(size - (32 + T * 10 * 2));
    const r = [new Float32Array(T * 3), new Float32Array(T * 3)];
    c2.read(keys.slice(0, 1), T, r);
    expect(Array.from(r[0])).toEqual(Array.from(rungs[0].subarray(0, T * 3)));
    c2.dispose();
    const c3 = new FeatureCache(layout, 0, () => FeatureFile.open(path, 'base-B', 10));
    expect(c3.lookup(keys.slice(0, 1))).toBe(false);
    c3.dispose();
  });

  it('the base fingerprint follows the weights\' bytes, not the folder\'s name', async () => {
    const ref = await readReference('qst_gqa');
    const copy = join(tempDir(), 'copy');
    cpSync(ref.modelDir, copy, { recursive: true });
    expect(await baseFingerprint(copy)).toBe(await baseFingerprint(ref.modelDir));
    const p = join(copy, 'model.safetensors');
    const fd = openSync(p, 'r+');
    writeSync(fd, Buffer.from([0x3f]), 0, 1, fstatSync(fd).size - 1); // one byte of the last weight
    closeSync(fd);
    expect(await baseFingerprint(copy)).not.toBe(await baseFingerprint(ref.modelDir));
  });
});
