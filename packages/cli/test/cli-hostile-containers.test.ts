/**
 * Decompression bombs (issue 9, item 2): hostile `.peftz` containers built byte by byte, as an
 * attacker would (not with peft's encoder, which refuses to write them). Every one is exit 2 naming
 * the limit, writes nothing, and is refused in bounded time and peak memory of the real binary:
 * a ~243-byte file claiming 400 M values (1.6 GB written before), a claim of 10^10 values (exit 1
 * "Invalid typed array length" before), a 300 MB whitespace header deflated to ~300 KB (950 MB
 * before), 2 M tiny tensors in a 5 MB file (3.4 GB and 27 s before).
 */
import { once } from 'node:events';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createDeflateRaw, crc32, deflateRawSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { listing, tempDir } from './helpers.js';
import { peftMeasured, type MeasuredRun } from './measure.js';

/** Refusals are cheap: well under what the bombs used to cost (0.95 to 3.4 GB, 27 s). */
const MAX_RSS_MIB = 250;
const MAX_SECONDS = 15;

let work: string;
beforeAll(() => {
  work = tempDir('peft-bombs-');
});

/** The container layout of core tasks/adapters/container.ts, written by hand around an already deflated header. */
function rawContainer(deflatedHeader: Uint8Array, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const prefix = Buffer.alloc(20);
  prefix.write('PFTZ', 0, 'latin1');
  prefix.writeUInt16LE(1, 4);
  prefix.writeUInt16LE(0, 6);
  prefix.writeUInt32LE(deflatedHeader.length, 8);
  prefix.writeUInt32LE(payload.length, 12);
  const body = Buffer.concat([deflatedHeader, payload]);
  prefix.writeUInt32LE(crc32(body), 16);
  return Buffer.concat([prefix, body]);
}

/** A ComPEFT adapter header over `tensors` with nothing kept (an all-zero update: zero payload bits). */
function header(tensors: [string, string, number[]][], extra: Record<string, unknown> = {}): Record<string, unknown> {
  const params = tensors.reduce((s, [, , shape]) => s + shape.reduce((a, b) => a * b, 1), 0);
  return {
    method: 'compeft', options: { density: 0.1, alpha: 1 }, kind: 'adapter', config: { peft_type: 'LORA' },
    tensors, params, kept: 0, codec: { count: 0, rice_k: 0, gap_bytes: 0, scale: 0 }, ...extra,
  };
}

const small = (h: Record<string, unknown>, payload?: Uint8Array) => rawContainer(deflateRawSync(Buffer.from(JSON.stringify(h)), { level: 9 }), payload);

/** Deflates a stream of chunks without holding the inflated text (hundreds of MB) in the test process. */
async function deflateChunks(chunks: Iterable<string | Buffer>): Promise<Buffer> {
  const z = createDeflateRaw({ level: 9 });
  const out: Buffer[] = [];
  z.on('data', (c: Buffer) => out.push(c));
  for (const c of chunks) if (!z.write(c)) await once(z, 'drain');
  z.end();
  await once(z, 'end');
  return Buffer.concat(out);
}

function file(name: string, bytes: Buffer): string {
  const p = join(work, name);
  writeFileSync(p, bytes);
  return p;
}

/** Exit 2, one line matching `pattern`, nothing written beside the input, bounded cost. */
function expectRefused(r: MeasuredRun, pattern: RegExp, before: string[]): void {
  expect(r.timedOut, 'timed out').toBe(false);
  expect(r.exitCode, r.stderr).toBe(2);
  expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
  expect(r.stderr).toMatch(pattern);
  expect(listing(work)).toEqual(before);
  expect(r.peakRssMiB, 'peak RSS (MiB)').toBeLessThan(MAX_RSS_MIB);
  expect(r.seconds, 'seconds').toBeLessThan(MAX_SECONDS);
}

async function decompress(input: string, pattern: RegExp, flags: string[] = []): Promise<MeasuredRun> {
  const before = listing(work);
  const r = await peftMeasured(['compress', '--decompress', input, '--out', join(work, 'out'), ...flags]);
  expectRefused(r, pattern, before);
  return r;
}

async function inspect(input: string, pattern: RegExp): Promise<void> {
  const before = listing(work);
  expectRefused(await peftMeasured(['inspect', input]), pattern, before);
}

describe('decoded values are bounded before allocating', () => {
  it('a ~243-byte container claiming [20000, 20000] does not write 1.6 GB', async () => {
    const bytes = small(header([['base_model.model.lm_head.lora_A.weight', 'F32', [20000, 20000]]]));
    expect(bytes.length).toBeLessThan(300);
    const bomb = file('bomb.peftz', bytes);
    await decompress(bomb, /bomb\.peftz: decodes to 400000000 values, above the limit of 268435456 \(--max-elements raises it\)/);
  });

  it('a claim of 10^10 values is exit 2 naming the limit, not exit 1 "Invalid typed array length"', async () => {
    const bomb = file('huge.peftz', small(header([['a', 'F32', [100000, 100000]]])));
    const r = await decompress(bomb, /decodes to 10000000000 values, above the limit/);
    expect(r.stderr).not.toMatch(/Invalid typed array length/);
  });

  it('--max-elements sets the limit: below the claim it refuses, at the default a small all-zero adapter decodes', async () => {
    const zero = file('zero.peftz', small(header([['base_model.model.q_proj.lora_A.weight', 'F32', [1000, 1000]]])));
    await decompress(zero, /decodes to 1000000 values, above the limit of 1000 \(--max-elements raises it\)/, ['--max-elements', '1000']);
    const r = await peftMeasured(['compress', '--decompress', zero, '--out', join(work, 'zero-out')]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(existsSync(join(work, 'zero-out', 'adapter_model.safetensors'))).toBe(true);
  });

  it('kept values are bounded by the payload bits (one value per bit at most)', async () => {
    const h = header([['a', 'F32', [1000, 1000]]], { kept: 100_000, codec: { count: 100_000, rice_k: 0, gap_bytes: 0, scale: 1 } });
    const bomb = file('kept.peftz', small(h, Buffer.alloc(10)));
    await decompress(bomb, /the header says 100000 values were kept, more than a 10-byte payload can code/);
    await inspect(bomb, /more than a 10-byte payload can code/);
  });
});

describe('the header is bounded before parsing', () => {
  it('a 300 MB whitespace header (deflated to ~300 KB) stops at the inflate limit', async () => {
    const json = JSON.stringify(header([['a', 'F32', [4]]]));
    const spaces = Buffer.alloc(1024 * 1024, 0x20);
    const deflated = await deflateChunks((function* () {
      for (let i = 0; i < 300; i++) yield spaces;
      yield json;
    })());
    expect(deflated.length).toBeLessThan(1024 * 1024);
    const bomb = file('spaces.peftz', rawContainer(deflated));
    await decompress(bomb, /spaces\.peftz: not a valid compressed container: the header inflates past the 16 MiB limit/);
    await inspect(bomb, /the header inflates past the 16 MiB limit/);
  });

  it('2 M tiny tensors in a ~5 MB file are refused at once', async () => {
    const n = 2_000_000;
    const entry = (i: number) => `["t${String(i).padStart(7, '0')}","F32",[1]]`;
    const deflated = await deflateChunks((function* () {
      yield '{"method":"compeft","options":{},"kind":"adapter","config":{"peft_type":"LORA"},"tensors":[';
      for (let i = 0; i < n; i += 10_000) yield Array.from({ length: 10_000 }, (_, j) => entry(i + j)).join(',') + (i + 10_000 < n ? ',' : '');
      yield `],"params":${n},"kept":0,"codec":{"count":0,"rice_k":0,"gap_bytes":0,"scale":0}}`;
    })());
    expect(deflated.length).toBeLessThan(8 * 1024 * 1024);
    const bomb = file('many.peftz', rawContainer(deflated));
    await decompress(bomb, /many\.peftz: not a valid compressed container: the header inflates past the 16 MiB limit/);
    await inspect(bomb, /the header inflates past the 16 MiB limit/);
  });

  it('150 k tensors within the header limit are refused by the tensor count limit', async () => {
    const tensors = Array.from({ length: 150_000 }, (_, i) => [`t${String(i).padStart(6, '0')}`, 'F32', [1]] as [string, string, number[]]);
    const bomb = file('count.peftz', small(header(tensors)));
    await decompress(bomb, /the header lists 150000 tensors, above the limit of 100000/);
    await inspect(bomb, /the header lists 150000 tensors, above the limit of 100000/);
  });
});
