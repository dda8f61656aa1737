import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DTYPE_SIZES, type Dtype, type NamedRawTensor } from '../src/dtype.js';
import { PeftError } from '../src/errors.js';
import { headerLength, parseHeader, SafetensorsFile, serializeSafetensors } from '../src/io/index.js';

// Mutated safetensors files must either parse and read consistently or fail with PeftError E_FORMAT:
// never another exception, never a hang, never a read outside the file.

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'peft-fuzz-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function t(name: string, dtype: Dtype, shape: number[]): NamedRawTensor {
  const n = shape.reduce((a, b) => a * b, 1) * DTYPE_SIZES[dtype];
  return { name, dtype, shape, data: Uint8Array.from({ length: n }, (_, i) => (i * 13 + name.length) & 0xff) };
}

const SEEDS: Uint8Array[] = [
  serializeSafetensors([t('weight', 'F32', [2, 3])], { format: 'pt' }),
  serializeSafetensors([t('a', 'F64', [3]), t('b', 'BF16', [2, 2]), t('c', 'U8', [5]), t('d', 'BOOL', [3]), t('s', 'I32', [])]),
  serializeSafetensors([t('z0', 'F16', [0]), t('z1', 'U64', [3, 0, 2]), t('x', 'I8', [7])]),
  serializeSafetensors([], { only: 'metadata' }),
  serializeSafetensors(Array.from({ length: 10 }, (_, i) => t(`model.layers.${i}.w`, (['F32', 'F16', 'U8', 'I64'] as const)[i % 4], [i + 1, 2]))),
];

const enc = new TextEncoder();
const dec = new TextDecoder();

function splitFile(bytes: Uint8Array) {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { json: JSON.parse(dec.decode(bytes.subarray(8, 8 + n))) as Record<string, unknown>, data: bytes.subarray(8 + n), n };
}

function joinFile(json: unknown, data: Uint8Array, lengthDelta = 0): Uint8Array {
  const h = enc.encode(JSON.stringify(json));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(Math.max(0, h.length + lengthDelta)), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

const junk = fc.oneof(
  fc.integer({ min: -5, max: 40 }), fc.double({ noNaN: true }), fc.constant(2 ** 53 + 2), fc.constant(-0), fc.string({ maxLength: 4 }),
  fc.constant(null), fc.constant([]), fc.constant({}), fc.boolean(), fc.constant(1e300),
);
const dtypeish = fc.oneof(fc.constantFrom(...(Object.keys(DTYPE_SIZES) as Dtype[])), fc.constantFrom('F128', 'f32', '', 'I4'), junk);

/** An edit of one tensor entry of the header JSON. */
const entryEdit = fc.oneof(
  fc.record({ kind: fc.constant('dtype' as const), v: dtypeish }),
  fc.record({ kind: fc.constant('shapeDim' as const), i: fc.nat(4), v: fc.oneof(fc.integer({ min: -2, max: 12 }), junk) }),
  fc.record({ kind: fc.constant('shapeLen' as const), v: fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 4 }) }),
  fc.record({ kind: fc.constant('offset' as const), i: fc.nat(1), d: fc.integer({ min: -24, max: 24 }) }),
  fc.record({ kind: fc.constant('offsetJunk' as const), v: fc.oneof(junk, fc.array(fc.nat(64), { maxLength: 3 })) }),
  fc.record({ kind: fc.constant('dropField' as const), f: fc.constantFrom('dtype', 'shape', 'data_offsets') }),
  fc.record({ kind: fc.constant('replace' as const), v: junk }),
  fc.record({ kind: fc.constant('drop' as const) }),
  fc.record({ kind: fc.constant('dup' as const), name: fc.string({ maxLength: 3 }) }),
);
type EntryEdit = typeof entryEdit extends fc.Arbitrary<infer T> ? T : never;

function applyEntryEdit(json: Record<string, unknown>, which: number, e: EntryEdit): void {
  const names = Object.keys(json).filter((k) => k !== '__metadata__');
  if (names.length === 0) {
    json[`new${which}`] = { dtype: 'U8', shape: [which % 3], data_offsets: [0, which % 3] };
    return;
  }
  const name = names[which % names.length];
  const entry = json[name] as Record<string, unknown>;
  // An earlier edit may have replaced the entry or its fields with junk; field edits then do nothing.
  const isObj = entry !== null && typeof entry === 'object' && !Array.isArray(entry);
  if (!isObj && e.kind !== 'replace' && e.kind !== 'drop' && e.kind !== 'dup') return;
  switch (e.kind) {
    case 'dtype': entry.dtype = e.v; break;
    case 'shapeDim':
      if (Array.isArray(entry.shape)) entry.shape[e.i % Math.max(1, entry.shape.length)] = e.v;
      break;
    case 'shapeLen': entry.shape = e.v; break;
    case 'offset':
      if (Array.isArray(entry.data_offsets) && typeof entry.data_offsets[e.i] === 'number') entry.data_offsets[e.i] += e.d;
      break;
    case 'offsetJunk': entry.data_offsets = e.v; break;
    case 'dropField': delete entry[e.f]; break;
    case 'replace': json[name] = e.v; break;
    case 'drop': delete json[name]; break;
    case 'dup': json[name + e.name] = structuredClone(entry); break;
  }
}

/** A whole-file mutation. */
const mutation = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('flip' as const), at: fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 6 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), keep: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('append' as const), extra: fc.uint8Array({ minLength: 1, maxLength: 16 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('length' as const), v: fc.oneof(fc.integer({ min: -16, max: 16 }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('json' as const), which: fc.nat(20), edits: fc.array(entryEdit, { minLength: 1, maxLength: 3 }), lengthDelta: fc.oneof(fc.constant(0), fc.integer({ min: -3, max: 3 })) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('meta' as const), v: junk }) },
);
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(seed: Uint8Array, m: Mutation): Uint8Array {
  const b = seed.slice();
  switch (m.kind) {
    case 'flip':
      for (const [pos, v] of m.at) b[pos % b.length] = v;
      return b;
    case 'truncate':
      return b.subarray(0, m.keep % b.length);
    case 'append': {
      const out = new Uint8Array(b.length + m.extra.length);
      out.set(b);
      out.set(m.extra, b.length);
      return out;
    }
    case 'length': {
      const dv = new DataView(b.buffer);
      const v = typeof m.v === 'bigint' ? m.v : BigInt(Math.max(0, Number(dv.getBigUint64(0, true)) + m.v));
      dv.setBigUint64(0, v, true);
      return b;
    }
    case 'json': {
      const { json, data } = splitFile(b);
      for (const e of m.edits) applyEntryEdit(json, m.which, e);
      return joinFile(json, data, m.lengthDelta);
    }
    case 'meta': {
      const { json, data } = splitFile(b);
      json.__metadata__ = m.v;
      return joinFile(json, data);
    }
  }
}

/** Parse in memory; the same verdict must come from the file path. */
function parseInMemory(bytes: Uint8Array) {
  const n = headerLength(bytes.subarray(0, 8), bytes.length, 'mem');
  return parseHeader(bytes.subarray(8, 8 + n), bytes.length, 'mem');
}

function expectFormatError(e: unknown): void {
  if (!(e instanceof PeftError) || e.code !== 'E_FORMAT') throw new Error(`unexpected error: ${(e as Error)?.stack ?? e}`);
}

const path = () => join(dir, 'case.safetensors');

async function check(bytes: Uint8Array): Promise<boolean> {
  let memOk = true;
  try {
    parseInMemory(bytes);
  } catch (e) {
    expectFormatError(e);
    memOk = false;
  }
  await writeFile(path(), bytes);
  let f: SafetensorsFile;
  try {
    f = await SafetensorsFile.open(path());
  } catch (e) {
    expectFormatError(e);
    expect(memOk).toBe(false);
    return false;
  }
  try {
    expect(memOk).toBe(true);
    let covered = 0;
    for (const info of f.tensors) {
      const data = await f.read(info.name);
      expect(data.byteLength).toBe(info.shape.reduce((a, d) => a * d, DTYPE_SIZES[info.dtype]));
      expect(info.offsets[0]).toBe(covered);
      covered = info.offsets[1];
      const start = f.dataStart + info.offsets[0];
      expect(Buffer.from(data).equals(bytes.subarray(start, start + info.byteLength))).toBe(true);
    }
    expect(f.dataStart + covered).toBe(bytes.length);
  } finally {
    await f.close();
  }
  return true;
}

describe('fuzzed safetensors', () => {
  it('every seed is valid to begin with', async () => {
    for (const s of SEEDS) expect(await check(s)).toBe(true);
  });

  it('mutated files parse consistently or fail with E_FORMAT', async () => {
    let accepted = 0, runs = 0;
    const t0 = performance.now();
    await fc.assert(
      fc.asyncProperty(fc.nat(SEEDS.length - 1), mutation, async (s, m) => {
        runs++;
        if (await check(mutate(SEEDS[s], m))) accepted++;
      }),
      { seed: 20240601, numRuns: 3000 },
    );
    // Some mutations (a flipped data byte, a bigger dup entry at the right offset...) keep the file valid:
    // make sure the fuzzer exercises both outcomes.
    expect(runs).toBe(3000);
    expect(accepted).toBeGreaterThan(50);
    expect(accepted).toBeLessThan(runs - 500);
    expect(performance.now() - t0).toBeLessThan(20_000);
  });

  it('the order of keys in the header JSON does not matter', async () => {
    fc.assert(
      fc.property(fc.nat(SEEDS.length - 1), fc.nat(), (s, rot) => {
        const { json, data } = splitFile(SEEDS[s]);
        const keys = Object.keys(json);
        const k = rot % Math.max(1, keys.length);
        const rotated = Object.fromEntries([...keys.slice(k), ...keys.slice(0, k)].map((key) => [key, json[key]]));
        const a = parseInMemory(SEEDS[s]);
        const b = parseInMemory(joinFile(rotated, data));
        expect(b.tensors).toEqual(a.tensors);
        expect(b.metadata).toEqual(a.metadata);
      }),
      { seed: 7, numRuns: 200 },
    );
  });
});
