/**
 * The WebSocket door: one browser connection (or any WebSocket client). Each
 * text message carries one protocol frame, as a line does on the JSON door;
 * the same line budget, flood rule, slow-consumer rule (read from the
 * socket's `bufferedAmount`), timeouts and core apply. A socket whose first
 * frame is `data` becomes a data connection: binary messages carry the file.
 *
 * @module
 */

import { ProtocolError } from "../../protocol/errors.ts";
import type { LeaveReason } from "../../protocol/frames.ts";
import { parseClientFrame, requestIdOf } from "../../protocol/frames.ts";
import type { Limits } from "../../protocol/limits.ts";
import type { Core, Origin, Outbound, OutboundRun, Peer, Session } from "../core.ts";
import { LineBudget } from "../line_budget.ts";
import type { BudgetedQueue, QueueBudget } from "../../_common/queue_budget.ts";
import { Refusals } from "./refusals.ts";
import type { ByteStream } from "../transfers.ts";

/** Bytes waiting for the line budget that count as a flood (PROTOCOL.md section 13.4). */
const FLOOD_BACKLOG_BYTES = 8 * 1024;
/**
 * Bytes of messages received and not yet handled above which a WebSocket is
 * cut off as a flood at once: a WebSocket cannot be left unread like a socket,
 * so what a client sends beyond its budget waits in the server's memory.
 */
export const MAX_WEBSOCKET_BACKLOG = 1024 * 1024;
/**
 * Bytes of a file a WebSocket sender may have sent that the server has not
 * yet passed on; the server says how far it got with `{"type":"data","taken":N}`.
 */
export const DATA_WINDOW_BYTES = 1024 * 1024;
/** Bytes a data connection may hold unread before it is cut off (twice the window). */
const MAX_DATA_BACKLOG = 2 * DATA_WINDOW_BYTES;
/** How long the server waits for a peer to take what it sent before giving up, in ms. */
const STALL_TIMEOUT = 5000;
/**
 * Most bytes handed to a socket that its peer has not taken: the rest waits
 * in the door, shared with the other readers of the same events, where the
 * queue budget counts it.
 */
const IN_FLIGHT_BYTES = 64 * 1024;
/** How soon a door whose socket is full looks again, in ms, doubling while nothing goes out. */
const POLL_MIN = 10;
const POLL_MAX = 250;
/** How long a close may wait for the peer, in ms. */
const CLOSE_TIMEOUT = 2000;
const BYE_QUEUE_MESSAGE = "Disconnected: too many messages waiting for you to read them";
const PING = '{"type":"ping"}';
const encoder = new TextEncoder();

function byeText(reason: LeaveReason | "timeout", message: string): string {
  return JSON.stringify({ type: "bye", reason, message });
}

/** The UTF-8 length of a string, counted only when it could pass `limit`. */
function overLimit(text: string, limit: number): boolean {
  return text.length * 3 > limit && encoder.encode(text).length > limit;
}

/** What a WebSocket door needs to know about the server. */
export interface WebSocketDoorOptions extends Pick<Origin, "ports" | "fingerprint" | "names"> {
  /** The server-wide budget for bytes waiting to be written. */
  budget?: QueueBudget;
}

/** Where a WebSocket comes from. */
export interface WebSocketRemote {
  /** The IP address. */
  hostname: string;
  /** The port. */
  port: number;
}

/** One WebSocket, speaking protocol frames, one per text message. */
export class WebSocketDoor implements Peer, BudgetedQueue {
  readonly core: Core;
  readonly limits: Limits;
  /** The peer's IP address. */
  readonly ip: string;
  #socket: WebSocket;
  #session: Session;
  #budget: LineBudget;
  /** Messages received and not yet handled. */
  #inbox: (string | Uint8Array)[] = [];
  #inboxBytes = 0;
  #pumping = false;
  #frames = 0;
  #data: WebSocketByteStream | undefined;
  #transfer: Promise<void> | undefined;
  #opened = performance.now();
  #lastInput = performance.now();
  #pinged = false;
  /** Bytes handed to the socket so far; with `bufferedAmount`, how much the peer took. */
  #sent = 0;
  /**
   * Frames waiting to be handed to the socket, a line each, their sizes in
   * bytes, and what the queue budget counts for them (shared by every reader
   * of the same run of events).
   */
  #lines: string[] = [];
  #sizes: number[] = [];
  #keys: (object | undefined)[] = [];
  #linesBytes = 0;
  #flushScheduled = false;
  /** Set while the socket is full: when to look again. */
  #pollTimer: ReturnType<typeof setTimeout> | undefined;
  #pollDelay = POLL_MIN;
  #taken = 0;
  #progress = performance.now();
  /** `#progress` on the wall clock, as the queue budget reads it. */
  #progressAt = Date.now();
  /** The server-wide budget for bytes waiting to be written. */
  #queueBudget: QueueBudget | undefined;
  #closing = false;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  #done = Promise.withResolvers<void>();
  /** Resolves when the socket is really closed (a peer that does not read may hold it). */
  #closed = Promise.withResolvers<void>();
  /** Refusals held back while the connection is over its budget. */
  #refusals: Refusals;
  #pauseTimer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | undefined;

  /**
   * Wraps an upgraded WebSocket.
   *
   * @param socket The socket, not yet open.
   * @param remote Where it comes from.
   * @param core The core to feed.
   * @param limits The limits to enforce.
   * @param options What a key proof must name.
   */
  constructor(
    socket: WebSocket,
    remote: WebSocketRemote,
    core: Core,
    limits: Limits,
    options: WebSocketDoorOptions,
  ) {
    this.#socket = socket;
    socket.binaryType = "arraybuffer";
    this.#queueBudget = options.budget;
    this.#queueBudget?.add(this);
    this.core = core;
    this.limits = limits;
    this.ip = remote.hostname;
    this.#budget = new LineBudget({
      rate: limits.rateLimit,
      burst: limits.rateBurst,
      floodTimeout: limits.floodTimeout,
      floodBacklog: FLOOD_BACKLOG_BYTES,
    }, performance.now());
    this.#refusals = new Refusals(() => this.#budget.over, (message, ids) => {
      const text = JSON.stringify({
        type: "error",
        code: "rate_limited",
        message,
        ...(ids.length > 0 ? { ids } : {}),
      });
      this.#send(text, encoder.encode(text).length);
    });
    const host = remote.hostname.includes(":") ? `[${remote.hostname}]` : remote.hostname;
    this.#session = core.open(this, {
      remote: `${host}:${remote.port}`,
      ip: remote.hostname,
      ports: options.ports,
      fingerprint: options.fingerprint,
      names: options.names,
    });
    socket.onmessage = (event) => this.#received(event.data);
    socket.onclose = () => {
      this.#ended();
      this.#closed.resolve();
    };
    socket.onerror = () => {};
  }

  /** The session this connection carries. */
  get session(): Session {
    return this.#session;
  }

  /**
   * Resolves once the socket is closed, or given up on 2 seconds after the
   * server closed it (for a data connection: once its transfer is over).
   */
  get done(): Promise<void> {
    return this.#transfer === undefined
      ? this.#done.promise
      : Promise.all([this.#transfer, this.#done.promise]).then(() => {});
  }

  /**
   * Resolves once the socket is really closed. A peer that stops reading
   * never completes the close, and keeps its socket until it goes away:
   * the server counts it against the connection limits until then.
   */
  get closed(): Promise<void> {
    return this.#closed.promise;
  }

  /** Whether this connection can take part in file transfers: it can. */
  get files(): boolean {
    return true;
  }

  /** Carries a resumed session from now on. */
  adopt(session: Session): void {
    this.#session = session;
  }

  /** Queues a frame; the frames of one turn go out as one text message, a line each. */
  deliver(out: Outbound): void {
    if (
      out.frame.type === "error" &&
      (out.frame.code === "rate_limited" || out.frame.id === undefined) &&
      this.#refusals.hold(out.frame.id)
    ) return;
    this.#send(out.webSocketText, out.json.length - 1, out);
  }

  /** Queues a stretch of a run of events: one slice of the run's text, made once for all. */
  deliverRun(run: OutboundRun, start: number, end: number): void {
    const { text, bytes } = run.webSocketText(start, end);
    // Every reader's stretch keeps the whole run's text: the budget counts all of it, once.
    this.#send(text, bytes, run, run.webSocketBytes);
  }

  /**
   * Queues frames (lines of JSON): those of one turn go out in one message,
   * unless the socket already holds {@linkcode IN_FLIGHT_BYTES}; then they
   * wait here, shared with the other readers of the same events.
   */
  #send(text: string, bytes: number, key?: object, shared = bytes): void {
    if (this.#closing) return;
    // The clock for "taken nothing for a while" starts when there is something to take.
    if (this.#linesBytes === 0) {
      this.#progress = performance.now();
      this.#progressAt = Date.now();
    }
    this.#lines.push(text);
    this.#sizes.push(bytes);
    this.#keys.push(key);
    if (key !== undefined) this.#queueBudget?.holdShared(key, shared);
    this.#linesBytes += bytes;
    if (!this.#flushScheduled && this.#pollTimer === undefined) {
      this.#flushScheduled = true;
      queueMicrotask(() => this.#flush());
    }
  }

  /**
   * Hands what waits to the socket as one text message, as far as the socket
   * has room (everything when `all`); checks that the peer keeps up.
   */
  #flush(all = false): void {
    this.#flushScheduled = false;
    if (this.#lines.length === 0) return;
    if (this.#closing || this.#socket.readyState !== WebSocket.OPEN) return this.#drop();
    const room = all ? Infinity : IN_FLIGHT_BYTES - this.#check();
    // A stretch of many events larger than the room goes in parts, split between its lines.
    if (room > 0 && this.#sizes[0]! > room) this.#split(room);
    let count = 0;
    let bytes = -1;
    while (count < this.#lines.length && (count === 0 || bytes + 1 + this.#sizes[count]! <= room)) {
      if (room <= 0) break;
      bytes += 1 + this.#sizes[count]!;
      count++;
    }
    if (count > 0) {
      const text = count === 1 ? this.#lines[0]! : this.#lines.slice(0, count).join("\n");
      this.#take(count);
      try {
        this.#socket.send(text);
      } catch {
        return this.#drop();
      }
      this.#sent += bytes;
      this.#pollDelay = POLL_MIN;
    } else {
      this.#pollDelay = Math.min(this.#pollDelay * 2, POLL_MAX);
    }
    const max = this.limits.maxSendQueueBytes;
    const waiting = this.#check() + this.#linesBytes;
    if (
      waiting > max && (waiting > 4 * max || performance.now() - this.#progress > STALL_TIMEOUT)
    ) {
      return this.#overflow();
    }
    // The rest waits for the socket to have room: there is no event for that, so look again.
    if (this.#lines.length > 0 && this.#pollTimer === undefined) {
      this.#pollTimer = setTimeout(() => {
        this.#pollTimer = undefined;
        this.#flush();
      }, this.#pollDelay);
    }
  }

  /**
   * Splits the first text waiting (lines of JSON) after the last line that
   * fits in about `room` bytes, or after its first line. Sizes of the parts
   * are reckoned in proportion to their length.
   */
  #split(room: number): void {
    const text = this.#lines[0]!;
    const bytes = this.#sizes[0]!;
    const chars = Math.floor(room * text.length / bytes);
    let at = text.lastIndexOf("\n", chars);
    if (at <= 0) at = text.indexOf("\n");
    if (at <= 0) return;
    const headBytes = Math.min(Math.round(bytes * at / text.length), bytes - 1);
    // The key stays with the rest: the budget lets go of it once all of it went out.
    this.#lines.splice(0, 1, text.slice(0, at), text.slice(at + 1));
    this.#sizes.splice(0, 1, headBytes, bytes - 1 - headBytes);
    this.#keys.splice(0, 0, undefined);
    // The newline between the parts goes with neither.
    this.#linesBytes -= 1;
  }

  /** Takes the first `count` lines off the queue, letting go of what the budget counts. */
  #take(count: number): void {
    for (let i = 0; i < count; i++) {
      this.#linesBytes -= this.#sizes[i]!;
      const key = this.#keys[i];
      if (key !== undefined) this.#queueBudget?.releaseShared(key);
    }
    if (count === this.#lines.length) {
      this.#lines = [];
      this.#sizes = [];
      this.#keys = [];
    } else {
      this.#lines.splice(0, count);
      this.#sizes.splice(0, count);
      this.#keys.splice(0, count);
    }
  }

  /** Drops what waits (the connection is closing). */
  #drop(): void {
    this.#take(this.#lines.length);
    clearTimeout(this.#pollTimer);
    this.#pollTimer = undefined;
  }

  /** Bytes the socket holds that the peer has not taken yet; notes any progress. */
  #check(): number {
    const waiting = this.#socket.bufferedAmount;
    const taken = this.#sent - waiting;
    if (taken > this.#taken || waiting === 0) {
      this.#taken = taken;
      this.#progress = performance.now();
      this.#progressAt = Date.now();
    }
    return waiting;
  }

  /** Bytes waiting to be handed to the socket (what the queue budget sees). */
  get bytes(): number {
    return this.#linesBytes;
  }

  /** When the peer last took bytes, or had none to take (`Date.now()`). */
  get progress(): number {
    return this.#linesBytes === 0 ? Date.now() : this.#progressAt;
  }

  /** Disconnects the peer as too far behind (the queue budget's call). */
  overflow(): void {
    if (!this.#closing) this.#overflow();
  }

  #overflow(): void {
    this.core.disconnect(this.#session, this, "send_queue_exceeded");
    // What still waits is dropped: the goodbye goes right after what the socket holds.
    this.#drop();
    this.#finish(byeText("send_queue_exceeded", BYE_QUEUE_MESSAGE));
  }

  /** Sends a last message past every limit, then closes. */
  #finish(last: string): void {
    if (this.#closing) return;
    // What was queued before goes first.
    this.#flush(true);
    try {
      if (this.#socket.readyState === WebSocket.OPEN) this.#socket.send(last);
    } catch {
      // Closed meanwhile.
    }
    this.close();
  }

  /** Sends what is queued, then closes. */
  close(): void {
    if (this.#closing) return;
    this.#refusals.flush();
    this.#flush(true);
    clearTimeout(this.#pollTimer);
    this.#pollTimer = undefined;
    // The flush may have found the peer too far behind, and closed already.
    if (this.#closing) return;
    this.#closing = true;
    this.#wake?.();
    try {
      this.#socket.close(1000);
    } catch {
      // Not open yet, or already closed.
    }
    // A peer that does not read never completes the close handshake.
    this.#closeTimer = setTimeout(() => this.#ended(), CLOSE_TIMEOUT);
  }

  /** The socket is closed: tell the core, once. */
  #ended(): void {
    clearTimeout(this.#closeTimer);
    this.#drop();
    this.#queueBudget?.delete(this);
    this.#refusals.stop();
    clearTimeout(this.#pauseTimer);
    this.#closing = true;
    this.#wake?.();
    this.#data?.end();
    this.core.disconnect(this.#session, this, "lost");
    this.#inbox = [];
    this.#inboxBytes = 0;
    this.#done.resolve();
  }

  #received(data: unknown): void {
    if (this.#data !== undefined) {
      if (data instanceof ArrayBuffer) this.#data.push(new Uint8Array(data));
      return;
    }
    if (this.#closing) return;
    this.#lastInput = performance.now();
    this.#pinged = false;
    const message = typeof data === "string" ? data : new Uint8Array(data as ArrayBuffer);
    this.#inbox.push(message);
    this.#inboxBytes += message.length;
    if (this.#inboxBytes > Math.max(MAX_WEBSOCKET_BACKLOG, 2 * this.limits.maxFrameBytes)) {
      return this.#flood();
    }
    if (!this.#pumping) this.#pump();
  }

  /** Handles the messages received, in order, as the line budget allows. */
  async #pump(): Promise<void> {
    this.#pumping = true;
    let waited = false;
    try {
      while (this.#inbox.length > 0 && !this.#closing && this.#data === undefined) {
        // Too much waits to be written, server-wide: handle no more requests until it has gone out.
        const queueBudget = this.#queueBudget;
        if (queueBudget?.paused) {
          await Promise.race([queueBudget.resumed(), this.#done.promise]);
          continue;
        }
        const allowed = this.#budget.allowance(performance.now(), waited);
        if (allowed === 0) {
          const delay = this.#budget.wait(performance.now(), this.#inboxBytes);
          if (delay === undefined) return this.#flood();
          waited = true;
          await new Promise<void>((resolve) => {
            this.#wake = resolve;
            this.#pauseTimer = setTimeout(resolve, delay);
          });
          this.#wake = undefined;
          continue;
        }
        if (!waited) this.#refusals.flush();
        const message = this.#inbox.shift()!;
        this.#inboxBytes -= message.length;
        this.#budget.take(1);
        try {
          const pending = this.#handle(message);
          if (pending !== undefined) await pending;
        } catch (error) {
          this.core.fault(this.#session, error);
        }
        if (this.#inbox.length === 0) waited = false;
      }
    } finally {
      this.#pumping = false;
    }
  }

  /** One frame; a promise when the ones after it must wait. */
  #handle(message: string | Uint8Array): Promise<void> | undefined {
    const { core } = this;
    const session = this.#session;
    if (typeof message !== "string") {
      core.reject(session, "bad_request", "Frames travel as text messages, not binary ones");
      return;
    }
    if (overLimit(message, this.limits.maxFrameBytes)) {
      core.reject(
        session,
        "frame_too_large",
        `Frame is longer than the limit of ${this.limits.maxFrameBytes} bytes`,
      );
      return;
    }
    if (message.trim() === "") return;
    let frame;
    try {
      frame = parseClientFrame(message);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      core.reject(session, error.code, error.message, requestIdOf(error));
      return;
    }
    if (frame.type === "data") {
      if (this.#frames++ > 0) {
        core.receive(session, frame);
        core.reject(session, "bad_request", '"data" must be the first frame of a new connection');
        return;
      }
      const stream = new WebSocketByteStream(this.#socket, () => this.close());
      const transfer = core.attachData(stream, frame.token);
      if (transfer === undefined) {
        core.reject(session, "no_such_transfer", "No transfer has that token");
        this.close();
        return;
      }
      this.#data = stream;
      this.#inbox = [];
      this.#inboxBytes = 0;
      this.#transfer = transfer;
      return;
    }
    this.#frames++;
    return core.receive(session, frame);
  }

  #flood(): void {
    const message =
      `Disconnected: you kept sending lines faster than ${this.limits.rateLimit} a second, without waiting for the answers, for ${
        this.limits.floodTimeout / 1000
      } s`;
    this.core.disconnect(this.#session, this, "flood");
    this.#inbox = [];
    this.#inboxBytes = 0;
    this.#finish(byeText("flood", message));
  }

  /**
   * Enforces the time limits and the slow-consumer rule; the server calls
   * this every few seconds.
   *
   * @param now `performance.now()`.
   */
  sweep(now: number): void {
    if (this.#closing || this.#data !== undefined) return;
    if (this.#socket.readyState !== WebSocket.OPEN) return;
    const max = this.limits.maxSendQueueBytes;
    if (this.#check() + this.#linesBytes > max && now - this.#progress > STALL_TIMEOUT) {
      return this.#overflow();
    }
    const { handshakeTimeout, idleTimeout } = this.limits;
    if (this.#session.name === undefined) {
      if (now - this.#opened > handshakeTimeout) {
        this.#finish(byeText("timeout", `No name was given within ${handshakeTimeout / 1000} s`));
      }
      return;
    }
    const idle = now - this.#lastInput;
    if (idle > idleTimeout) {
      this.core.disconnect(this.#session, this, "timeout");
      this.#finish(byeText("timeout", `Nothing was heard from you for ${idleTimeout / 1000} s`));
    } else if (idle > idleTimeout / 3 && !this.#pinged) {
      this.#pinged = true;
      this.#send(PING, PING.length);
    }
  }
}

/**
 * A WebSocket as the byte stream of a file transfer: binary messages in and
 * out. The first write (the server's `ok`) goes out as a text message; the
 * sender is told how far the server got, so it never has more than
 * {@linkcode DATA_WINDOW_BYTES} in flight.
 */
class WebSocketByteStream implements ByteStream {
  #socket: WebSocket;
  #onClose: () => void;
  #chunks: Uint8Array[] = [];
  #bytes = 0;
  #taken = 0;
  #ready = false;
  #ended = false;
  #wake: (() => void) | undefined;

  constructor(socket: WebSocket, onClose: () => void) {
    this.#socket = socket;
    this.#onClose = onClose;
  }

  /** A binary message arrived. */
  push(bytes: Uint8Array): void {
    // Bytes sent before the "ok" are discarded, as on a TCP data connection.
    if (!this.#ready || this.#ended) return;
    this.#chunks.push(bytes);
    this.#bytes += bytes.length;
    if (this.#bytes > MAX_DATA_BACKLOG) {
      // The sender ignored the window: cut off.
      this.#chunks = [];
      this.#bytes = 0;
      this.close();
    }
    this.#wake?.();
  }

  /** The socket closed. */
  end(): void {
    this.#ended = true;
    this.#wake?.();
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
      this.#wake = undefined;
    }
    const chunk = this.#chunks[0]!;
    const count = Math.min(chunk.length, buffer.length);
    buffer.set(chunk.subarray(0, count));
    if (count === chunk.length) this.#chunks.shift();
    else this.#chunks[0] = chunk.subarray(count);
    this.#bytes -= count;
    this.#taken += count;
    try {
      this.#socket.send(`{"type":"data","taken":${this.#taken}}`);
    } catch {
      // Closing.
    }
    return count;
  }

  async write(bytes: Uint8Array): Promise<number> {
    if (this.#ended || this.#socket.readyState !== WebSocket.OPEN) {
      throw new Deno.errors.BrokenPipe("The data connection is closed");
    }
    if (!this.#ready) {
      this.#ready = true;
      this.#socket.send(new TextDecoder().decode(bytes).trimEnd());
      return bytes.length;
    }
    // The relay reuses its buffer: send a copy.
    this.#socket.send(bytes.slice());
    // Backpressure: wait while the receiver has a window's worth unread.
    const since = performance.now();
    while (this.#socket.bufferedAmount > DATA_WINDOW_BYTES) {
      if (this.#ended) throw new Deno.errors.BrokenPipe("The data connection is closed");
      if (performance.now() - since > 60_000) {
        throw new Deno.errors.TimedOut("The receiver stopped reading");
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return bytes.length;
  }

  close(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#wake?.();
    this.#onClose();
  }
}

/**
 * Refuses a WebSocket before anything else, as a TCP connection is refused
 * with one line: the reason is the close reason (code 1008).
 *
 * @param socket The upgraded socket.
 * @param reason Why, in one line.
 */
export function refuseWebSocket(socket: WebSocket, reason: string): void {
  const close = () => {
    try {
      socket.close(1008, reason.slice(0, 120));
    } catch {
      // Already closed.
    }
  };
  if (socket.readyState === WebSocket.CONNECTING) socket.onopen = close;
  else close();
}
