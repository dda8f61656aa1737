import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DTYPE_SIZES, type Dtype, type NamedRawTensor } from '../src/dtype.js';
import { PeftError } from '../src/errors.js';
import { headerLength, parseHeader, SafetensorsFile, serializeSafetensors } from '../src/io/index.js';

// Mutated safetensors files must either parse and read consistently or fail with PeftError E_FORMAT:
// never another exception, never a hang, never a read outside the file. Besides byte damage, the
// structure-aware mutations below edit what sizes allocations (shapes, dtype sizes, offsets, the
// tensor count, the header length), and each case is bounded in time and memory (asserted).

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

const huge = fc.constantFrom(2 ** 20, 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 53 - 1, 1e15);

/** Edits of the fields that size allocations, each made consistent where it can be (so some files stay valid). */
const structural = fc.oneof(
  // a dimension set huge, the offsets left (invalid) or stretched to match (valid header, data missing)
  fc.record({ kind: fc.constant('hugeDim' as const), t: fc.nat(), v: huge, stretch: fc.boolean() }),
  // a thousand-dimensional shape of ones or twos
  fc.record({ kind: fc.constant('rank' as const), t: fc.nat(), dims: fc.constantFrom(64, 1000, 10_000), two: fc.boolean() }),
  // the dtype changed: a size-preserving reshape keeps the file valid, otherwise the span disagrees
  fc.record({ kind: fc.constant('dtypeSize' as const), t: fc.nat(), dtype: fc.constantFrom(...(Object.keys(DTYPE_SIZES) as Dtype[])), reshape: fc.boolean() }),
  // every offset shifted by d (a hole at the start or a span past the end)
  fc.record({ kind: fc.constant('shiftAll' as const), d: fc.oneof(fc.integer({ min: -8, max: 8 }), huge) }),
  // many zero-length tensors at the end of the data section (valid) or pointing past it
  fc.record({ kind: fc.constant('many' as const), count: fc.constantFrom(100, 2_000, 20_000), past: fc.boolean() }),
  // the header padded with whitespace (valid up to the 100 MB header limit)
  fc.record({ kind: fc.constant('pad' as const), bytes: fc.constantFrom(1 << 10, 8 << 20) }),
);
type Structural = typeof structural extends fc.Arbitrary<infer T> ? T : never;

const tensorEntries = (json: Record<string, unknown>) =>
  Object.entries(json).filter(([k, v]) => k !== '__metadata__' && v !== null && typeof v === 'object' && !Array.isArray(v)) as [string, Record<string, any>][];

/** Applies `e` to the header JSON in place; returns the whitespace padding it asks for. */
function applyStructural(json: Record<string, unknown>, e: Structural): number {
  const entries = tensorEntries(json);
  const end = Math.max(0, ...entries.map(([, v]) => (Array.isArray(v.data_offsets) ? Number(v.data_offsets[1]) || 0 : 0)));
  const pick = (t: number) => entries[t % entries.length]?.[1];
  switch (e.kind) {
    case 'hugeDim': {
      const v = pick(e.t);
      if (!v || !Array.isArray(v.shape)) return 0;
      v.shape = v.shape.length ? [e.v, ...v.shape.slice(1)] : [e.v];
      if (e.stretch && Array.isArray(v.data_offsets)) v.data_offsets = [v.data_offsets[0], v.data_offsets[0] + numel(v.shape) * (DTYPE_SIZES[v.dtype as Dtype] ?? 1)];
      return 0;
    }
    case 'rank': {
      const v = pick(e.t);
      if (v) v.shape = Array.from({ length: e.dims }, () => (e.two ? 2 : 1));
      return 0;
    }
    case 'dtypeSize': {
      const v = pick(e.t);
      if (!v || !Array.isArray(v.data_offsets)) return 0;
      const bytes = v.data_offsets[1] - v.data_offsets[0];
      v.dtype = e.dtype;
      if (e.reshape && bytes % DTYPE_SIZES[e.dtype] === 0) v.shape = [bytes / DTYPE_SIZES[e.dtype]];
      return 0;
    }
    case 'shiftAll':
      for (const [, v] of entries) if (Array.isArray(v.data_offsets)) v.data_offsets = v.data_offsets.map((o: number) => o + e.d);
      return 0;
    case 'many':
      for (let i = 0; i < e.count; i++) json[`zz.${i}`] = { dtype: 'F32', shape: [0], data_offsets: e.past ? [end + i, end + i] : [end, end] };
      return 0;
    case 'pad':
      return e.bytes;
  }
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** The same file with `extra` spaces appended to its header (the length prefix grows to match). */
function withPadding(bytes: Uint8Array, extra: number): Uint8Array {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const out = new Uint8Array(bytes.length + extra);
  out.set(bytes.subarray(0, 8 + n));
  out.fill(0x20, 8 + n, 8 + n + extra);
  out.set(bytes.subarray(8 + n), 8 + n + extra);
  new DataView(out.buffer).setBigUint64(0, BigInt(n + extra), true);
  return out;
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
    // 3000 small files take about 10 s on an idle 2-core machine; the bound is loose because CI shares the
    // cores with other test files (a case that decoded what a hostile header claims would take minutes).
    expect(performance.now() - t0).toBeLessThan(60_000);
  });

  it('structure-aware mutations (huge shapes, dtype sizes, offsets, many tensors) are bounded in time and memory', async () => {
    const rss0 = process.resourceUsage().maxRSS / 1024;
    let accepted = 0, slowest = 0;
    await fc.assert(
      fc.asyncProperty(fc.nat(SEEDS.length - 1), fc.array(structural, { minLength: 1, maxLength: 3 }), async (s, edits) => {
        const { json, data } = splitFile(SEEDS[s]);
        let extra = 0;
        for (const e of edits) extra = Math.max(extra, applyStructural(json, e));
        const bytes = joinFile(json, data);
        const t0 = performance.now();
        if (await check(extra ? withPadding(bytes, extra) : bytes)) accepted++;
        slowest = Math.max(slowest, performance.now() - t0);
      }),
      { seed: 20240918, numRuns: 200 },
    );
    expect(accepted, 'some structural edits keep the file valid').toBeGreaterThan(20);
    expect(slowest, 'slowest case (ms)').toBeLessThan(3000);
    // A case that allocated what a hostile shape claims would add gigabytes to the peak.
    expect(process.resourceUsage().maxRSS / 1024 - rss0, 'peak RSS growth (MiB)').toBeLessThan(768);
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
