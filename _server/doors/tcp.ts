/**
 * The TCP door: one accepted socket. It reads bytes, tells JSON clients from
 * plain-text (`nc`) users by their first byte, frames lines, meters them
 * (the line budget), and writes what the core sends back through the
 * connection's send queue. What the lines mean is the dialect's business
 * ({@linkcode JsonDialect}, {@linkcode TextDialect}); the chat itself is the
 * core's.
 *
 * @module
 */

import type { LeaveReason, RequestId } from "../../protocol/frames.ts";
import type { Limits } from "../../protocol/limits.ts";
import { type QueueBudget, SendQueue, type SendQueueOptions } from "../../_common/send_queue.ts";
import type { Core, Origin, Outbound, OutboundRun, Peer, Session } from "../core.ts";
import { LineBudget } from "../line_budget.ts";
import type { Dialect, DialectHost } from "./dialect.ts";
import { jsonBye, JsonDialect, jsonRefusals } from "./json.ts";
import { Refusals } from "./refusals.ts";
import { textBye, TextDialect } from "./text.ts";

/** Bytes read and waiting for the line budget that count as a flood (PROTOCOL.md section 13.4). */
const FLOOD_BACKLOG_BYTES = 8 * 1024;

/** An idle connection reads into a small buffer... */
const SMALL_READ_BYTES = 256;
/**
 * ...and a busy one (a read filled the buffer) into a large one, until it is quiet again. A
 * flood is told by `FLOOD_BACKLOG_BYTES` waiting in it while lines trickle out, so it must be
 * well over that: twice.
 */
const LARGE_READ_BYTES = 16 * 1024;
const OPEN_BRACE = 0x7b;
const LF = 0x0a;
const BYE_QUEUE_MESSAGE = "Disconnected: too many messages waiting for you to read them";

/** How long the server waits for a first byte before greeting a plain-text user, in ms. */
export const GREETING_DELAY = 300;

function isSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d;
}

/** Where the first `count` lines of `chunk` end (after their newline), or its length. */
function afterLines(chunk: Uint8Array, count: number): number {
  let end = 0;
  for (let line = 0; line < count; line++) {
    const newline = chunk.indexOf(LF, end);
    if (newline === -1) return chunk.length;
    end = newline + 1;
  }
  return end;
}

/**
 * What a TCP door needs to know about the server: besides the greeting and
 * the password, what a key proof must name (the ports, and on TLS the
 * certificate's fingerprint and names), as the core's `Origin` has it.
 */
export interface TcpDoorOptions extends Pick<Origin, "ports" | "fingerprint" | "names"> {
  /** The first line a plain-text user sees. */
  greeting: string;
  /** Whether the server asks for a password. */
  password: boolean;
  /** The server-wide budget for bytes waiting to be written. */
  budget?: QueueBudget;
  /**
   * The dialect the port speaks from the first byte (the IRC port), instead
   * of telling JSON from plain text.
   */
  dialect?: (host: DialectHost) => Dialect;
  /** Called when a connection has ended, after the core was told. */
  onEnd?: (door: TcpDoor) => void;
}

/** A connection, speaking JSON frames or, for `nc` users, plain text. */
export class TcpDoor implements Peer, DialectHost, SendQueueOptions {
  readonly core: Core;
  readonly limits: Limits;
  #conn: Deno.Conn;
  #queue: SendQueue;
  #session: Session;
  #dialect: Dialect | undefined;
  #greetingTimer: ReturnType<typeof setTimeout> | undefined;
  #opened = performance.now();
  #lastInput = performance.now();
  #pinged = false;
  #options: TcpDoorOptions;
  /** Set when the socket became a file-transfer data connection. */
  #handedOff = false;
  /** Resolves when the transfer has closed the data connection. */
  #transfer: Promise<void> | undefined;
  /** Lines this connection may still send before it has to wait. */
  #budget: LineBudget;
  /** Refusals held back while the connection is over its budget: made when first over it. */
  #refusals: Refusals | undefined;
  /** The peer's IP address. */
  readonly ip: string;

  /**
   * Wraps an accepted connection.
   *
   * @param conn The socket.
   * @param core The core to feed.
   * @param limits The limits to enforce.
   * @param options The greeting, whether the server asks for a password, and
   * what a key proof must name.
   */
  constructor(conn: Deno.Conn, core: Core, limits: Limits, options: TcpDoorOptions) {
    this.#options = options;
    this.#conn = conn;
    this.core = core;
    this.limits = limits;
    // Lines are read no faster than requests are accepted, so a client that sends as fast as the
    // socket takes is slowed down, not refused.
    this.#budget = new LineBudget({
      rate: limits.rateLimit,
      burst: limits.rateBurst,
      floodTimeout: limits.floodTimeout,
      floodBacklog: FLOOD_BACKLOG_BYTES,
    }, performance.now());
    const addr = conn.remoteAddr as Deno.NetAddr;
    this.ip = addr.hostname;
    this.#session = core.open(this, {
      remote: `${addr.hostname}:${addr.port}`,
      ip: addr.hostname,
      ports: options.ports,
      fingerprint: options.fingerprint,
      names: options.names,
    });
    // The door is its queue's options: no object and closure of their own per connection.
    this.#queue = new SendQueue(conn, this);
    this.#dialect = options.dialect?.(this);
  }

  /** Most bytes waiting for this peer ({@linkcode SendQueueOptions.maxBytes}). */
  get maxBytes(): number {
    return this.limits.maxSendQueueBytes;
  }

  /** The server-wide budget this connection's queue counts against. */
  get budget(): QueueBudget | undefined {
    return this.#options.budget;
  }

  /** The peer fell too far behind: say why and close. */
  onOverflow(): void {
    this.core.disconnect(this.#session, this, "send_queue_exceeded");
    this.#queue.finish(this.#bye("send_queue_exceeded", BYE_QUEUE_MESSAGE));
  }

  /** The session this connection carries. */
  get session(): Session {
    return this.#session;
  }

  /** Whether the connection is over its line budget. */
  get over(): boolean {
    return this.#budget.over;
  }

  /** Queues a frame in this connection's format. */
  deliver(out: Outbound): void {
    if (
      out.frame.type === "error" &&
      (out.frame.code === "rate_limited" || out.frame.id === undefined) &&
      this.#held(out.frame.id)
    ) return;
    const bytes = this.#dialect === undefined ? out.json : this.#dialect.render(out, this.#session);
    if (bytes !== null) this.#queue.push(bytes);
  }

  /** Queues a stretch of a run of events as one view of its bytes. */
  deliverRun(run: OutboundRun, start: number, end: number): void {
    if (this.#dialect === undefined) run.json(start, end, this.#queue);
    else this.#dialect.renderRun(run, start, end, this.#session, this.#queue);
  }

  /** Whether this connection speaks JSON and so can take part in file transfers. */
  get files(): boolean {
    return this.#dialect?.files ?? false;
  }

  /** Carries a resumed session from now on. */
  adopt(session: Session): void {
    this.#session = session;
  }

  /** Sends what is queued, then closes. */
  close(): void {
    this.#refusals?.flush();
    this.#queue.close();
  }

  /** Closes at once. */
  destroy(): void {
    this.#queue.destroy();
  }

  /** Resolves once the socket is closed. */
  get done(): Promise<void> {
    return this.#transfer ?? this.#queue.done;
  }

  /**
   * Queues bytes the dialect made itself (prompts, notices).
   *
   * @param bytes The bytes.
   */
  write(bytes: Uint8Array): void {
    this.#queue.push(bytes);
  }

  /**
   * Tells a refusal, unless refusals are held back.
   *
   * @param bytes The refusal in the connection's format.
   */
  refuse(bytes: Uint8Array): void {
    if (!this.#held()) this.#queue.push(bytes);
  }

  /** Whether a refusal is held back (see {@linkcode Refusals.hold}). */
  #held(id?: RequestId): boolean {
    if (!this.#budget.over) return false;
    this.#refusals ??= new Refusals(
      () => this.#budget.over,
      (message, ids) =>
        this.#queue.push(this.#dialect?.refusals(message, ids) ?? jsonRefusals(message, ids)),
    );
    return this.#refusals.hold(id);
  }

  /**
   * Hands the socket over to a file transfer, which closes it.
   *
   * @param token The token the connection presented.
   * @returns A promise that resolves once the transfer has closed the socket,
   * or `undefined` when the token opened nothing.
   */
  handOff(token: string): Promise<void> | undefined {
    const transfer = this.core.attachData(this.#conn, token);
    if (transfer === undefined) return undefined;
    this.#handedOff = true;
    this.#transfer = transfer;
    return transfer;
  }

  /**
   * Reads until the peer leaves or the connection breaks, then tells the core.
   *
   * @returns A promise that resolves when the connection is finished.
   */
  async run(): Promise<void> {
    // This function stays suspended in a read for as long as the connection is idle: it is kept
    // small, as its frame is kept per connection; the work on what was read is `#input`'s.
    if (this.#dialect === undefined) this.#awaitGreeting();
    const small = new Uint8Array(SMALL_READ_BYTES);
    let buffer = small;
    try {
      while (!this.#queue.closed) {
        // Too much waits to be written, server-wide: read no more requests until it has gone out.
        if (this.#options.budget?.paused && await this.#budgetResumed()) break;
        const read = await this.#conn.read(buffer);
        if (read === null) break;
        if (await this.#input(buffer.subarray(0, read))) return;
        // Grow for a burst; shrink when reads are small again, so idle connections stay cheap.
        buffer = read === buffer.length
          ? (buffer === small ? new Uint8Array(LARGE_READ_BYTES) : buffer)
          : read < SMALL_READ_BYTES
          ? small
          : buffer;
      }
    } catch {
      // A read error is a lost connection, like EOF without "quit".
    } finally {
      clearTimeout(this.#greetingTimer);
      this.#refusals?.stop();
      this.core.disconnect(this.#session, this, "lost");
      // A data connection now belongs to its transfer, which closes it.
      if (!this.#handedOff) this.#queue.destroy();
      this.#options.onEnd?.(this);
    }
  }

  /** A plain-text user who says nothing is greeted after a moment. */
  #awaitGreeting(): void {
    this.#greetingTimer = setTimeout(() => {
      this.#greetingTimer = undefined;
      if (this.#dialect === undefined) this.#startText(true);
    }, GREETING_DELAY);
  }

  /** Waits until the budget lets requests in again; `true` if the connection closed meanwhile. */
  async #budgetResumed(): Promise<boolean> {
    await Promise.race([this.#options.budget!.resumed(), this.#queue.done]);
    return this.#queue.closed;
  }

  /**
   * Handles what one read brought.
   *
   * @returns `true` when the connection stops being read (closed, flooded, or handed over to a
   * file transfer).
   */
  async #input(chunk: Uint8Array): Promise<boolean> {
    this.#lastInput = performance.now();
    this.#pinged = false;
    let dialect = this.#dialect;
    if (dialect === undefined) {
      const first = chunk.findIndex((byte) => !isSpace(byte));
      if (first === -1) return false;
      chunk = chunk.subarray(first);
      dialect = chunk[0] === OPEN_BRACE ? this.#startJson() : this.#startText(false);
    }
    // Every line takes from the budget, whatever it holds. Lines over it wait, and the
    // socket is not read meanwhile, so the sender's kernel holds the rest.
    let waited = false;
    while (chunk.length > 0) {
      const allowed = this.#budget.allowance(performance.now(), waited);
      if (allowed === 0) {
        const delay = this.#budget.wait(performance.now(), chunk.length);
        if (delay === undefined) {
          this.#flood();
          await this.#queue.done;
          return true;
        }
        waited = true;
        await this.#pause(delay);
        if (this.#queue.closed) return true;
        continue;
      }
      if (!waited) this.#refusals?.flush();
      const end = afterLines(chunk, allowed);
      const lines = dialect.decoder.push(chunk.subarray(0, end));
      chunk = chunk.subarray(end);
      this.#budget.take(lines.length);
      for (const line of lines) {
        try {
          // A request may wait (a key proof, storage); the lines after it wait too.
          const pending = dialect.line(line);
          if (pending !== undefined) await pending;
          if (this.#handedOff) return true;
        } catch (error) {
          // A bug must not pass for a lost connection: log it, answer, go on.
          this.core.fault(this.#session, error);
        }
      }
    }
    // What this read sent is delivered before more is read, so the queues' budget sees it.
    const settling = this.core.settled();
    if (settling !== undefined) await settling;
    return false;
  }

  /** Waits for the budget, or until the connection closes. */
  async #pause(ms: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      new Promise((resolve) => timer = setTimeout(resolve, ms)),
      this.#queue.done,
    ]);
    clearTimeout(timer);
  }

  /** A goodbye in the connection's format (JSON until it is known). */
  #bye(reason: LeaveReason | "timeout", message: string): Uint8Array {
    return this.#dialect?.bye(reason, message) ?? jsonBye(reason, message);
  }

  /** Too many lines for too long: say why and close. */
  #flood(): void {
    const message =
      `Disconnected: you kept sending lines faster than ${this.limits.rateLimit} a second, without waiting for the answers, for ${
        this.limits.floodTimeout / 1000
      } s`;
    this.core.disconnect(this.#session, this, "flood");
    this.#queue.finish(this.#bye("flood", message));
  }

  /**
   * Enforces the time limits; the server calls this every few seconds.
   *
   * @param now `performance.now()`.
   */
  sweep(now: number): void {
    // A data connection belongs to its transfer: no handshake or idle rules apply.
    if (this.#queue.closed || this.#handedOff) return;
    const { handshakeTimeout, idleTimeout } = this.limits;
    if (this.#session.name === undefined) {
      if (now - this.#opened > handshakeTimeout) {
        this.#expire(`No name was given within ${handshakeTimeout / 1000} s`);
      }
      return;
    }
    const ping = this.#dialect?.ping;
    if (ping === undefined) return;
    const idle = now - this.#lastInput;
    if (idle > idleTimeout) {
      this.core.disconnect(this.#session, this, "timeout");
      this.#expire(`Nothing was heard from you for ${idleTimeout / 1000} s`);
    } else if (idle > idleTimeout / 3 && !this.#pinged) {
      this.#pinged = true;
      this.#queue.push(ping);
    }
  }

  #expire(message: string): void {
    this.#queue.push(this.#dialect?.bye("timeout", message) ?? textBye("timeout", message));
    this.#queue.close();
  }

  #startJson(): Dialect {
    clearTimeout(this.#greetingTimer);
    this.#greetingTimer = undefined;
    return this.#dialect = new JsonDialect(this);
  }

  #startText(greet: boolean): Dialect {
    clearTimeout(this.#greetingTimer);
    this.#greetingTimer = undefined;
    const dialect = new TextDialect(this, this.#options.password);
    this.#dialect = dialect;
    if (greet) dialect.greet(this.#options.greeting);
    return dialect;
  }
}
