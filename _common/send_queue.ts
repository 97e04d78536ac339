/**
 * An ordered, byte-bounded write queue for one connection. Everything pushed
 * during one turn of the event loop goes out at once: small pieces joined
 * into one write, large ones (views of a run of events shared by many
 * readers) written as they are, without a copy.
 *
 * @module
 */

import type { BudgetedQueue, QueueBudget } from "./queue_budget.ts";

export { QueueBudget } from "./queue_budget.ts";

/** Options for {@linkcode SendQueue}. */
export interface SendQueueOptions {
  /** Most bytes waiting or in flight before {@linkcode SendQueueOptions.onOverflow} runs. */
  maxBytes: number;
  /**
   * A queue over `maxBytes` overflows only once its peer has taken nothing for
   * this long (ms), or once it holds four times `maxBytes`: a client that
   * reads slowly through a burst catches up; one that stopped reading is cut
   * off.
   *
   * @default {5000}
   */
  stallTimeout?: number;
  /** The server-wide budget this queue counts against, if any. */
  budget?: QueueBudget;
  /** Called once, from a microtask, when the queue overflows. */
  onOverflow?: () => void;
  /** Called once when a write fails; the queue is then dead. */
  onError?: (error: unknown) => void;
  /** How long {@linkcode SendQueue.close} waits for the queue to drain, in ms. */
  closeTimeout?: number;
}

/** Pieces up to this size are joined with their neighbours into one write. */
const JOIN_BELOW = 16 * 1024;
/** The most bytes joined into one write. */
const JOIN_MAX = 64 * 1024;

/** How far past `maxBytes` a queue may grow while its peer still reads. */
const BEHIND_FACTOR = 4;

/** Buffers for joining pieces, kept between writes rather than left to the collector. */
const spare: Uint8Array[] = [];
/** The most spare buffers kept. */
const SPARE_MAX = 32;
/** Spare-sized buffers out in writes now. */
let lent = 0;

/**
 * Gives back a buffer {@linkcode nextWrite} joined pieces into, once written
 * (or once its write failed).
 */
function giveBack(bytes: Uint8Array, pieces: number): void {
  if (pieces <= 1 || bytes.buffer.byteLength !== JOIN_MAX) return;
  lent--;
  if (spare.length < SPARE_MAX) spare.push(new Uint8Array(bytes.buffer));
}

/**
 * A buffer to join `total` bytes into: a spare one; a new spare-sized one
 * while few are out; else, with many writes in flight (a crowd, slow
 * readers), one of the join's own size rather than 64 KiB that a reader
 * would hold until it takes its bytes.
 */
function joinBuffer(total: number): Uint8Array {
  const buffer = spare.pop() ??
    (lent < SPARE_MAX || total >= JOIN_MAX / 4 ? new Uint8Array(JOIN_MAX) : undefined);
  if (buffer === undefined) return new Uint8Array(total);
  lent++;
  return buffer.subarray(0, total);
}

/** Pieces waiting: `bases[i].subarray(from[i], to[i])` for each `i`. */
interface Pieces {
  bases: Uint8Array[];
  from: number[];
  to: number[];
}

function emptyPieces(): Pieces {
  return { bases: [], from: [], to: [] };
}

/** No pieces: what an idle queue holds, shared, so it costs nothing per connection. */
const NO_PIECES: Pieces = Object.freeze({
  bases: Object.freeze([]) as unknown as Uint8Array[],
  from: Object.freeze([]) as unknown as number[],
  to: Object.freeze([]) as unknown as number[],
});

/**
 * The next write from piece `start` on: one large piece as it is, or small
 * neighbours joined into one copy.
 */
function nextWrite(pieces: Pieces, start: number): { bytes: Uint8Array; end: number } {
  const { bases, from, to } = pieces;
  const size = (i: number) => to[i]! - from[i]!;
  const first = bases[start]!.subarray(from[start]!, to[start]!);
  if (first.length >= JOIN_BELOW) return { bytes: first, end: start + 1 };
  let end = start + 1;
  let total = first.length;
  while (end < bases.length) {
    const next = size(end);
    if (next >= JOIN_BELOW || total + next > JOIN_MAX) break;
    total += next;
    end++;
  }
  if (end === start + 1) return { bytes: first, end };
  const joined = joinBuffer(total);
  let offset = 0;
  for (let i = start; i < end; i++) {
    joined.set(bases[i]!.subarray(from[i]!, to[i]!), offset);
    offset += size(i);
  }
  return { bytes: joined, end };
}

/**
 * Coalescing writer: {@linkcode SendQueue.push} never waits, the bytes are
 * written in order by one flush per event-loop turn, and partial writes are
 * finished before the next chunk starts.
 */
export class SendQueue implements BudgetedQueue {
  #conn: Deno.Conn;
  #options: SendQueueOptions;
  #budget: QueueBudget | undefined;
  #chunks: Pieces = NO_PIECES;
  /** Pieces being written now, taken from the queue; those from `#inflightFrom` on are held. */
  #inflight: Pieces = NO_PIECES;
  #inflightFrom = 0;
  #pendingBytes = 0;
  #queuedBytes = 0;
  #scheduled = false;
  #writing = false;
  #closing = false;
  #closed = false;
  #overflowed = false;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  /** When a write last completed (`Date.now()`: cheaper than `performance.now()` here). */
  #progress = Date.now();
  /** Made when first asked for: most connections never are until they close. */
  #drained: PromiseWithResolvers<void> | undefined;

  /**
   * Creates a queue that writes to a connection.
   *
   * @param conn The connection to write to; the queue closes it.
   * @param options The byte limit, the budget and callbacks.
   */
  constructor(conn: Deno.Conn, options: SendQueueOptions) {
    this.#conn = conn;
    this.#options = options;
    this.#budget = options.budget;
    this.#budget?.add(this);
  }

  /** Whether the peer is over the limit for good: stuck for a while, or far over. */
  #stalled(): boolean {
    return this.#queuedBytes > BEHIND_FACTOR * this.#options.maxBytes ||
      Date.now() - this.#progress > (this.#options.stallTimeout ?? 5000);
  }

  /** When the peer last took bytes, or when the queue last became non-empty. */
  get progress(): number {
    return this.#progress;
  }

  /** Bytes waiting to be written, including the write in flight. */
  get bytes(): number {
    return this.#queuedBytes;
  }

  /** Whether the connection is closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Resolves when the queue has closed the connection. */
  get done(): Promise<void> {
    if (this.#drained === undefined) {
      this.#drained = Promise.withResolvers();
      if (this.#closed) this.#drained.resolve();
    }
    return this.#drained.promise;
  }

  /**
   * Queues bytes. They must not be modified afterwards; the same bytes (or
   * views of one buffer) may be pushed to many queues.
   *
   * @param bytes The bytes to write.
   * @returns `false` when the queue is closing or over its limit.
   */
  push(bytes: Uint8Array): boolean {
    return this.pushView(bytes, 0, bytes.length);
  }

  /**
   * Queues `base.subarray(from, to)` without making that view: a stretch
   * that starts where the last one queued ends, in the same buffer, just
   * lengthens it. The bytes must not be modified afterwards.
   *
   * @param base The buffer.
   * @param from Where the bytes start in it.
   * @param to Where they end.
   * @returns `false` when the queue is closing or over its limit.
   */
  pushView(base: Uint8Array, from: number, to: number): boolean {
    if (this.#closing || this.#overflowed) return false;
    const length = to - from;
    if (length <= 0) return true;
    // The clock for "taken nothing for a while" starts when there is something to take.
    if (this.#queuedBytes === 0) this.#progress = Date.now();
    if (this.#chunks === NO_PIECES) this.#chunks = emptyPieces();
    const chunks = this.#chunks;
    const last = chunks.bases.length - 1;
    if (last >= 0 && chunks.bases[last] === base && chunks.to[last] === from) {
      chunks.to[last] = to;
    } else {
      chunks.bases.push(base);
      chunks.from.push(from);
      chunks.to.push(to);
      this.#budget?.hold(base);
    }
    this.#pendingBytes += length;
    this.#queuedBytes += length;
    if (this.#queuedBytes > this.#options.maxBytes && this.#stalled()) {
      this.overflow();
      return false;
    }
    this.#schedule();
    return true;
  }

  #schedule(): void {
    if (!this.#scheduled && !this.#writing) {
      this.#scheduled = true;
      queueMicrotask(() => this.#flush());
    }
  }

  /**
   * Gives up on the peer: drops what has not started to go out (the write in
   * flight finishes, so no frame is cut in half) and calls `onOverflow`.
   */
  overflow(): void {
    if (this.#overflowed || this.#closing) return;
    this.#overflowed = true;
    this.#drop();
    queueMicrotask(() => this.#options.onOverflow?.());
  }

  /** Drops the chunks that have not started to go out. */
  #drop(): void {
    const budget = this.#budget;
    if (budget !== undefined) { for (const base of this.#chunks.bases) budget.release(base); }
    this.#queuedBytes -= this.#pendingBytes;
    this.#chunks = NO_PIECES;
    this.#pendingBytes = 0;
  }

  async #flush(): Promise<void> {
    this.#scheduled = false;
    if (this.#writing || this.#closed) return;
    this.#writing = true;
    try {
      while (this.#chunks.bases.length > 0 && !this.#closed) {
        const chunks = this.#chunks;
        this.#chunks = NO_PIECES;
        this.#inflight = chunks;
        this.#pendingBytes = 0;
        this.#inflightFrom = 0;
        for (let start = 0; start < chunks.bases.length;) {
          const { bytes, end } = nextWrite(chunks, start);
          let offset = 0;
          try {
            while (offset < bytes.length) {
              offset += await this.#conn.write(bytes.subarray(offset));
            }
          } finally {
            giveBack(bytes, end - start);
          }
          // Closed meanwhile: the close let go of everything in flight.
          if (this.#closed) return;
          this.#queuedBytes -= bytes.length;
          this.#progress = Date.now();
          const budget = this.#budget;
          if (budget !== undefined) {
            for (let i = start; i < end; i++) budget.release(chunks.bases[i]!);
          }
          start = this.#inflightFrom = end;
        }
        this.#inflight = NO_PIECES;
      }
    } catch (error) {
      if (!this.#closed) {
        this.destroy();
        this.#options.onError?.(error);
      }
      return;
    } finally {
      this.#writing = false;
    }
    if (this.#closing) this.destroy();
  }

  /**
   * Drops whatever has not started to be written, queues `last` (a goodbye)
   * past the byte limit, and closes once it is out.
   *
   * @param last The final bytes.
   * @returns A promise that resolves once the connection is closed.
   */
  finish(last: Uint8Array): Promise<void> {
    if (this.#closing || this.#closed) return this.done;
    this.#drop();
    this.#chunks = { bases: [last], from: [0], to: [last.length] };
    this.#budget?.hold(last);
    this.#pendingBytes = last.length;
    this.#queuedBytes += last.length;
    this.#schedule();
    return this.close();
  }

  /**
   * Writes what is queued, then closes the connection. Gives up and closes
   * anyway after `closeTimeout` ms (default 2000) if the peer does not read.
   *
   * @returns A promise that resolves once the connection is closed.
   */
  close(): Promise<void> {
    if (!this.#closing && !this.#closed) {
      this.#closing = true;
      if (!this.#writing && !this.#scheduled && this.#chunks.bases.length === 0) {
        this.destroy();
      } else {
        this.#closeTimer = setTimeout(() => this.destroy(), this.#options.closeTimeout ?? 2000);
      }
    }
    return this.done;
  }

  /** Closes the connection at once, dropping whatever is queued. */
  destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing = true;
    clearTimeout(this.#closeTimer);
    const budget = this.#budget;
    if (budget !== undefined) {
      // The write in flight (if any) never reports back once the connection is closed.
      const { bases } = this.#inflight;
      for (let i = this.#inflightFrom; i < bases.length; i++) budget.release(bases[i]!);
      for (const base of this.#chunks.bases) budget.release(base);
      budget.delete(this);
    }
    this.#inflight = NO_PIECES;
    this.#chunks = NO_PIECES;
    this.#pendingBytes = 0;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the other side of the runtime.
    }
    this.#drained?.resolve();
  }
}
