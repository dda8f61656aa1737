// Native memory (alloc / free / allocatedBytes): zeroed external ArrayBuffers owned by Rust,
// freed deterministically by free() (which detaches them) or by the GC finalizer. Alignment is
// checked in Rust (src/memory.rs). Skipped when the .node file is not built, unless PEFT_REQUIRE_NATIVE=1.
import { spawnSync } from 'node:child_process';
import { kernels as k, pkgDir } from './helpers.js';
import { describe, expect, it } from 'vitest';


function errorOf(fn: () => void): (Error & { code?: string }) | undefined {
  try {
    fn();
  } catch (e) {
    return e as Error & { code?: string };
  }
  return undefined;
}

describe.skipIf(!k)('native memory', () => {
  const K = k!;

  it('allocates zeroed buffers, counts them, and free() detaches', () => {
    const start = K.allocatedBytes();
    const buf = K.alloc(1000);
    expect(buf).toBeInstanceOf(ArrayBuffer);
    expect(buf.byteLength).toBe(1000);
    expect(new Uint8Array(buf).every((v) => v === 0)).toBe(true);
    expect(K.allocatedBytes()).toBe(start + 1000);
    const view = new Float32Array(buf);
    view[249] = 3.5;
    expect(view[249]).toBe(3.5);
    K.free(buf);
    expect(buf.byteLength).toBe(0);
    expect(view.length).toBe(0); // views of a detached buffer are empty, not dangling
    expect(K.allocatedBytes()).toBe(start);
    K.free(buf); // idempotent
    expect(K.allocatedBytes()).toBe(start);
  });

  it('is usable as kernel memory', () => {
    const a = new Float32Array(K.alloc(4 * 6));
    const b = new Float32Array(K.alloc(4 * 6));
    const c = new Float32Array(K.alloc(4 * 4));
    a.set([1, 2, 3, 4, 5, 6]);
    b.set([1, 0, 0, 1, 1, 1]);
    K.gemm(false, false, 2, 2, 3, 1, a, b, 0, c);
    expect(Array.from(c)).toEqual([4, 5, 10, 11]);
    for (const x of [a, b, c]) K.free(x.buffer as ArrayBuffer);
  });

  it('returns to the start count after many alloc/free cycles', () => {
    const start = K.allocatedBytes();
    const live: ArrayBuffer[] = [];
    for (let i = 0; i < 5000; i++) {
      live.push(K.alloc(1 + ((i * 7919) % 65536)));
      if (i % 3 === 2) {
        K.free(live.shift()!);
        K.free(live.pop()!);
      }
    }
    expect(K.allocatedBytes()).toBeGreaterThan(start);
    for (const b of live) K.free(b);
    expect(K.allocatedBytes()).toBe(start);
  });

  it('alloc(0) is an empty buffer; bad arguments are EINVAL', () => {
    const start = K.allocatedBytes();
    const empty = K.alloc(0);
    expect(empty.byteLength).toBe(0);
    K.free(empty);
    expect(K.allocatedBytes()).toBe(start);
    for (const [fn, arg] of [
      [() => K.free(new ArrayBuffer(16)), 'buffer'], // not from alloc
      [() => K.free(new Uint8Array(K.alloc(8)) as unknown as ArrayBuffer), 'buffer'], // a view, not the buffer
      [() => K.alloc(-1), 'bytes'],
      [() => K.alloc(1.5), 'bytes'],
    ] as const) {
      const err = errorOf(fn);
      expect(err?.code).toBe('EINVAL');
      expect(err?.message).toContain(`\`${arg}\``);
    }
  });

  it('the GC frees buffers that JS dropped without free()', () => {
    // A child with --expose-gc: allocate, drop, collect; finalizers run on the event loop.
    const script = `
      const K = require(${JSON.stringify(pkgDir)});
      const start = K.allocatedBytes();
      let bufs = Array.from({ length: 64 }, () => K.alloc(1 << 20));
      const held = K.allocatedBytes() - start;
      bufs = null;
      (async () => {
        for (let i = 0; i < 50 && K.allocatedBytes() > start; i++) {
          globalThis.gc();
          await new Promise((r) => setTimeout(r, 10));
        }
        process.stdout.write(JSON.stringify({ held, after: K.allocatedBytes() - start }));
      })();`;
    const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ held: 64 << 20, after: 0 });
  });
});
