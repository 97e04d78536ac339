/**
 * A small seeded random number generator for fuzz tests: the same seed gives
 * the same inputs on every run, so a failure can be replayed.
 *
 * @module
 */

/** Mulberry32: 32 bits of state, fast, and good enough to pick test inputs. */
export class Prng {
  #state: number;

  /**
   * Creates a generator.
   *
   * @param seed Any 32-bit number; the same seed gives the same sequence.
   */
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A number in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, `max`). */
  int(max: number): number {
    return Math.floor(this.next() * max);
  }

  /** An integer in [`min`, `max`]. */
  range(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  /** `true` with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** One of the items. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** `length` random bytes. */
  bytes(length: number): Uint8Array {
    const bytes = new Uint8Array(length);
    for (let i = 0; i < length; i++) bytes[i] = this.int(256);
    return bytes;
  }
}
