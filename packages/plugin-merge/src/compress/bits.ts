/**
 * Bit streams for the compressed containers: MSB-first within each byte (the first bit written
 * is bit 7 of byte 0), a writer sized up front (the encoders know their exact bit count) and a
 * reader that refuses to run past its end. Used by the Golomb-Rice gap coder (gaps.ts) and the
 * sign bits (compeft.ts).
 * Not here: what the bits mean.
 */
import { PeftError } from '@peft/core-tensor';

export class BitWriter {
  readonly bytes: Uint8Array;
  #pos = 0; // bits written

  /** A writer for exactly `bits` bits (the last byte is zero-padded). */
  constructor(readonly bits: number) {
    this.bytes = new Uint8Array(Math.ceil(bits / 8));
  }

  get position(): number {
    return this.#pos;
  }

  bit(b: 0 | 1 | boolean): void {
    if (b) this.bytes[this.#pos >>> 3] |= 0x80 >>> (this.#pos & 7);
    this.#pos++;
  }

  /** The low `n` bits of `v` (0 ≤ n ≤ 30), most significant first. */
  bitsOf(v: number, n: number): void {
    for (let i = n - 1; i >= 0; i--) this.bit(((v >>> i) & 1) as 0 | 1);
  }

  /** `q` one bits, then a zero. */
  unary(q: number): void {
    for (let i = 0; i < q; i++) this.bit(1);
    this.#pos++;
  }

  /** The bytes; throws if fewer or more bits were written than announced (an encoder bug, not bad input). */
  finish(): Uint8Array {
    if (this.#pos !== this.bits) throw new PeftError('E_RUNTIME', `bit writer: wrote ${this.#pos} bits, sized for ${this.bits}`);
    return this.bytes;
  }
}

export class BitReader {
  #pos = 0;
  readonly #limit: number;

  /** `fail(what)` builds the error thrown when the stream is inconsistent. */
  constructor(readonly bytes: Uint8Array, readonly fail: (what: string) => Error) {
    this.#limit = bytes.length * 8;
  }

  get position(): number {
    return this.#pos;
  }

  bit(): 0 | 1 {
    if (this.#pos >= this.#limit) throw this.fail('the bit stream ends early');
    const b = (this.bytes[this.#pos >>> 3] >>> (7 - (this.#pos & 7))) & 1;
    this.#pos++;
    return b as 0 | 1;
  }

  bitsOf(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) v = (v << 1) | this.bit();
    return v >>> 0;
  }

  /** Counts one bits up to the terminating zero. */
  unary(): number {
    let q = 0;
    while (this.bit()) q++;
    return q;
  }

  /** The padding after the last coded bit must be zero bits filling the last byte exactly. */
  end(): void {
    if (this.#limit - this.#pos >= 8) throw this.fail(`${(this.#limit - this.#pos) >>> 3} unused bytes after the bit stream`);
    while (this.#pos < this.#limit) if (this.bit()) throw this.fail('nonzero padding bits');
  }
}
