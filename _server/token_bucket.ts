/**
 * A token bucket: a burst, then a steady rate. The rate limit of requests,
 * the line budget of a connection, the connection rate of an address and the
 * server's budget of failed logins are all one.
 *
 * @module
 */

/** Tokens that refill at a steady rate up to a burst. */
export class TokenBucket {
  #rate: number;
  #burst: number;
  #tokens: number;
  #at: number;

  /**
   * Creates a full bucket.
   *
   * @param rate Tokens per second.
   * @param burst Most tokens held.
   * @param now `performance.now()`.
   */
  constructor(rate: number, burst: number, now: number) {
    this.#rate = rate;
    this.#burst = burst;
    this.#tokens = burst;
    this.#at = now;
  }

  /** When the bucket was last refilled (`performance.now()`). */
  get at(): number {
    return this.#at;
  }

  /**
   * The tokens held now, after refilling for the time since the last look
   * (below zero while paying off a debt).
   *
   * @param now `performance.now()`.
   * @returns The tokens.
   */
  refill(now: number): number {
    this.#tokens = Math.min(
      this.#burst,
      this.#tokens + Math.max(0, now - this.#at) * this.#rate / 1000,
    );
    this.#at = Math.max(now, this.#at);
    return this.#tokens;
  }

  /**
   * Takes tokens, going into debt if there are not enough.
   *
   * @param count How many.
   * @param floor The deepest debt allowed.
   */
  take(count: number, floor: number = -Infinity): void {
    this.#tokens = Math.max(this.#tokens - count, floor);
  }

  /**
   * Takes tokens if there are enough.
   *
   * @param count How many.
   * @param now `performance.now()`.
   * @returns Whether they were taken.
   */
  tryTake(count: number, now: number): boolean {
    if (this.refill(now) < count) return false;
    this.#tokens -= count;
    return true;
  }

  /**
   * How long until `count` tokens are held, in ms (0 when they are now).
   * Does not refill: call after {@linkcode TokenBucket.refill}.
   *
   * @param count How many.
   * @returns The wait.
   */
  wait(count: number): number {
    return Math.max(0, (count - this.#tokens) * 1000 / this.#rate);
  }
}
