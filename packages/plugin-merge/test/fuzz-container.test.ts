/**
 * Structure-aware fuzzing of `.peftz` containers through the whole decoding path (core envelope +
 * compeft / sparsify payloads): mutations of the fields that size allocations (shapes, tensor count,
 * params / kept, codec count / rice_k / gap_bytes, payload length, header padding) as well as plain
 * byte damage. Every case either decodes to exactly the tensors its header lists or is refused with a
 * PeftError of exit code 2, and each is bounded in time and memory (asserted: the worker's peak RSS
 * may not grow by more than a few hundred MB over the run, a bomb would add gigabytes).
 * The core is imported by package name, as the plugin imports it (one copy, the built one).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateRawSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  COMPRESSED_FILE, compressAdapter, createRegistry, decodeContainer, decompressAdapter, describeCompressed, PeftError, readPeftAdapter,
  type Registry,
} from '@peft/core-tensor';
import { registerCompressors } from '../src/compress/index.js';

const LORA = join(import.meta.dirname, 'fixtures', 'compress', 'lora');
/** The decoding limit under test: small, so an accepted case allocates little. */
const MAX_ELEMENTS = 1 << 20;
const MAX_CASE_MS = 3000;
// Loose on purpose: GC timing moves the peak by hundreds of MB under load; a bomb past the limit adds gigabytes.
const MAX_RSS_GROWTH_MIB = 768;

let root: string;
let registry: Registry;
let n = 0;
const fresh = () => join(root, `c${n++}`);
const seeds: Uint8Array[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'peft-fuzz-peftz-'));
  registry = createRegistry();
  registerCompressors(registry);
  for (const [method, density] of [['compeft', 0.1], ['sparsify', 0.05], ['compeft', 1]] as const) {
    const out = fresh();
    await compressAdapter({ adapter: LORA, method, options: { density }, out }, registry);
    seeds.push(new Uint8Array(await readFile(join(out, COMPRESSED_FILE))));
  }
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

type Header = Record<string, any>;

function split(bytes: Uint8Array): { header: Header; payload: Uint8Array } {
  const { header, payload } = decodeContainer(bytes, 'seed');
  const { tensors, ...rest } = header;
  return { header: { ...structuredClone(rest), tensors: tensors.map((t) => [t.name, t.dtype, [...t.shape]]) }, payload: payload.slice() };
}

/** The container layout written by hand (encodeContainer refuses what these cases need to write). */
function assemble(json: string, payload: Uint8Array, env: { h?: number; p?: number; version?: number; crc?: boolean } = {}): Uint8Array {
  const h = deflateRawSync(Buffer.from(json, 'utf8'), { level: 1 });
  const out = Buffer.alloc(20 + h.length + payload.length);
  out.write('PFTZ', 0, 'latin1');
  out.writeUInt16LE(env.version ?? 1, 4);
  out.writeUInt32LE(env.h ?? h.length, 8);
  out.writeUInt32LE(env.p ?? payload.length, 12);
  out.set(h, 20);
  out.set(payload, 20 + h.length);
  out.writeUInt32LE(env.crc === false ? 0 : crc32(out.subarray(20)), 16);
  return out;
}

const numel = (s: unknown) => (Array.isArray(s) ? s.reduce((a: number, b: unknown) => a * (b as number), 1) : NaN);
const params = (h: Header) => (h.tensors as [string, string, number[]][]).reduce((a, t) => a + numel(t[2]), 0);
const junk = fc.oneof(fc.constant(-1), fc.constant(1.5), fc.constant('7'), fc.constant(null), fc.constant(2 ** 53 + 2), fc.constant(1e300));
const big = fc.oneof(fc.integer({ min: 2, max: 64 }), fc.constantFrom(1 << 16, 1 << 20, 1 << 24, 2 ** 32, 1e10, 2 ** 52));

/** One edit of the fields that size allocations; `fix` recomputes params so only the edited field is hostile. */
const edit = fc.oneof(
  fc.record({ k: fc.constant('dim' as const), t: fc.nat(), i: fc.nat(3), v: fc.oneof(big, fc.constant(0), junk), fix: fc.boolean() }),
  fc.record({ k: fc.constant('rank' as const), t: fc.nat(), v: fc.array(fc.integer({ min: 0, max: 9 }), { maxLength: 6 }), fix: fc.boolean() }),
  fc.record({ k: fc.constant('many' as const), count: fc.constantFrom(10, 1000, 120_000), fix: fc.boolean() }),
  fc.record({ k: fc.constant('params' as const), v: fc.oneof(fc.integer({ min: -3, max: 3 }), big) }),
  fc.record({ k: fc.constant('kept' as const), v: fc.oneof(fc.integer({ min: -3, max: 3 }), big) }),
  fc.record({ k: fc.constant('codec' as const), f: fc.constantFrom('count', 'rice_k', 'gap_bytes', 'scale'), v: fc.oneof(fc.integer({ min: -3, max: 40 }), big, junk) }),
  fc.record({ k: fc.constant('dtype' as const), t: fc.nat(), v: fc.constantFrom('F16', 'BF16', 'U8', 'F128', '') }),
  fc.record({ k: fc.constant('payload' as const), cut: fc.integer({ min: -8, max: 8 }), flip: fc.option(fc.tuple(fc.nat(), fc.nat(7))) }),
  fc.record({ k: fc.constant('pad' as const), bytes: fc.constantFrom(10, 1 << 20, 20 << 20) }),
);
type Edit = typeof edit extends fc.Arbitrary<infer T> ? T : never;

/** Applies `e` to `h` in place; returns the payload and the header padding it asks for. */
function apply(h: Header, payload: Uint8Array, e: Edit): { payload: Uint8Array; pad: number } {
  const ts = h.tensors as [string, string, unknown[]][];
  let pad = 0;
  switch (e.k) {
    case 'dim': { const t = ts[e.t % ts.length]; t[2][e.i % Math.max(1, t[2].length)] = e.v; if (e.fix) h.params = params(h); break; }
    case 'rank': ts[e.t % ts.length][2] = e.v; if (e.fix) h.params = params(h); break;
    case 'many':
      h.tensors = [...ts, ...Array.from({ length: e.count }, (_, i) => [`~${String(i).padStart(6, '0')}`, 'F32', [1]])];
      if (e.fix) h.params = params(h);
      break;
    case 'params': h.params = e.v > 3 ? e.v : h.params + e.v; break;
    case 'kept': h.kept = e.v > 3 ? e.v : h.kept + e.v; break;
    case 'codec': h.codec[e.f] = e.v; break;
    case 'dtype': ts[e.t % ts.length][1] = e.v; break;
    case 'payload': {
      const len = Math.max(0, payload.length + e.cut);
      const p = new Uint8Array(len);
      p.set(payload.subarray(0, len));
      if (e.flip && len) p[e.flip[0] % len] ^= 1 << e.flip[1];
      payload = p;
      break;
    }
    case 'pad': pad = e.bytes; break;
  }
  return { payload, pad };
}

const envelope = fc.oneof(
  { weight: 6, arbitrary: fc.constant({}) },
  { weight: 1, arbitrary: fc.record({ h: fc.integer({ min: 0, max: 2 ** 32 - 1 }) }) },
  { weight: 1, arbitrary: fc.record({ p: fc.integer({ min: 0, max: 2 ** 32 - 1 }) }) },
  { weight: 1, arbitrary: fc.record({ version: fc.constantFrom(0, 2) }) },
  { weight: 1, arbitrary: fc.record({ crc: fc.constant(false) }) },
);

/** Decodes `bytes`: either the header's tensors come back, or a PeftError with exit code 2. */
async function check(bytes: Uint8Array): Promise<boolean> {
  const file = fresh() + '.peftz';
  const out = fresh();
  await writeFile(file, bytes);
  let summary: Awaited<ReturnType<typeof describeCompressed>> | undefined;
  try {
    summary = await describeCompressed(file);
  } catch (e) {
    if (!(e instanceof PeftError) || e.exitCode !== 2) throw new Error(`inspect: unexpected ${(e as Error)?.stack ?? e}`);
  }
  try {
    const r = await decompressAdapter({ input: file, out, maxElements: MAX_ELEMENTS }, registry);
    expect(summary, 'inspect accepts what decompress accepts').toBeDefined();
    const a = await readPeftAdapter(out);
    const { header } = decodeContainer(bytes, file);
    expect(header.params).toBeLessThanOrEqual(MAX_ELEMENTS);
    expect(r.tensors).toBe(header.tensors.length);
    expect([...a.tensors.values()].map((t) => t.shape.join())).toEqual(header.tensors.map((t) => t.shape.join()));
    return true;
  } catch (e) {
    if (!(e instanceof PeftError) || e.exitCode !== 2) throw new Error(`decompress: unexpected ${(e as Error)?.stack ?? e}`);
    expect(existsSync(out), 'a refused container writes nothing').toBe(false);
    return false;
  } finally {
    await rm(file, { force: true });
    await rm(out, { recursive: true, force: true });
  }
}

describe('fuzzed containers', () => {
  it('every seed decodes', async () => {
    for (const s of seeds) expect(await check(s)).toBe(true);
  });

  it('structure-aware mutations decode exactly or are exit 2, each bounded in time and memory', async () => {
    const rss0 = process.resourceUsage().maxRSS / 1024;
    let accepted = 0, slowest = 0;
    await fc.assert(
      fc.asyncProperty(fc.nat(seeds.length - 1), fc.array(edit, { minLength: 1, maxLength: 3 }), envelope, async (s, edits, env) => {
        const { header: h } = split(seeds[s]);
        let { payload } = split(seeds[s]);
        let pad = 0;
        for (const e of edits) {
          const r = apply(h, payload, e);
          payload = r.payload;
          pad = Math.max(pad, r.pad);
        }
        const json = ' '.repeat(pad) + JSON.stringify(h);
        const t0 = performance.now();
        if (await check(assemble(json, payload, env))) accepted++;
        slowest = Math.max(slowest, performance.now() - t0);
      }),
      { seed: 20240917, numRuns: 300 },
    );
    expect(accepted, 'the fuzzer also produces valid containers').toBeGreaterThan(5);
    expect(slowest, 'slowest case (ms)').toBeLessThan(MAX_CASE_MS);
    expect(process.resourceUsage().maxRSS / 1024 - rss0, 'peak RSS growth (MiB)').toBeLessThan(MAX_RSS_GROWTH_MIB);
  });
});
