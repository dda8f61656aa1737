/**
 * Every bad input of `peft quantize` / `peft inspect`: exit 2, one line naming the file and
 * the problem, and no output folder (or temp folder) left behind.
 */
import { generateTinyLlama } from '@peft/core-tensor';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { listing, peft, tempDir } from './helpers.js';

let work: string;
let good: string;

beforeAll(async () => {
  work = tempDir();
  good = join(work, 'good');
  await generateTinyLlama(good, { preset: 'tiny', seed: 3, dtype: 'F32' });
});

/** A copy of the good model whose model.safetensors is rewritten by `mutate`. */
function variant(name: string, mutate: (bytes: Buffer) => Buffer): string {
  const dir = join(work, name);
  cpSync(good, dir, { recursive: true });
  const file = join(dir, 'model.safetensors');
  writeFileSync(file, mutate(readFileSync(file)));
  return dir;
}

/** Rewrite the JSON header of a safetensors file (keeping the data section). */
function editHeader(bytes: Buffer, edit: (h: Record<string, any>) => void): Buffer {
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  edit(header);
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, bytes.subarray(8 + n)]);
}

const firstMatrix = (h: Record<string, any>) => h['model.layers.0.self_attn.q_proj.weight'];

async function expectBadInput(args: string[], pattern: RegExp, outParent = work) {
  const before = listing(outParent);
  const r = await peft(args);
  expect(r.exitCode, r.stderr).toBe(2);
  const lines = r.stderr.trim().split('\n').filter((l) => l.trim());
  expect(lines.length, r.stderr).toBe(1);
  expect(r.stderr).toMatch(pattern);
  expect(listing(outParent)).toEqual(before);
}

describe('bad input is exit 2 with one line and nothing written', () => {
  const out = () => join(work, 'out');
  const cases: [string, () => string, RegExp][] = [
    ['missing folder', () => join(work, 'nope'), /nope.*(no such|not found|does not exist)/i],
    ['a folder that is not a model', () => { const d = join(work, 'empty'); mkdirSync(d, { recursive: true }); return d; }, /empty.*not a model/i],
    ['truncated file', () => variant('trunc', (b) => b.subarray(0, 5)), /model\.safetensors/],
    ['header length beyond the file', () => variant('hlen', (b) => { const c = Buffer.from(b); c.writeBigUInt64LE(BigInt(b.length * 2), 0); return c; }), /model\.safetensors.*header/i],
    ['header that is not JSON', () => variant('json', (b) => { const c = Buffer.from(b); c.write('#', 8); return c; }), /model\.safetensors.*JSON/i],
    ['unknown dtype', () => variant('dtype', (b) => editHeader(b, (h) => { firstMatrix(h).dtype = 'F42'; })), /model\.safetensors.*dtype/i],
    ['offsets out of range', () => variant('range', (b) => editHeader(b, (h) => { const t = firstMatrix(h); t.data_offsets = [t.data_offsets[0] + 1e9, t.data_offsets[1] + 1e9]; })), /model\.safetensors/],
    ['overlapping tensors', () => variant('overlap', (b) => editHeader(b, (h) => {
      const ts = Object.entries(h).filter(([k]) => k !== '__metadata__').map(([, v]) => v as any).sort((x, y) => x.data_offsets[0] - y.data_offsets[0]);
      const [a, c] = [ts[1], ts[2]];
      const size = c.data_offsets[1] - c.data_offsets[0];
      c.data_offsets = [a.data_offsets[0], a.data_offsets[0] + size];
    })), /model\.safetensors.*overlap/i],
    ['short data', () => variant('short', (b) => b.subarray(0, b.length - 16)), /model\.safetensors/],
    ['a tensor with the wrong shape for its config', () => {
      const d = join(work, 'shape');
      cpSync(good, d, { recursive: true });
      const cfg = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
      cfg.intermediate_size += 8;
      writeFileSync(join(d, 'config.json'), JSON.stringify(cfg));
      return d;
    }, /mlp\.(gate|up|down)_proj\.weight.*shape/],
  ];
  for (const [what, make, pattern] of cases) {
    it(what, async () => {
      const dir = make();
      await expectBadInput(['quantize', dir, '--out', out()], pattern);
      if (what !== 'a tensor with the wrong shape for its config' && what !== 'missing folder' && !what.includes('not a model')) {
        await expectBadInput(['inspect', join(dir, 'model.safetensors')], pattern);
      }
    });
  }

  it('an existing --out without --force', async () => {
    const existing = join(work, 'existing');
    mkdirSync(existing, { recursive: true });
    writeFileSync(join(existing, 'keep.txt'), 'x');
    await expectBadInput(['quantize', good, '--out', existing], /existing.*exists.*--force/);
    expect(readFileSync(join(existing, 'keep.txt'), 'utf8')).toBe('x');
  });

  it('an unwritable output (parent is a file)', async () => {
    const file = join(work, 'a-file');
    writeFileSync(file, 'x');
    await expectBadInput(['quantize', good, '--out', join(file, 'sub')], /a-file/);
  });

  it('an unwritable output (a folder that refuses new entries, even for root)', async () => {
    const r = await peft(['quantize', good, '--out', '/sys/peft-test-out']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/\/sys/);
  });

  it('bad options: unknown type, unknown --set key, out-of-range blocksize, flag of another quantizer', async () => {
    await expectBadInput(['quantize', good, '--out', out(), '--type', 'nf5'], /unknown quantizer "nf5".*nf4/);
    await expectBadInput(['quantize', good, '--out', out(), '--set', 'colour=blue'], /unknown option "colour".*blocksize/);
    await expectBadInput(['quantize', good, '--out', out(), '--blocksize', '100'], /blocksize/);
    await expectBadInput(['quantize', good, '--out', out(), '--type', 'int8', '--blocksize', '64'], /--blocksize does not apply to quantizer "int8"/);
  });

  it('an already quantized model', async () => {
    const q = join(work, 'q');
    expect((await peft(['quantize', good, '--out', q])).exitCode).toBe(0);
    await expectBadInput(['quantize', q, '--out', out()], /already quantized/);
  });

  it('unknown flags and a missing argument are usage errors (exit 2)', async () => {
    expect((await peft(['quantize', good, '--out', out(), '--bogus'])).exitCode).toBe(2);
    expect((await peft(['quantize', '--out', out()])).exitCode).toBe(2);
  });

  it('--json errors are JSON on stdout with the exit code kept', async () => {
    const r = await peft(['inspect', join(work, 'nope'), '--json']);
    expect(r.exitCode).toBe(2);
    expect(r.json().error.message).toMatch(/nope/);
  });

});
