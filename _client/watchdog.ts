/**
 * The liveness watchdog: the server pings an idle client, so a link that
 * hears nothing for the server's idle timeout (and a margin) is gone, and is
 * closed so that the client notices.
 *
 * @module
 */

import type { Link } from "./link.ts";

/** The margin over the server's idle timeout, in ms. */
const MARGIN_MS = 5000;

/** Closes the current link when the server has been silent too long. */
export class Watchdog {
  #timer: ReturnType<typeof setInterval> | undefined;

  /**
   * Starts watching, once: later calls change nothing. No timeout (zero or
   * absent) means nothing to watch.
   *
   * @param idleTimeout The server's idle timeout, in ms.
   * @param current The link to watch at each check.
   */
  start(idleTimeout: number | undefined, current: () => Link | undefined): void {
    if (this.#timer !== undefined || idleTimeout === undefined || !(idleTimeout > 0)) return;
    // However short the server says its timeout is, check at most once a second.
    this.#timer = setInterval(() => {
      const link = current();
      if (
        link !== undefined && !link.closed &&
        performance.now() - link.lastInput > idleTimeout + MARGIN_MS
      ) {
        link.destroy();
      }
    }, Math.max(Math.min(idleTimeout / 4, 30_000), 1000));
  }

  /** Stops watching. */
  stop(): void {
    clearInterval(this.#timer);
  }
}
