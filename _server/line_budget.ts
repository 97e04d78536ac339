/**
 * How many lines one connection may have handled, whatever they hold: a token
 * bucket that also notices a connection that stays over it.
 *
 * @module
 */

import { TokenBucket } from "./token_bucket.ts";

/** Options for {@linkcode LineBudget}. */
export interface LineBudgetOptions {
  /** Lines per second, sustained. */
  rate: number;
  /** Lines in a burst; the bucket starts full. */
  burst: number;
  /** How long a connection may keep `floodBacklog` bytes waiting without a break, in ms. */
  floodTimeout: number;
  /** Bytes waiting for the budget that count as a flood. */
  floodBacklog: number;
}

/**
 * A token bucket counted in lines. A connection that finds it empty waits
 * (its socket is not read meanwhile); one that has found it empty every time
 * for `floodTimeout` ms is flooding.
 */
export class LineBudget {
  #options: LineBudgetOptions;
  #bucket: TokenBucket;
  #overSince: number | undefined;
  #floodSince: number | undefined;

  /**
   * Creates a full budget.
   *
   * @param options The rate, the burst and the flood timeout.
   * @param now `performance.now()`.
   */
  constructor(options: LineBudgetOptions, now: number) {
    this.#options = options;
    this.#bucket = new TokenBucket(options.rate, options.burst, now);
  }

  /** Whether the connection is over its budget (it has lines waiting for tokens). */
  get over(): boolean {
    return this.#overSince !== undefined;
  }

  /**
   * Lines that may be handled now, at least 0. When there is room again
   * without having had to wait, the connection is no longer over its budget.
   *
   * @param now `performance.now()`.
   * @param waited Whether the lines have been waiting for this room.
   * @returns How many whole lines fit.
   */
  allowance(now: number, waited: boolean): number {
    const whole = Math.floor(this.#bucket.refill(now));
    if (whole >= 1 && !waited) this.#overSince = this.#floodSince = undefined;
    return Math.max(whole, 0);
  }

  /**
   * Takes the lines just handled (possibly more than the allowance: the
   * bucket then goes below zero and refills from there).
   *
   * @param lines How many.
   */
  take(lines: number): void {
    this.#bucket.take(lines);
  }

  /**
   * Marks the connection as having lines that must wait.
   *
   * @param now `performance.now()`.
   * @param backlog Bytes already read that wait for the budget. A connection
   * floods when it keeps at least `floodBacklog` bytes waiting, without a
   * break, for `floodTimeout`: a client that waits for its answers never
   * has that much waiting, however long it keeps sending.
   * @returns How long to wait for one line's room, in ms, or `undefined` when
   * the connection floods.
   */
  wait(now: number, backlog: number): number | undefined {
    this.#overSince ??= now;
    if (backlog < this.#options.floodBacklog) this.#floodSince = undefined;
    else {
      this.#floodSince ??= now;
      if (now - this.#floodSince >= this.#options.floodTimeout) return undefined;
    }
    return Math.max(1, Math.ceil(this.#bucket.wait(1)));
  }
}
