import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DTYPE_SIZES, type Dtype, type NamedRawTensor } from '../src/dtype.js';
import { PeftError } from '../src/errors.js';
import { SafetensorsFile, SafetensorsWriter, safetensorsOrder, serializeSafetensors, writeSafetensors } from '../src/io/index.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'peft-io-st-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const DTYPES = Object.keys(DTYPE_SIZES) as Dtype[];

function tensor(name: string, dtype: Dtype, shape: number[], seed: number): NamedRawTensor {
  const n = shape.reduce((a, b) => a * b, 1) * DTYPE_SIZES[dtype];
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i++) data[i] = (i * 31 + seed * 17 + 7) & 0xff;
  return { name, dtype, shape, data };
}

/** Builds file bytes from a header string (padded as given) and a data section. */
function rawFile(header: string, data: Uint8Array | number = 0): Uint8Array {
  const h = new TextEncoder().encode(header);
  const d = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + h.length + d.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(d, 8 + h.length);
  return out;
}

async function put(name: string, bytes: Uint8Array): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, bytes);
  return p;
}

async function openErr(path: string): Promise<PeftError> {
  try {
    const f = await SafetensorsFile.open(path);
    await f.close();
  } catch (e) {
    expect(e).toBeInstanceOf(PeftError);
    return e as PeftError;
  }
  throw new Error(`${path} opened without error`);
}

describe('round trip', () => {
  const tensors = [
    ...DTYPES.map((d, i) => tensor(`t.${d.toLowerCase()}`, d, [2, 3], i)),
    tensor('scalar', 'F32', [], 99),
    tensor('empty', 'BF16', [4, 0], 5),
    tensor('z.vector', 'I64', [5], 3),
  ];
  const metadata = { format: 'pt', note: 'ünïcode' };

  it('writes every dtype with the streaming writer and reads the same bytes back', async () => {
    const path = join(dir, 'all.safetensors');
    const w = await SafetensorsWriter.create(path, { metadata });
    for (const t of [...tensors].reverse()) await w.add(t); // add order must not matter
    const written = await w.finish();
    expect(written.dataBytes).toBe(tensors.reduce((a, t) => a + t.data.byteLength, 0));
    const f = await SafetensorsFile.open(path);
    try {
      expect(f.metadata).toEqual(metadata);
      expect(f.tensors.map((t) => t.name)).toEqual(safetensorsOrder(tensors).map((t) => t.name));
      expect(f.tensors).toEqual(written.tensors);
      for (const t of tensors) {
        const info = f.get(t.name)!;
        expect(info.dtype).toBe(t.dtype);
        expect(info.shape).toEqual(t.shape);
        const data = await f.read(t.name);
        expect(data).toEqual(t.data);
        const into = new Uint8Array(t.data.byteLength);
        await f.readInto(t.name, into);
        expect(into).toEqual(t.data);
      }
      expect(f.has('nope')).toBe(false);
      await expect(f.read('nope')).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    } finally {
      await f.close();
    }
    await expect(f.read('scalar')).rejects.toMatchObject({ code: 'E_IO' });
    // The spill file is gone.
    expect((await readdir(dir)).filter((n) => n.includes('spill'))).toEqual([]);
  });

  it('streaming writer, in-memory serializer and writeSafetensors produce identical bytes', async () => {
    const p1 = join(dir, 'stream.safetensors');
    const w = await SafetensorsWriter.create(p1, { metadata });
    for (const t of tensors) await w.add(t);
    await w.finish();
    const p2 = join(dir, 'small.safetensors');
    await writeSafetensors(p2, [...tensors].reverse(), metadata);
    const a = await readFile(p1);
    expect(new Uint8Array(a)).toEqual(serializeSafetensors(tensors, metadata));
    expect(a.equals(await readFile(p2))).toBe(true);
    // Header padded with spaces to a multiple of 8, data 8-aligned in the file.
    const n = Number(a.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    expect(a[8 + n - 1] === 0x7d || a[8 + n - 1] === 0x20).toBe(true);
  });

  it('accepts typed arrays as data', async () => {
    const bytes = serializeSafetensors([{ name: 'x', dtype: 'F32', shape: [3], data: new Float32Array([1, 2, 3]) }]);
    const f = await SafetensorsFile.open(await put('typed.safetensors', bytes));
    expect(new Float32Array((await f.read('x')).buffer)).toEqual(new Float32Array([1, 2, 3]));
    await f.close();
  });

  it('rejects duplicate names, bad shapes and wrong data lengths; abort leaves nothing', async () => {
    const path = join(dir, 'dup.safetensors');
    const w = await SafetensorsWriter.create(path);
    await w.add(tensor('a', 'F32', [2], 0));
    await expect(w.add(tensor('a', 'F32', [2], 0))).rejects.toMatchObject({ code: 'E_INPUT', message: expect.stringContaining('duplicate') });
    await expect(w.add({ name: 'b', dtype: 'F32', shape: [3], data: new Uint8Array(8) })).rejects.toMatchObject({ code: 'E_INPUT' });
    await expect(w.add({ name: 'c', dtype: 'F32', shape: [-1], data: new Uint8Array(0) })).rejects.toMatchObject({ code: 'E_INPUT' });
    await expect(w.add({ name: '__metadata__', dtype: 'U8', shape: [0], data: new Uint8Array(0) })).rejects.toMatchObject({ code: 'E_INPUT' });
    await w.abort();
    expect((await readdir(dir)).filter((n) => n.includes('dup'))).toEqual([]);
    await expect(w.add(tensor('z', 'U8', [1], 0))).rejects.toMatchObject({ code: 'E_INPUT' });
    expect(() => serializeSafetensors([tensor('a', 'U8', [1], 0), tensor('a', 'U8', [1], 0)])).toThrow(/duplicate/);
  });
});

describe('files written by the reference implementation', () => {
  // Byte vectors from huggingface/safetensors' own tests (safetensors/src/tensor.rs): what
  // `serialize` / `safetensors.torch.save_file` emit for these tensors.
  const f32s = new Uint8Array(new Float32Array([0, 1, 2, 3, 4, 5]).buffer);

  it('test_serialization: F32 [1,2,3] named attn.0', async () => {
    const expected = [
      64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44,
      34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115, 101, 116, 115, 34,
      58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ];
    expect([...serializeSafetensors([{ name: 'attn.0', dtype: 'F32', shape: [1, 2, 3], data: f32s }])]).toEqual(expected);
    const f = await SafetensorsFile.open(await put('rust1.safetensors', new Uint8Array(expected)));
    expect(f.tensors).toEqual([{ name: 'attn.0', dtype: 'F32', shape: [1, 2, 3], offsets: [0, 24], byteLength: 24 }]);
    expect(await f.read('attn.0')).toEqual(f32s);
    await f.close();
  });

  it('test_serialization_forced_alignement: header padded with spaces', () => {
    const out = serializeSafetensors([{ name: 'attn0', dtype: 'F32', shape: [1, 1, 2, 3], data: f32s }]);
    const header = new TextDecoder().decode(out.subarray(8, 8 + 72));
    expect(out[0]).toBe(72);
    expect(header).toBe('{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       ');
  });

  it('test_empty: no tensors, with and without metadata', async () => {
    expect([...serializeSafetensors([])]).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    const withMeta = serializeSafetensors([], { framework: 'pt' });
    expect([...withMeta]).toEqual([
      40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95, 95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119,
      111, 114, 107, 34, 58, 34, 112, 116, 34, 125, 125, 32, 32, 32, 32, 32,
    ]);
    const f = await SafetensorsFile.open(await put('empty.safetensors', withMeta));
    expect(f.tensors).toEqual([]);
    expect(f.metadata).toEqual({ framework: 'pt' });
    await f.close();
  });

  it('a save_file-style file with mixed dtypes: wide dtypes first, then by name', async () => {
    // What torch.save_file({"b.w": f32[2], "a.w": f32[1], "c": bf16[2], "mask": bool[3]}, {"format": "pt"}) writes.
    const header =
      '{"__metadata__":{"format":"pt"},"a.w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' +
      '"b.w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},"c":{"dtype":"BF16","shape":[2],"data_offsets":[12,16]},' +
      '"mask":{"dtype":"BOOL","shape":[3],"data_offsets":[16,19]}}';
    const padded = header + ' '.repeat((8 - (header.length % 8)) % 8);
    const data = new Uint8Array([0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0x80, 0x3f, 0x00, 0x40, 1, 0, 1]);
    const bytes = rawFile(padded, data);
    const ours = serializeSafetensors(
      [
        { name: 'mask', dtype: 'BOOL', shape: [3], data: data.slice(16, 19) },
        { name: 'c', dtype: 'BF16', shape: [2], data: data.slice(12, 16) },
        { name: 'b.w', dtype: 'F32', shape: [2], data: data.slice(4, 12) },
        { name: 'a.w', dtype: 'F32', shape: [1], data: data.slice(0, 4) },
      ],
      { format: 'pt' },
    );
    expect(ours).toEqual(bytes);
    const f = await SafetensorsFile.open(await put('py.safetensors', bytes));
    expect(f.tensors.map((t) => t.name)).toEqual(['a.w', 'b.w', 'c', 'mask']);
    expect([...(await f.read('mask'))]).toEqual([1, 0, 1]);
    await f.close();
  });

  it('accepts what the crate accepts: whitespace padding, empty shapes, zero-sized tensors, any key order', async () => {
    const ok = [
      rawFile('{}\r \t\n'),
      rawFile('  {}  '),
      rawFile('{"test":{"dtype":"I32","shape":[],"data_offsets":[0,4]}}', 4),
      rawFile('{"test":{"dtype":"I32","shape":[2,0],"data_offsets":[0, 0]}}'),
      rawFile('{"b":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"a":{"dtype":"U8","shape":[1],"data_offsets":[2,3],"extra":1}}', 3),
      rawFile('{"__metadata__":null,"z":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"y":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', 1),
    ];
    for (const [i, bytes] of ok.entries()) {
      const f = await SafetensorsFile.open(await put(`ok${i}.safetensors`, bytes));
      for (const t of f.tensors) expect((await f.read(t.name)).byteLength).toBe(t.byteLength);
      await f.close();
    }
  });
});

describe('header validation', () => {
  const good = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
  const withLength = (n: bigint, rest: Uint8Array) => {
    const out = new Uint8Array(8 + rest.length);
    new DataView(out.buffer).setBigUint64(0, n, true);
    out.set(rest, 8);
    return out;
  };
  const entry = (e: string, data = 8) => rawFile(`{"a":${e}}`, data);
  const cases: [string, Uint8Array, RegExp][] = [
    ['short', new Uint8Array([1, 0, 0]), /shorter than the 8-byte/],
    ['zero-length', withLength(0n, new Uint8Array(16)), /header length is 0/],
    ['length-past-eof', withLength(500n, new TextEncoder().encode(good)), /larger than the file/],
    ['length-over-limit', withLength(100_000_001n, new Uint8Array(8)), /above the 100000000-byte limit/],
    ['length-u64-max', withLength(0xffff_ffff_ffff_ffffn, new Uint8Array(8)), /above the/],
    ['not-utf8', withLength(2n, new Uint8Array([0xff, 0xfe])), /not valid UTF-8/],
    ['not-json', rawFile('{"a":'), /not valid JSON/],
    ['array', rawFile('[1,2]'), /not an object/],
    ['string', rawFile('"x"'), /not an object/],
    ['metadata-number', rawFile('{"__metadata__":{"k":1}}'), /__metadata__\.k is not a string/],
    ['metadata-array', rawFile('{"__metadata__":["x"]}'), /__metadata__ is not an object/],
    ['entry-not-object', rawFile('{"a":[1,2]}'), /tensor "a" is not an object/],
    ['entry-missing-offsets', entry('{"dtype":"F32","shape":[2]}'), /lacks one of dtype, shape, data_offsets/],
    ['unknown-dtype', entry('{"dtype":"F128","shape":[2],"data_offsets":[0,8]}'), /unknown dtype "F128"/],
    ['dtype-not-string', entry('{"dtype":4,"shape":[2],"data_offsets":[0,8]}'), /unknown dtype 4/],
    ['shape-negative', entry('{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}'), /not a list of non-negative integers/],
    ['shape-float', entry('{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}'), /not a list of non-negative integers/],
    ['shape-not-array', entry('{"dtype":"F32","shape":2,"data_offsets":[0,8]}'), /not a list/],
    ['shape-huge', entry('{"dtype":"F32","shape":[2,18446744073709551614],"data_offsets":[0,8]}'), /not a list of non-negative integers/],
    ['offsets-three', entry('{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}'), /not two non-negative integers/],
    ['offsets-strings', entry('{"dtype":"F32","shape":[2],"data_offsets":["0","8"]}'), /not two non-negative integers/],
    ['offsets-reversed', entry('{"dtype":"F32","shape":[0],"data_offsets":[8,0]}'), /end before begin/],
    ['size-mismatch', entry('{"dtype":"F32","shape":[3],"data_offsets":[0,8]}'), /needs 12 bytes but data_offsets span 8/],
    ['beyond-data', entry('{"dtype":"F32","shape":[2],"data_offsets":[0,8]}', 4), /beyond the data section \(4 bytes\)/],
    ['trailing-bytes', entry('{"dtype":"F32","shape":[2],"data_offsets":[0,8]}', 12), /4 bytes after the last tensor/],
    ['hole', rawFile('{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}', 6), /bytes \[2, 4\) .* belong to no tensor/],
    ['hole-at-start', rawFile('{"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}', 4), /bytes \[0, 2\)/],
    ['overlap', rawFile('{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}', 4), /"a" and "b" overlap/],
    ['json-attack', rawFile('{"w0":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"w1":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}', 16), /overlap/],
  ];

  it.each(cases)('%s -> E_FORMAT naming the file', async (name, bytes, message) => {
    const path = await put(`bad-${name}.safetensors`, bytes);
    const e = await openErr(path);
    expect(e.code).toBe('E_FORMAT');
    expect(e.exitCode).toBe(2);
    expect(e.message.startsWith(`${path}: `)).toBe(true);
    expect(e.message).toMatch(message);
    expect(e.message).not.toContain('\n');
  });

  it('honours a smaller maxHeaderBytes', async () => {
    const path = await put('limit.safetensors', rawFile(good, 8));
    await expect(SafetensorsFile.open(path, { maxHeaderBytes: 16 })).rejects.toMatchObject({ code: 'E_FORMAT', message: expect.stringMatching(/16-byte limit/) });
  });

  it('missing file -> E_NOT_FOUND; a folder -> E_FORMAT', async () => {
    await expect(SafetensorsFile.open(join(dir, 'missing.safetensors'))).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    await expect(SafetensorsFile.open(dir)).rejects.toMatchObject({ code: 'E_FORMAT' });
  });

  it('a file truncated after open is reported, not misread', async () => {
    const path = await put('shrink.safetensors', rawFile(good, 8));
    const f = await SafetensorsFile.open(path);
    await writeFile(path, rawFile(good, 2));
    await expect(f.read('a')).rejects.toMatchObject({ code: 'E_FORMAT', message: expect.stringMatching(/truncated/) });
    await f.close();
  });
});
