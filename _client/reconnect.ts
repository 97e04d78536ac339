/**
 * Reconnecting after a lost connection: backoff with jitter, a new link and
 * handshake (resuming the session), then the resync: rooms entered again,
 * unanswered requests re-sent, and the messages missed meanwhile fetched and
 * delivered in order before the live ones.
 *
 * @module
 */

import { type ErrorCode, ProtocolError, retryAfter } from "../protocol/errors.ts";
import { delay } from "../_common/delay.ts";
import type { MessageEvent, WelcomeFrame } from "../protocol/frames.ts";
import type { Dialed, Endpoint } from "./link.ts";
import { Link } from "./link.ts";
import type { Requests } from "./requests.ts";
import type { ChatEvent, ConnectOptions, ReconnectedEvent, ReconnectOptions } from "./types.ts";

/**
 * How long a connection must have lived after its welcome, in ms, before a
 * break counts as new and the reconnect backoff starts again from its first
 * delay. A server that welcomes and drops at once keeps the backoff growing.
 */
const STABLE_CONNECTION_MS = 10_000;
const CATCH_UP_PAGE = 200;
const MAX_CATCH_UP = 1000;
/** Errors after which reconnecting cannot help: the next attempt would fail the same way. */
const FINAL_CODES: readonly ErrorCode[] = [
  "name_taken",
  "invalid_name",
  "name_claimed",
  "banned",
  "unauthorized",
  "auth_failed",
  "certificate_changed",
];

/** What reconnecting needs from the client. */
export interface ReconnectHost {
  readonly options: ConnectOptions;
  readonly endpoint: Endpoint;
  /** Dials the chat, from the next address with `next`. */
  dial(signal: AbortSignal, timeout: AbortSignal, next?: boolean): Promise<Dialed>;
  readonly requests: Requests;
  /** The last sequence number seen in each joined room. */
  readonly seen: Map<string, number>;
  /** Rooms catching up: live messages wait here until the gap is filled. */
  readonly catchingUp: Map<string, MessageEvent[]>;
  /** The current link. */
  readonly link: Link | undefined;
  /** The client's name. */
  readonly name: string;
  /** The away message, `""` when here. */
  readonly away: string;
  hello(link: Link, signal: AbortSignal, history: number | undefined): Promise<WelcomeFrame>;
  resumed(link: Link, welcome: WelcomeFrame): void;
  push(event: ChatEvent): void;
  message(message: MessageEvent): void;
  saw(room: string, seq: number): void;
  caughtUp(room: string): void;
  lost(link: Link, reason: string): void;
  end(): void;
}

/** Reconnects a client, one attempt loop at a time. */
export class Reconnector {
  readonly #host: ReconnectHost;
  #stop = new AbortController();
  #done: Promise<void> = Promise.resolve();
  #active = false;
  /** The last attempt, carried over when a connection did not live long. */
  #attempt = 0;

  constructor(host: ReconnectHost) {
    this.#host = host;
  }

  /** Whether a reconnect is under way. */
  get active(): boolean {
    return this.#active;
  }

  /** Aborts when reconnecting stops for good. */
  get signal(): AbortSignal {
    return this.#stop.signal;
  }

  /** Starts reconnecting after `link` broke. */
  start(link: Link, reason: string, options: ReconnectOptions): void {
    this.#active = true;
    // A connection that did not live long does not earn a fresh backoff: a server
    // that welcomes and drops must not get a reconnect storm.
    const lived = link.welcomedAt === undefined ? 0 : performance.now() - link.welcomedAt;
    const first = lived >= STABLE_CONNECTION_MS ? 1 : this.#attempt + 1;
    this.#done = this.#reconnect(reason, options, first).finally(() => {
      this.#active = false;
      // The new connection may have closed while catching up, unnoticed: notice it now.
      const current = this.#host.link;
      if (current !== undefined && current !== link && current.closed) {
        this.#host.lost(current, "the server closed the connection");
      }
    });
  }

  /** Stops reconnecting; resolves once the attempt under way has ended. */
  stop(): Promise<void> {
    this.#stop.abort();
    return this.#done.catch(() => {});
  }

  async #reconnect(reason: string, options: ReconnectOptions, first: number): Promise<void> {
    const host = this.#host;
    const minDelay = options.minDelay ?? 250;
    const maxDelay = options.maxDelay ?? 10_000;
    const maxAttempts = options.maxAttempts ?? Infinity;
    const stop = this.#stop.signal;
    for (let attempt = first; attempt <= maxAttempts && !stop.aborted; attempt++) {
      this.#attempt = attempt;
      // Exponential backoff with "equal jitter": between half the ceiling and the ceiling.
      const ceiling = Math.min(maxDelay, minDelay * 2 ** (attempt - 1));
      const delay = Math.round(ceiling / 2 + Math.random() * ceiling / 2);
      host.push({ type: "reconnecting", attempt, delay, reason });
      const slept = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(true), delay);
        stop.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve(false);
        }, { once: true });
      });
      if (!slept) break;
      const timeout = AbortSignal.timeout(host.options.timeout ?? 10_000);
      const signal = AbortSignal.any([stop, timeout]);
      let link: Link | undefined;
      // Live messages on the new connection wait until the gap before them is filled.
      for (const room of host.seen.keys()) host.catchingUp.set(room, []);
      try {
        // Another address of the chat first: the one that broke may be down.
        link = new Link(await host.dial(signal, timeout, true));
        const welcome = await host.hello(link, signal, 0);
        await this.#resync(link, welcome, options.maxCatchUp ?? MAX_CATCH_UP);
        return;
      } catch (error) {
        link?.destroy();
        await link?.reading;
        if (error instanceof ProtocolError && FINAL_CODES.includes(error.code)) {
          host.push({
            type: "error",
            code: error.code,
            message: error.code === "certificate_changed"
              ? `Not reconnecting: the server's certificate no longer matches. ${error.message}. ` +
                "Someone may be intercepting the connection; if the server really has a new " +
                "certificate, check its fingerprint with its operator before trusting it"
              : `Cannot reconnect: ${error.message}`,
          });
          break;
        }
        reason = error instanceof Error ? error.message : String(error);
      }
    }
    host.end();
  }

  /**
   * A request of the resync, sent again after the wait the server asks for
   * when it says to slow down (rejoining many rooms at once overdraws the
   * request burst: a join costs five).
   */
  async #paced(
    link: Link,
    frame: Parameters<Requests["direct"]>[1],
    stop: AbortSignal,
  ): Promise<Awaited<ReturnType<Requests["direct"]>>> {
    while (true) {
      try {
        return await this.#host.requests.direct(link, frame, stop);
      } catch (error) {
        const wait = error instanceof ProtocolError ? retryAfter(error) : undefined;
        if (wait === undefined) throw error;
        await delay(wait, stop);
      }
    }
  }

  /** After a reconnect: rejoin rooms, re-send what was not acknowledged, fetch what was missed. */
  async #resync(link: Link, welcome: WelcomeFrame, maxCatchUp: number): Promise<void> {
    const host = this.#host;
    const stop = this.#stop.signal;
    const before = new Map(host.seen);
    const tops = new Map(welcome.rooms.map((room) => [room.name, room.seq]));
    for (const room of welcome.rooms) {
      if (!before.has(room.name)) host.seen.set(room.name, room.seq);
    }
    host.resumed(link, welcome);
    // A new session is only in #lobby: enter the other rooms again first.
    for (const room of before.keys()) {
      if (tops.has(room)) continue;
      const ack = await this.#paced(link, { type: "join", room, history: 0 }, stop);
      tops.set(room, ack.seq ?? 0);
    }
    // A new session starts present: say again that the user is away.
    if (!welcome.resumed && host.away !== "") {
      await this.#paced(link, { type: "away", message: host.away }, stop);
    }
    // Requests that were never answered go out again, in order; keys make sends safe to repeat.
    host.requests.resend(link);
    let missed = 0;
    const skipped: Record<string, number> = {};
    const gaps: MessageEvent[][] = [];
    for (const [room, last] of before) {
      const top = tops.get(room) ?? 0;
      if (top < last) {
        // The server forgot this room's history (it kept it in memory and restarted):
        // numbering starts again, so follow it.
        host.seen.set(room, top);
        continue;
      }
      const gap: MessageEvent[] = [];
      // Only the latest messages: a huge gap is left for "history", page by page.
      let cursor = Math.max(last, top - Math.max(0, maxCatchUp));
      if (cursor > last) skipped[room] = cursor - last;
      while (cursor < top) {
        const ack = await this.#paced(link, {
          type: "history",
          room,
          after: cursor,
          limit: CATCH_UP_PAGE,
        }, stop);
        const page = ack.messages ?? [];
        if (page.length === 0) break;
        const before = cursor;
        for (const message of page) {
          if (message.seq > top || message.seq <= cursor) break;
          cursor = message.seq;
          delete message.history;
          if (message.from !== host.name) gap.push(message);
        }
        // A page that does not move forward would loop for ever.
        if (cursor === before || cursor >= top || gap.length > maxCatchUp) break;
        // Let the rest of the program (keys, screen) run between pages.
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
      host.saw(room, top);
      missed += gap.length;
      gaps.push(gap);
    }
    const reconnected: ReconnectedEvent = { type: "reconnected", resumed: welcome.resumed, missed };
    if (Object.keys(skipped).length > 0) reconnected.skipped = skipped;
    host.push(reconnected);
    for (const gap of gaps) for (const message of gap) host.push(message);
    for (const [room, waiting] of host.catchingUp) {
      host.catchingUp.delete(room);
      for (const message of waiting) host.message(message);
      host.caughtUp(room);
    }
  }
}
