/**
 * The demo data's random numbers: splitmix32 (Steele, Lea & Flood's SplitMix, 32-bit variant), so a
 * seed gives the same files on every machine and Node version (integer ops only, no Math.random,
 * no floating point beyond exact 2^-32 scaling).
 * Not the training RNG (the trainer seeds its own) nor the model fixtures' Xoshiro128.
 */
export class Rng {
  #x;

  constructor(seed) {
    this.#x = seed >>> 0;
  }

  /** Next uniform u32. */
  u32() {
    this.#x = (this.#x + 0x9e3779b9) >>> 0;
    let z = this.#x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  }

  /** Uniform integer in [0, n) (n < 2^32; the tiny modulo bias does not matter for synthetic text). */
  int(n) {
    return this.u32() % n;
  }

  /** Uniform integer in [lo, hi]. */
  range(lo, hi) {
    return lo + this.int(hi - lo + 1);
  }

  /** true with probability p (in steps of 2^-32). */
  chance(p) {
    return this.u32() < p * 2 ** 32;
  }

  pick(list) {
    return list[this.int(list.length)];
  }

  /** A shuffled copy (Fisher-Yates). */
  shuffled(list) {
    const out = [...list];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }
}
