/**
 * The event queue of a client: events wait in arrival order until read with
 * `next()` or async iteration, and waiters take their turn in call order.
 *
 * @module
 */

import { ConnectionError } from "../protocol/errors.ts";
import { abortable } from "./requests.ts";
import type { ChatEvent, ChatEventType, NextOptions } from "./types.ts";

interface Waiter {
  type: ChatEventType | undefined;
  resolve: (event: ChatEvent) => void;
  reject: (error: Error) => void;
}

function describe(type: ChatEventType | undefined): string {
  return type === undefined ? "an event" : `a "${type}" event`;
}

/** Events waiting to be read, and those waiting to read them. */
export class EventQueue {
  #events: ChatEvent[] = [];
  #waiters: Waiter[] = [];
  #ended = false;

  /** Adds an event at the end. */
  push(event: ChatEvent): void {
    this.#events.push(event);
    this.#serve();
  }

  /** No more events come: waiters beyond the queued events fail with `closed`. */
  end(): void {
    this.#ended = true;
    this.#serve();
  }

  /** Waits for the next event of a type, consuming the events before it. */
  next<T extends ChatEventType>(
    type: T | undefined,
    options: NextOptions,
  ): Promise<Extract<ChatEvent, { type: T }>> {
    const { promise, resolve, reject } = Promise.withResolvers<ChatEvent>();
    const waiter: Waiter = { type, resolve, reject };
    let timer: ReturnType<typeof setTimeout> | undefined;
    const drop = () => {
      clearTimeout(timer);
      const index = this.#waiters.indexOf(waiter);
      if (index !== -1) this.#waiters.splice(index, 1);
      if (index === 0) this.#serve();
    };
    if (options.timeout !== undefined) {
      timer = setTimeout(() => {
        drop();
        reject(
          new ConnectionError(
            "timeout",
            `Timed out after ${options.timeout} ms waiting for ${describe(type)}`,
          ),
        );
      }, options.timeout);
    }
    this.#waiters.push(waiter);
    this.#serve();
    const result = abortable(promise, options.signal, drop);
    return result.finally(() => clearTimeout(timer)) as Promise<Extract<ChatEvent, { type: T }>>;
  }

  #serve(): void {
    while (true) {
      const waiter = this.#waiters[0];
      const event = waiter === undefined ? undefined : this.#events.shift();
      if (waiter === undefined || event === undefined) break;
      if (waiter.type === undefined || waiter.type === event.type) {
        this.#waiters.shift();
        waiter.resolve(event);
      }
    }
    if (this.#ended && this.#events.length === 0) {
      for (const waiter of this.#waiters.splice(0)) {
        waiter.reject(
          new ConnectionError(
            "closed",
            `Connection closed while waiting for ${describe(waiter.type)}`,
          ),
        );
      }
    }
  }
}
