/**
 * The `.peftz` container and the Rice gap code: corrupted containers are refused with one
 * E_FORMAT line and nothing written; the gap code round-trips and its parameter is optimal.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  COMPRESSED_FILE, compressAdapter, createRegistry, decodeContainer, decompressAdapter, encodeContainer, Xoshiro128, type Registry,
} from '@peft/core-tensor';
import { decodePositions, encodePositions, registerCompressors } from '../src/compress/index.js';

const LORA = join(__dirname, 'fixtures', 'compress', 'lora');
let root: string;
let n = 0;
const fresh = () => join(root, `case${n++}`);
let registry: Registry;
let good: Uint8Array;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'peft-container-'));
  registry = createRegistry();
  registerCompressors(registry);
  const out = fresh();
  await compressAdapter({ adapter: LORA, method: 'compeft', options: { density: 0.1 }, out }, registry);
  good = new Uint8Array(await readFile(join(out, COMPRESSED_FILE)));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Decompressing `bytes` fails with `code` (one line matching `msg`) and leaves no output. */
async function refused(bytes: Uint8Array, msg: RegExp, code = 'E_FORMAT'): Promise<void> {
  const file = join(fresh() + '.peftz');
  await writeFile(file, bytes);
  const out = fresh();
  const e = await decompressAdapter({ input: file, out }, registry).then(() => undefined, (x: unknown) => x as Error & { code: string });
  expect(e, 'should have been refused').toBeDefined();
  expect(e!.code).toBe(code);
  expect(e!.message).toMatch(msg);
  expect(e!.message).not.toContain('\n');
  expect(existsSync(out)).toBe(false);
}

/** A container with `good`'s header changed by `edit` (checksum recomputed: only the contents are wrong). */
function reheader(edit: (h: ReturnType<typeof decodeContainer>['header']) => void, payload?: (p: Uint8Array) => Uint8Array): Uint8Array {
  const { header, payload: p } = decodeContainer(good, 'good');
  const h = structuredClone(header);
  edit(h);
  return encodeContainer(h, payload ? payload(p) : p);
}

describe('corrupted containers', () => {
  it('the good one decodes', async () => {
    const out = fresh();
    const file = fresh() + '.peftz';
    await writeFile(file, good);
    await decompressAdapter({ input: file, out }, registry);
    expect(existsSync(join(out, 'adapter_model.safetensors'))).toBe(true);
  });

  it('bad magic', () => refused(Uint8Array.from(good, (b, i) => (i === 0 ? 0x51 : b)), /bad magic/));
  it('a flipped byte in the header', () => refused(Uint8Array.from(good, (b, i) => (i === 25 ? b ^ 0x10 : b)), /checksum/));
  it('a flipped byte in the payload', () => refused(Uint8Array.from(good, (b, i) => (i === good.length - 3 ? b ^ 1 : b)), /checksum/));
  it('a flipped checksum', () => refused(Uint8Array.from(good, (b, i) => (i === 17 ? b ^ 0x80 : b)), /checksum/));
  it('truncated', () => refused(good.subarray(0, good.length - 1), /truncated/));
  it('truncated inside the prefix', () => refused(good.subarray(0, 10), /truncated/));
  it('extended', () => refused(Uint8Array.from([...good, 0]), /truncated or extended/));
  it('an unknown version', () => refused(Uint8Array.from(good, (b, i) => (i === 4 ? 9 : b)), /version 9/));

  it('a kept count that does not fit the payload', () => refused(reheader((h) => {
    h.codec.count = (h.codec.count as number) + 8;
  }), /compeft container: payload is \d+ bytes, the codec fields need/));

  it('one kept value more than coded (same byte count)', () => refused(reheader((h) => {
    h.codec.count = (h.codec.count as number) + 1;
  }), /compeft container: /));

  it('a payload one byte short (section sizes inconsistent)', () => refused(reheader(() => {}, (p) => p.subarray(0, p.length - 1)), /payload is/));

  it('params that disagree with the tensor shapes', () => refused(reheader((h) => {
    h.params += 1;
  }), /the tensors hold \d+ values, the header says params=/));

  it('a header kept count below the decoded nonzeros', () => refused(reheader((h) => {
    h.kept -= 1;
  }), /nonzero values decoded, the header says/));

  it('a Rice parameter that runs the positions past the end', () => refused(reheader((h) => {
    h.codec.rice_k = 20;
  }), /compeft container: (position \d+ is past|the bit stream ends early)/));

  it('an unknown method', () => refused(reheader((h) => {
    h.method = 'nope';
  }), /unknown compressor "nope"/, 'E_INPUT'));

  it('not a container at all', async () => {
    const out = fresh();
    const e = await decompressAdapter({ input: LORA, out }, registry).catch((x) => x);
    expect(e.code).toBe('E_NOT_FOUND');
    expect(existsSync(out)).toBe(false);
  });
});

describe('Rice-coded gaps', () => {
  function randomPositions(seed: number, count: number, limit: number): Float64Array {
    const rng = new Xoshiro128(seed);
    const set = new Set<number>();
    while (set.size < count) set.add(Math.floor(rng.nextFloat() * limit));
    return Float64Array.from([...set].sort((a, b) => a - b));
  }

  it('round-trips, including gap 0 at the start and large gaps', () => {
    const cases = [
      Float64Array.from([0, 1, 2, 3, 1000, 1001, 2 ** 40]),
      randomPositions(1, 500, 5000),
      randomPositions(2, 50, 10_000_000),
      new Float64Array(0),
    ];
    for (const pos of cases) {
      const { bytes, k } = encodePositions(pos);
      const fail = (w: string) => new Error(w);
      expect(decodePositions(bytes, pos.length, k, 2 ** 41, fail)).toEqual(pos);
    }
  });

  it('picks the Rice parameter with the fewest bits', () => {
    const pos = randomPositions(3, 1000, 10_000); // density 0.1: the optimum is k = 3 (m = 8 ~ Golomb's 7)
    const gaps = pos.map((p, i) => p - (i ? pos[i - 1] : -1) - 1);
    const bits = (k: number) => gaps.reduce((s, g) => s + Math.floor(g / 2 ** k) + 1 + k, 0);
    const { bytes, k } = encodePositions(pos);
    expect(k).toBe(3);
    for (let j = 0; j <= 12; j++) expect(bits(j)).toBeGreaterThanOrEqual(bits(k));
    expect(bytes.length).toBe(Math.ceil(bits(k) / 8));
  });
});
