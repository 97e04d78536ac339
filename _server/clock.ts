/**
 * The time as the protocol writes it.
 *
 * @module
 */

let lastMs = Number.NaN;
let lastIso = "";

/**
 * The current time in ISO 8601 (UTC, milliseconds), made once per
 * millisecond however many messages are stamped in it.
 *
 * @returns The time.
 */
export function isoNow(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastIso = new Date(now).toISOString();
  }
  return lastIso;
}
