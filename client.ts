/**
 * The chat client library: {@linkcode connect} joins a server and returns a
 * {@linkcode ChatClient} to send messages and await events, which makes a
 * whole conversation scriptable from a test.
 *
 * @module
 */

import denoConfig from "./deno.json" with { type: "json" };
import { type ErrorCode, ProtocolError } from "./protocol/errors.ts";
import type {
  AckFrame,
  ByeFrame,
  DmEvent,
  JoinEvent,
  LeaveEvent,
  MessageEvent,
  NickEvent,
  ServerFrame,
  WelcomeFrame,
} from "./protocol/frames.ts";
import { LOBBY, PROTOCOL_VERSION } from "./protocol/limits.ts";
import { LineDecoder } from "./protocol/line_decoder.ts";
import { SendQueue } from "./_send_queue.ts";

/** An `error` frame that answered no request: the server could not read something we sent. */
export interface ErrorEvent {
  /** The frame type. */
  type: "error";
  /** The machine-readable error code. */
  code: ErrorCode;
  /** What happened, for people. */
  message: string;
}

/** Every event a client can receive, told apart by `type`. */
export type ChatEvent =
  | MessageEvent
  | DmEvent
  | JoinEvent
  | LeaveEvent
  | NickEvent
  | ErrorEvent
  | ByeFrame;

/** The type names of {@linkcode ChatEvent}. */
export type ChatEventType = ChatEvent["type"];

/** A room message as the server stored it. */
export interface SentMessage {
  /** The room, starting with `#`. */
  room: string;
  /** Who sent it, as set by the server. */
  from: string;
  /** The message text; may hold several lines. */
  text: string;
  /** ISO-8601 UTC time stamped by the server. */
  ts: string;
  /** The message's sequence number in its room. */
  seq: number;
  /** `true` for an action (`/me waves`). */
  action?: boolean;
}

/** A private message as the server delivered it. */
export interface SentDm {
  /** Who sent it, as set by the server. */
  from: string;
  /** The recipient's name. */
  to: string;
  /** The message text; may hold several lines. */
  text: string;
  /** ISO-8601 UTC time stamped by the server. */
  ts: string;
  /** `true` for an action (`/me waves`). */
  action?: boolean;
}

/** Options every request takes. */
export interface RequestOptions {
  /** Stops waiting for the answer when aborted (the request may still take effect). */
  signal?: AbortSignal;
}

/** Options for {@linkcode ChatClient.send}. */
export interface SendOptions extends RequestOptions {
  /**
   * The room to send to.
   *
   * @default {"#lobby"}
   */
  room?: string;
  /**
   * Send as an action (`/me`): shown as `* alice waves`.
   *
   * @default {false}
   */
  action?: boolean;
}

/** Options for {@linkcode ChatClient.dm}. */
export interface DmOptions extends RequestOptions {
  /**
   * Send as an action.
   *
   * @default {false}
   */
  action?: boolean;
}

/** Options for {@linkcode ChatClient.who}. */
export interface WhoOptions extends RequestOptions {
  /**
   * The room to list.
   *
   * @default {"#lobby"}
   */
  room?: string;
}

/** Options for {@linkcode ChatClient.next}. */
export interface NextOptions {
  /** Rejects with a `timeout` {@linkcode ProtocolError} after this many ms. */
  timeout?: number;
  /** Stops waiting when aborted. */
  signal?: AbortSignal;
}

/** Options for {@linkcode connect}. */
export interface ConnectOptions {
  /** The name to join with. */
  name: string;
  /**
   * The server's host name or address.
   *
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /**
   * The server's port.
   *
   * @default {7777}
   */
  port?: number;
  /**
   * How long to wait for the connection and the server's welcome, in ms.
   *
   * @default {10000}
   */
  timeout?: number;
  /** Gives up connecting when aborted. */
  signal?: AbortSignal;
}

/** Options for {@linkcode ChatClient.close}. */
export interface CloseOptions {
  /**
   * How long to wait for the server to confirm the exit, in ms, before
   * closing anyway.
   *
   * @default {5000}
   */
  timeout?: number;
}

interface Pending {
  resolve: (ack: AckFrame) => void;
  reject: (error: Error) => void;
}

interface Waiter {
  /** The frame type. */
  type: ChatEventType | undefined;
  resolve: (event: ChatEvent) => void;
  reject: (error: Error) => void;
}

const encoder = new TextEncoder();
const MAX_SERVER_FRAME_BYTES = 16 * 1024 * 1024;
const READ_BUFFER_BYTES = 64 * 1024;

function describe(type: ChatEventType | undefined): string {
  return type === undefined ? "an event" : `a "${type}" event`;
}

function abortable<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  onAbort: () => void,
): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) {
    onAbort();
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const abort = () => {
      onAbort();
      reject(signal.reason);
    };
    signal.addEventListener("abort", abort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", abort));
  });
}

/**
 * A connection to a chat server, made by {@linkcode connect}. Events arrive
 * in order and wait in a queue until read with {@linkcode ChatClient.next} or
 * `for await`. The client's own room messages are not events: `send()`
 * returns them.
 */
export class ChatClient implements AsyncDisposable, AsyncIterable<ChatEvent> {
  #conn: Deno.Conn;
  #queue: SendQueue;
  #name: string;
  #room: string;
  #members: string[];
  #server: string;
  #nextId = 0;
  #pending = new Map<number, Pending>();
  #events: ChatEvent[] = [];
  #waiters: Waiter[] = [];
  #ended = false;
  #closing: Promise<void> | undefined;
  #reading: Promise<void>;
  #decoder: LineDecoder;
  #welcome: PromiseWithResolvers<WelcomeFrame> = Promise.withResolvers();

  /** Use {@linkcode connect}. */
  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
    this.#queue = new SendQueue(conn, { maxBytes: Number.MAX_SAFE_INTEGER });
    this.#decoder = new LineDecoder({ maxBytes: MAX_SERVER_FRAME_BYTES });
    this.#name = "";
    this.#room = LOBBY;
    this.#members = [];
    this.#server = "";
    this.#reading = this.#read();
  }

  /** @internal */
  static async open(options: ConnectOptions): Promise<ChatClient> {
    const hostname = options.hostname ?? "127.0.0.1";
    const port = options.port ?? 7777;
    const where = `"${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}"`;
    const timeout = AbortSignal.timeout(options.timeout ?? 10_000);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    signal.throwIfAborted();
    let conn: Deno.Conn;
    try {
      conn = await Deno.connect({ hostname, port, transport: "tcp", signal });
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      const reason = timeout.aborted
        ? "timed out"
        : error instanceof Deno.errors.ConnectionRefused
        ? "connection refused"
        : error instanceof Error
        ? error.message.replace(/ \(os error \d+\)$/, "").toLowerCase()
        : String(error);
      throw new ProtocolError("unreachable", `Cannot connect to ${where}: ${reason}`, {
        cause: error,
      });
    }
    const client = new ChatClient(conn);
    try {
      await client.#hello(options.name, signal);
    } catch (error) {
      client.#queue.destroy();
      await client.#reading;
      if (options.signal?.aborted) throw options.signal.reason;
      if (timeout.aborted) {
        throw new ProtocolError(
          "timeout",
          `Cannot join ${where}: no welcome from the server in time`,
        );
      }
      throw error;
    }
    return client;
  }

  async #hello(name: string, signal: AbortSignal): Promise<void> {
    const id = ++this.#nextId;
    const ack = new Promise<AckFrame>((resolve, reject) =>
      this.#pending.set(id, { resolve, reject })
    );
    ack.catch(() => {});
    this.#write({
      type: "hello",
      id,
      v: PROTOCOL_VERSION,
      name,
      client: `chat/${denoConfig.version}`,
    });
    const welcome = await abortable(
      Promise.race([this.#welcome.promise, ack]),
      signal,
      () => {},
    ) as WelcomeFrame;
    this.#pending.delete(id);
    this.#name = welcome.name;
    this.#room = welcome.room;
    this.#members = welcome.members;
    this.#server = welcome.server;
  }

  /** The name the server registered for this client. */
  get name(): string {
    return this.#name;
  }

  /** The room this client joined first. */
  get room(): string {
    return this.#room;
  }

  /** Who was in the room when this client joined, itself included. */
  get members(): readonly string[] {
    return this.#members;
  }

  /** The server's software name and version. */
  get server(): string {
    return this.#server;
  }

  /** Whether the connection has ended. */
  get closed(): boolean {
    return this.#ended;
  }

  /**
   * Sends a message to a room and resolves once the server has stamped it.
   *
   * @example Send and read the stamp
   * ```ts ignore
   * const sent = await client.send("hello");
   * console.log(sent.seq, sent.ts);
   * ```
   *
   * @param text The message; may hold several lines.
   * @param options The room, whether it is an action, and a signal.
   * @returns The message as stored, with its sequence number and time.
   * @throws {ProtocolError} When the server refuses it (`invalid_text`, `not_in_room`, …) or the connection closes.
   */
  async send(text: string, options: SendOptions = {}): Promise<SentMessage> {
    const room = options.room ?? this.#room;
    const action = options.action === true;
    const ack = await this.#request(
      action ? { type: "send", room, text, action } : { type: "send", room, text },
      options.signal,
    );
    const sent: SentMessage = {
      room: ack.room!,
      from: this.#name,
      text,
      ts: ack.ts!,
      seq: ack.seq!,
    };
    if (action) sent.action = true;
    return sent;
  }

  /**
   * Sends a private message to one user.
   *
   * @param to The recipient's name.
   * @param text The message.
   * @param options Whether it is an action, and a signal.
   * @returns The message as delivered.
   * @throws {ProtocolError} With `no_such_user` when nobody has that name.
   */
  async dm(to: string, text: string, options: DmOptions = {}): Promise<SentDm> {
    const action = options.action === true;
    const ack = await this.#request(
      action ? { type: "dm", to, text, action } : { type: "dm", to, text },
      options.signal,
    );
    const sent: SentDm = { from: this.#name, to: ack.to!, text, ts: ack.ts! };
    if (action) sent.action = true;
    return sent;
  }

  /**
   * Lists who is in a room.
   *
   * @param options The room and a signal.
   * @returns The names, sorted.
   */
  async who(options: WhoOptions = {}): Promise<string[]> {
    const ack = await this.#request(
      { type: "who", room: options.room ?? this.#room },
      options.signal,
    );
    return ack.names ?? [];
  }

  /**
   * Changes this client's name.
   *
   * @param name The new name.
   * @param options A signal.
   * @returns The name the server registered.
   * @throws {ProtocolError} With `name_taken` or `invalid_name`.
   */
  async nick(name: string, options: RequestOptions = {}): Promise<string> {
    const ack = await this.#request({ type: "nick", name }, options.signal);
    this.#name = ack.name!;
    return this.#name;
  }

  /**
   * Checks the connection: resolves when the server answers.
   *
   * @param options A signal.
   */
  async ping(options: RequestOptions = {}): Promise<void> {
    await this.#request({ type: "ping" }, options.signal);
  }

  /**
   * Waits for the next event of a type, consuming the events before it. With
   * no type, resolves with the next event of any type. Calls made while one
   * is waiting take their turn after it.
   *
   * @example Wait for a message
   * ```ts ignore
   * const message = await client.next("message", { timeout: 2000 });
   * console.log(`${message.from}: ${message.text}`);
   * ```
   *
   * @param type The event type to wait for.
   * @param options A timeout and a signal.
   * @returns The event.
   * @throws {ProtocolError} With `timeout` when it does not come in time, or
   * `closed` when the connection ends first.
   */
  next<T extends ChatEventType>(
    type?: T,
    options: NextOptions = {},
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
          new ProtocolError(
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

  /**
   * Every event, in arrival order, until the connection ends.
   *
   * @returns An iterator over the events.
   */
  async *[Symbol.asyncIterator](): AsyncIterator<ChatEvent> {
    while (true) {
      try {
        yield await this.next();
      } catch (error) {
        if (error instanceof ProtocolError && error.code === "closed") return;
        throw error;
      }
    }
  }

  /**
   * Leaves through the exit handshake: asks to quit, waits for the server's
   * confirmation and for it to close the connection. Safe to call more than
   * once.
   *
   * @param options How long to wait for the server.
   */
  close(options: CloseOptions = {}): Promise<void> {
    return this.#closing ??= this.#close(options.timeout ?? 5000);
  }

  async #close(timeout: number): Promise<void> {
    if (!this.#ended) {
      const signal = AbortSignal.timeout(timeout);
      try {
        await this.#request({ type: "quit" }, signal);
        await abortable(this.#reading, signal, () => {});
      } catch {
        // The server is gone or slow; close our side anyway.
      }
    }
    this.#queue.destroy();
    await this.#reading;
  }

  /** Same as {@linkcode ChatClient.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #write(frame: Record<string, unknown>): void {
    this.#queue.push(encoder.encode(JSON.stringify(frame) + "\n"));
  }

  #request(frame: Record<string, unknown>, signal: AbortSignal | undefined): Promise<AckFrame> {
    if (this.#ended) {
      return Promise.reject(new ProtocolError("closed", "Connection is closed"));
    }
    const id = ++this.#nextId;
    const promise = new Promise<AckFrame>((resolve, reject) =>
      this.#pending.set(id, { resolve, reject })
    );
    this.#write({ ...frame, id });
    return abortable(promise, signal, () => this.#pending.delete(id));
  }

  #serve(): void {
    while (this.#waiters.length > 0 && this.#events.length > 0) {
      const waiter = this.#waiters[0]!;
      const event = this.#events.shift()!;
      if (waiter.type === undefined || waiter.type === event.type) {
        this.#waiters.shift();
        waiter.resolve(event);
      }
    }
    if (this.#ended && this.#events.length === 0) {
      for (const waiter of this.#waiters.splice(0)) {
        waiter.reject(
          new ProtocolError(
            "closed",
            `Connection closed while waiting for ${describe(waiter.type)}`,
          ),
        );
      }
    }
  }

  async #read(): Promise<void> {
    const buffer = new Uint8Array(READ_BUFFER_BYTES);
    try {
      while (true) {
        const read = await this.#conn.read(buffer);
        if (read === null) break;
        for (const line of this.#decoder.push(buffer.subarray(0, read))) {
          // A frame we cannot read may have been an answer: the stream can no
          // longer be trusted, so end the connection rather than hang.
          if (!line.ok) throw new ProtocolError(line.code, line.message);
          this.#frame(line.text);
        }
      }
    } catch {
      // Closed by us, or the connection broke: both end the client.
    } finally {
      this.#end();
    }
  }

  #frame(line: string): void {
    if (!line.startsWith("{")) return;
    let frame: ServerFrame;
    try {
      frame = JSON.parse(line);
    } catch {
      return;
    }
    switch (frame.type) {
      case "welcome":
        return this.#welcome.resolve(frame);
      case "ack":
      case "error": {
        const pending = typeof frame.id === "number" ? this.#pending.get(frame.id) : undefined;
        if (pending !== undefined) {
          this.#pending.delete(frame.id as number);
          if (frame.type === "ack") pending.resolve(frame);
          else pending.reject(new ProtocolError(frame.code, frame.message));
          return;
        }
        if (frame.type === "ack") return;
        const { type, code, message } = frame;
        return this.#push({ type, code, message });
      }
      case "nick":
        if (frame.from === this.#name) this.#name = frame.to;
        return this.#push(frame);
      case "message":
      case "dm":
      case "join":
      case "leave":
      case "bye":
        return this.#push(frame);
    }
  }

  #push(event: ChatEvent): void {
    this.#events.push(event);
    this.#serve();
  }

  #end(): void {
    this.#ended = true;
    this.#queue.destroy();
    const closed = new ProtocolError("closed", "Connection closed before the server answered");
    this.#welcome.reject(closed);
    this.#welcome.promise.catch(() => {});
    for (const pending of this.#pending.values()) pending.reject(closed);
    this.#pending.clear();
    this.#serve();
  }
}

/**
 * Connects to a chat server and joins with a name.
 *
 * @example Two people talk
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { connect, serve } from "./mod.ts";
 *
 * await using server = await serve({ hostname: "127.0.0.1", port: 0 });
 * const port = server.addr.port;
 * await using alice = await connect({ port, name: "alice" });
 * await using bob = await connect({ port, name: "bob" });
 *
 * await alice.send("你好, bob 👋");
 * const got = await bob.next("message", { timeout: 2000 });
 * deepEqual(got.text, "你好, bob 👋");
 * ```
 *
 * @param options Where to connect and the name to use.
 * @returns The connected client.
 * @throws {ProtocolError} With `unreachable` when the server cannot be
 * reached, `name_taken` or `invalid_name` when the name is refused, and
 * `timeout` when the server does not answer in time.
 */
export function connect(options: ConnectOptions): Promise<ChatClient> {
  return ChatClient.open(options);
}
