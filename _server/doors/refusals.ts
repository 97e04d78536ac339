/**
 * Refusals to a connection over its line budget, coalesced: the first goes
 * out, the others are counted and answered by one notice a second (listing
 * the ids of the requests it answers). Shared by every door.
 *
 * @module
 */

import type { RequestId } from "../../protocol/frames.ts";

/** How often refusals held back from a connection over its budget are reported, in ms. */
const REFUSAL_REPORT_INTERVAL = 1000;

/** The refusals held back from one connection. */
export class Refusals {
  #over: () => boolean;
  #report: (message: string, ids: RequestId[]) => void;
  /** Whether a refusal went out since the connection went over its budget. */
  #refusedWhileOver = false;
  /** Refusals held back since the last report. */
  #held = 0;
  /** The ids of the requests among them. */
  #ids: RequestId[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Starts counting for a connection.
   *
   * @param over Whether the connection is over its line budget now.
   * @param report Sends the notice that answers the refusals held back.
   */
  constructor(over: () => boolean, report: (message: string, ids: RequestId[]) => void) {
    this.#over = over;
    this.#report = report;
  }

  /**
   * Whether a refusal is held back: while the connection is over its line
   * budget, the first refusal goes out and the others are counted, then
   * reported in one notice a second.
   *
   * @param id The refused request's id, if known.
   * @returns Whether the caller must not send the refusal itself.
   */
  hold(id?: RequestId): boolean {
    if (!this.#over()) return false;
    if (!this.#refusedWhileOver) {
      this.#refusedWhileOver = true;
      return false;
    }
    this.#held++;
    // Every request is still answered: the notice lists the ids it answers.
    if (id !== undefined) this.#ids.push(id);
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      this.#reportHeld();
    }, REFUSAL_REPORT_INTERVAL);
    return true;
  }

  /** The connection is within its budget again: report what was held back, start afresh. */
  flush(): void {
    if (!this.#refusedWhileOver) return;
    this.#refusedWhileOver = false;
    this.#reportHeld();
  }

  /** Stops the timer, for a connection that ends. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #reportHeld(): void {
    this.stop();
    const count = this.#held;
    if (count === 0) return;
    this.#held = 0;
    const ids = this.#ids;
    this.#ids = [];
    this.#report(
      `Slow down: ${count} more ${
        count === 1 ? "line was" : "lines were"
      } refused; you are sending too fast`,
      ids,
    );
  }
}
