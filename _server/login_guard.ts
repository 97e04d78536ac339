/**
 * Backoff for failed logins (a wrong password, a key proof that does not
 * verify): per address, and for the whole server.
 *
 * @module
 */

import { TokenBucket } from "./token_bucket.ts";

/** Failures an address may have before it must wait. */
export const FREE_FAILURES = 3;
/** The first wait, in ms; each further failure doubles it, up to the limit. */
export const FIRST_WAIT = 1000;
/** An address with no failure for this long starts afresh, in ms. */
const FORGET_AFTER = 15 * 60_000;
/** Most addresses remembered; past this the oldest record is dropped. */
const MAX_ADDRESSES = 100_000;

interface Record {
  failures: number;
  /** `performance.now()` before which the address may not try again. */
  until: number;
  last: number;
}

/**
 * The address a failure is charged to: an IPv4 address, or the /64 network
 * of an IPv6 address (one host usually has a whole /64).
 */
function bucketOf(ip: string): string {
  if (!ip.includes(":")) return ip;
  if (/^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(ip)) return ip.slice(7);
  const [head = "", tail] = ip.toLowerCase().split("::", 2);
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = tail === undefined
    ? left
    : [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right];
  return groups.slice(0, 4).map((group) => group.replace(/^0+(?=.)/, "")).join(":") + "::/64";
}

/** Counts failed logins and says how long an address must wait before trying again. */
export class LoginGuard {
  #addresses = new Map<string, Record>();
  #rate: number;
  #maxWait: number;
  /** The server's budget of failures. */
  #budget: TokenBucket;

  /**
   * Creates a guard.
   *
   * @param rate Failed logins per second the whole server tolerates, after a
   * burst of ten times as many.
   * @param maxWait The longest wait for one address, in ms.
   * @param now `performance.now()`.
   */
  constructor(rate: number, maxWait: number, now: number = performance.now()) {
    this.#rate = rate;
    this.#maxWait = maxWait;
    this.#budget = new TokenBucket(rate, rate * 10, now);
  }

  /**
   * How long an address must still wait before its password or key proof is
   * checked, in ms: 0 when it may try now. An address that never failed
   * (or not lately) may always try; one that failed waits out its own backoff,
   * and also waits while the server's budget of failures is spent.
   *
   * @param ip The address.
   * @param now `performance.now()`.
   * @returns The wait in ms.
   */
  wait(ip: string, now: number = performance.now()): number {
    const record = this.#record(ip, now);
    if (record === undefined) return 0;
    const own = Math.max(0, record.until - now);
    const shared = this.#budget.refill(now) >= 1 ? 0 : this.#budget.wait(1);
    return Math.ceil(Math.max(own, shared));
  }

  /**
   * Records a failed password or key proof.
   *
   * @param ip The address it came from.
   * @param now `performance.now()`.
   */
  failed(ip: string, now: number = performance.now()): void {
    const key = bucketOf(ip);
    const record = this.#record(ip, now) ?? { failures: 0, until: 0, last: now };
    record.failures++;
    record.last = now;
    const over = record.failures - FREE_FAILURES;
    if (over > 0) {
      record.until = now + Math.min(FIRST_WAIT * 2 ** Math.min(over - 1, 30), this.#maxWait);
    }
    this.#addresses.delete(key);
    this.#addresses.set(key, record);
    if (this.#addresses.size > MAX_ADDRESSES) {
      this.#addresses.delete(this.#addresses.keys().next().value!);
    }
    this.#budget.refill(now);
    // Fresh addresses are always heard, so the debt is bounded.
    this.#budget.take(1, -this.#rate * 10);
  }

  /**
   * Forgets an address's failures after it gave the right password: whoever
   * knows it is not guessing.
   *
   * @param ip The address.
   */
  succeeded(ip: string): void {
    this.#addresses.delete(bucketOf(ip));
  }

  /** Drops the records of addresses that have been quiet for long. */
  sweep(now: number = performance.now()): void {
    for (const [key, record] of this.#addresses) {
      if (now - record.last <= FORGET_AFTER) break;
      this.#addresses.delete(key);
    }
  }

  #record(ip: string, now: number): Record | undefined {
    const key = bucketOf(ip);
    const record = this.#addresses.get(key);
    if (record !== undefined && now - record.last > FORGET_AFTER) {
      this.#addresses.delete(key);
      return undefined;
    }
    return record;
  }
}
