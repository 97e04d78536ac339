/**
 * The server-wide budget for bytes waiting to be written, shared by every
 * connection's send queue. Bytes that many queues hold (one event
 * to a whole room) count once. Past a quarter of the budget the server stops
 * reading requests until it is down to an eighth (backpressure: senders wait,
 * as they would on a C relay that blocks). While reading is stopped, a
 * reader that has taken nothing for a second is disconnected, the one holding
 * most first, so a reader that stopped cannot hold a room back; past the
 * whole budget readers are disconnected until it fits: those that took
 * nothing for a second first, then those holding most.
 *
 * @module
 */

/** What a queue shows the budget: how much it holds, and how to cut it off. */
export interface BudgetedQueue {
  /** Bytes it holds, counting shared bytes in full. */
  readonly bytes: number;
  /** When its peer last took bytes, or when it last had none to take (`Date.now()`). */
  readonly progress: number;
  /** Disconnects it as over its limit. */
  overflow(): void;
}

/** While reading is stopped, how often the budget looks for readers that stopped reading, in ms. */
const STUCK_CHECK_INTERVAL = 250;
/**
 * A reader that took nothing for this long while reading is stopped holds
 * everyone back: it is disconnected, the one holding most first.
 */
const STUCK_AFTER = 1000;

/** One server's budget for bytes waiting to be written. */
export class QueueBudget {
  /** The most bytes held before readers are cut off. */
  readonly max: number;
  /** Reading stops past this. */
  readonly pauseAt: number;
  /** Reading starts again under this. */
  readonly resumeAt: number;
  #bytes = 0;
  /** How many chunks in all queues hold each buffer (or other shared thing). */
  #refs = new Map<object, number>();
  /** The size each shared thing was counted at. */
  #sizes = new Map<object, number>();
  #queues = new Set<BudgetedQueue>();
  #resume: PromiseWithResolvers<void> | undefined;
  #trimScheduled = false;
  #stuckTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Makes a budget.
   *
   * @param max The most bytes held, in all queues, counting shared bytes once.
   */
  constructor(max: number) {
    this.max = max;
    this.pauseAt = Math.floor(max / 4);
    this.resumeAt = Math.floor(max / 8);
  }

  /** Bytes held now, shared bytes counted once. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Whether reading is stopped. */
  get paused(): boolean {
    return this.#resume !== undefined;
  }

  /** Resolves when reading may go on (at once when it may now). */
  resumed(): Promise<void> {
    return this.#resume?.promise ?? Promise.resolve();
  }

  /**
   * Starts counting a queue.
   *
   * @param queue The queue.
   */
  add(queue: BudgetedQueue): void {
    this.#queues.add(queue);
  }

  /**
   * Stops counting a queue (it released all it held).
   *
   * @param queue The queue.
   */
  delete(queue: BudgetedQueue): void {
    this.#queues.delete(queue);
  }

  /**
   * A queue took bytes.
   *
   * @param bytes The bytes, or a view of a buffer.
   */
  hold(bytes: Uint8Array): void {
    this.holdShared(bytes.buffer, bytes.buffer.byteLength);
  }

  /**
   * A queue took something other queues may hold too: a buffer, or the text
   * of a run of events (for WebSockets).
   *
   * @param key What is shared.
   * @param bytes Its size.
   */
  holdShared(key: object, bytes: number): void {
    const refs = this.#refs.get(key);
    if (refs !== undefined) {
      this.#refs.set(key, refs + 1);
      return;
    }
    this.#refs.set(key, 1);
    this.#sizes.set(key, bytes);
    this.#grew(bytes);
  }

  /**
   * A queue let go of something it took with {@linkcode QueueBudget.holdShared}.
   *
   * @param key What was shared.
   */
  releaseShared(key: object): void {
    const refs = this.#refs.get(key);
    if (refs === undefined) return;
    if (refs > 1) {
      this.#refs.set(key, refs - 1);
      return;
    }
    this.#refs.delete(key);
    const bytes = this.#sizes.get(key) ?? 0;
    this.#sizes.delete(key);
    this.#shrank(bytes);
  }

  #grew(bytes: number): void {
    this.#bytes += bytes;
    if (this.#bytes > this.pauseAt && this.#resume === undefined) {
      this.#resume = Promise.withResolvers();
      this.#watchStuck();
    }
    if (this.#bytes > this.max && !this.#trimScheduled) {
      this.#trimScheduled = true;
      queueMicrotask(() => this.#trim());
    }
  }

  #shrank(bytes: number): void {
    this.#bytes -= bytes;
    if (this.#resume !== undefined && this.#bytes < this.resumeAt) {
      const resume = this.#resume;
      this.#resume = undefined;
      clearTimeout(this.#stuckTimer);
      this.#stuckTimer = undefined;
      resume.resolve();
    }
  }

  /**
   * A queue let go of bytes it took (written, or dropped).
   *
   * @param bytes The same bytes it took.
   */
  release(bytes: Uint8Array): void {
    this.releaseShared(bytes.buffer);
  }

  /**
   * While reading is stopped, readers that take nothing must not hold the
   * others back: each check disconnects the one of them holding most.
   */
  #watchStuck(): void {
    this.#stuckTimer = setTimeout(() => {
      this.#stuckTimer = undefined;
      if (this.#resume === undefined) return;
      const now = Date.now();
      let worst: BudgetedQueue | undefined;
      for (const queue of this.#queues) {
        if (queue.bytes > 0 && now - queue.progress >= STUCK_AFTER) {
          if (worst === undefined || queue.bytes > worst.bytes) worst = queue;
        }
      }
      if (worst !== undefined) {
        this.#queues.delete(worst);
        worst.overflow();
      }
      // Cutting it off may have let reading go on, or stopped it again (and started the checks).
      if (this.#resume !== undefined && this.#stuckTimer === undefined) this.#watchStuck();
    }, STUCK_CHECK_INTERVAL);
    // A server with nothing else to do may still exit.
    Deno.unrefTimer(this.#stuckTimer);
  }

  /** Stops the checks, for a server shutting down. */
  close(): void {
    clearTimeout(this.#stuckTimer);
    this.#stuckTimer = undefined;
    const resume = this.#resume;
    this.#resume = undefined;
    resume?.resolve();
  }

  /**
   * Over the budget: cut off readers until it fits, those that took nothing
   * for a while first, then those holding most.
   */
  #trim(): void {
    this.#trimScheduled = false;
    // Cutting a queue off frees what it alone holds once its write in flight ends, so each
    // pass cuts at most as many as it takes on paper.
    let excess = this.#bytes - this.max;
    if (excess <= 0) return;
    // Readers that took nothing for a while first, then those holding most.
    const now = Date.now();
    const stuck = (queue: BudgetedQueue) => now - queue.progress >= STUCK_AFTER ? 1 : 0;
    const queues = [...this.#queues].filter((queue) => queue.bytes > 0)
      .sort((a, b) => stuck(b) - stuck(a) || b.bytes - a.bytes);
    for (const queue of queues) {
      if (excess <= 0) break;
      excess -= queue.bytes;
      this.#queues.delete(queue);
      queue.overflow();
    }
  }
}
