/**
 * An ordered, byte-bounded write queue for one connection. Everything pushed
 * during one turn of the event loop goes out in a single write.
 *
 * @module
 */

/** Options for {@linkcode SendQueue}. */
export interface SendQueueOptions {
  /** Most bytes waiting or in flight before {@linkcode SendQueueOptions.onOverflow} runs. */
  maxBytes: number;
  /**
   * A queue over `maxBytes` overflows only once its peer has taken nothing for
   * this long (ms), or once it holds eight times `maxBytes`: a client that reads
   * slowly through a burst catches up; one that stopped reading is cut off.
   *
   * @default {5000}
   */
  stallTimeout?: number;
  /** Called once, from a microtask, when the queue passes `maxBytes`. */
  onOverflow?: () => void;
  /** Called once when a write fails; the queue is then dead. */
  onError?: (error: unknown) => void;
  /** How long {@linkcode SendQueue.close} waits for the queue to drain, in ms. */
  closeTimeout?: number;
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  const joined = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    joined.set(chunk, offset);
    offset += chunk.length;
  }
  return joined;
}

/**
 * Coalescing writer: {@linkcode SendQueue.push} never waits, the bytes are
 * written in order by one flush per event-loop turn, and partial writes are
 * finished before the next chunk starts.
 */
export class SendQueue {
  #conn: Deno.Conn;
  #options: SendQueueOptions;
  #chunks: Uint8Array[] = [];
  #pendingBytes = 0;
  #queuedBytes = 0;
  #scheduled = false;
  #writing = false;
  #closing = false;
  #closed = false;
  #overflowed = false;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  /** When a write last completed (`performance.now()`). */
  #progress = performance.now();
  #drained: PromiseWithResolvers<void> = Promise.withResolvers();

  /**
   * Creates a queue that writes to a connection.
   *
   * @param conn The connection to write to; the queue closes it.
   * @param options The byte limit and callbacks.
   */
  constructor(conn: Deno.Conn, options: SendQueueOptions) {
    this.#conn = conn;
    this.#options = options;
  }

  /** Whether the peer is over the limit for good: stuck for a while, or far over. */
  #stalled(): boolean {
    return this.#queuedBytes > 8 * this.#options.maxBytes ||
      performance.now() - this.#progress > (this.#options.stallTimeout ?? 5000);
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
    return this.#drained.promise;
  }

  /**
   * Queues bytes. They must not be modified afterwards; the same array may be
   * pushed to many queues.
   *
   * @param bytes The bytes to write.
   * @returns `false` when the queue is closing or over its limit.
   */
  push(bytes: Uint8Array): boolean {
    if (this.#closing || this.#overflowed) return false;
    // The clock for "taken nothing for a while" starts when there is something to take.
    if (this.#queuedBytes === 0) this.#progress = performance.now();
    this.#chunks.push(bytes);
    this.#pendingBytes += bytes.length;
    this.#queuedBytes += bytes.length;
    if (this.#queuedBytes > this.#options.maxBytes && this.#stalled()) {
      // Drop what has not started to go out, so memory stays bounded; the
      // write in flight finishes, so no frame is cut in half.
      this.#overflowed = true;
      this.#queuedBytes -= this.#pendingBytes;
      this.#chunks = [];
      this.#pendingBytes = 0;
      queueMicrotask(() => this.#options.onOverflow?.());
      return false;
    }
    if (!this.#scheduled && !this.#writing) {
      this.#scheduled = true;
      queueMicrotask(() => this.#flush());
    }
    return true;
  }

  async #flush(): Promise<void> {
    this.#scheduled = false;
    if (this.#writing || this.#closed) return;
    this.#writing = true;
    try {
      while (this.#chunks.length > 0 && !this.#closed) {
        const chunk = this.#chunks.length === 1
          ? this.#chunks[0]!
          : concat(this.#chunks, this.#pendingBytes);
        this.#chunks = [];
        this.#pendingBytes = 0;
        let offset = 0;
        while (offset < chunk.length) {
          offset += await this.#conn.write(chunk.subarray(offset));
        }
        this.#queuedBytes -= chunk.length;
        this.#progress = performance.now();
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
    if (this.#closing || this.#closed) return this.#drained.promise;
    this.#queuedBytes -= this.#pendingBytes;
    this.#chunks = [last];
    this.#pendingBytes = last.length;
    this.#queuedBytes += last.length;
    if (!this.#scheduled && !this.#writing) {
      this.#scheduled = true;
      queueMicrotask(() => this.#flush());
    }
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
      if (!this.#writing && !this.#scheduled && this.#chunks.length === 0) {
        this.destroy();
      } else {
        this.#closeTimer = setTimeout(() => this.destroy(), this.#options.closeTimeout ?? 2000);
      }
    }
    return this.#drained.promise;
  }

  /** Closes the connection at once, dropping whatever is queued. */
  destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing = true;
    clearTimeout(this.#closeTimer);
    this.#chunks = [];
    this.#pendingBytes = 0;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the other side of the runtime.
    }
    this.#drained.resolve();
  }
}
