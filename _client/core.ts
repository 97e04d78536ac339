/**
 * What a client knows and how it reacts to the server: its name, rooms and
 * session; the handshake on each link; the dispatch of every server frame to
 * the requests, the event queue and the transfers; and the end of the
 * client. `ChatClient` is a facade over it.
 *
 * @module
 */

import denoConfig from "../deno.json" with { type: "json" };
import { ConnectionError, ProtocolError } from "../protocol/errors.ts";
import type {
  AckFrame,
  HelloFrame,
  MessageEvent,
  ServerFrame,
  WelcomeFrame,
} from "../protocol/frames.ts";
import { parseServerFrame, requestIdOf } from "../protocol/frames.ts";
import { LOBBY, PROTOCOL_VERSION } from "../protocol/limits.ts";
import { proofBytes } from "../_common/identity.ts";
import { EventQueue } from "./events.ts";
import { describeAddress, dial, type Dialed, type Endpoint, Link, serverAddress } from "./link.ts";
import { Reconnector } from "./reconnect.ts";
import { abortable, type Request, Requests } from "./requests.ts";
import { Transfers } from "./transfers.ts";
import type { ChatEvent, ConnectOptions } from "./types.ts";
import { Watchdog } from "./watchdog.ts";

/** The state and the frame dispatch of one client, across its links. */
export class Core {
  readonly options: ConnectOptions;
  /** The addresses of the chat: `hostname:port`, then the other `servers`. */
  readonly #endpoints: Endpoint[];
  /** The one connected to last. */
  #current = 0;
  readonly requests: Requests = new Requests();
  readonly events: EventQueue = new EventQueue();
  readonly transfers: Transfers = new Transfers(this);
  readonly reconnector: Reconnector = new Reconnector(this);
  readonly #watchdog = new Watchdog();
  /** The last sequence number seen in each joined room (events and own acks). */
  readonly seen: Map<string, number> = new Map();
  /** The away message the server last acknowledged, `""` when here: set again on a new session. */
  away = "";
  /** Rooms catching up after a reconnect: live messages wait here until the gap is filled. */
  readonly catchingUp: Map<string, MessageEvent[]> = new Map();
  #link: Link | undefined;
  #name = "";
  #room: string = LOBBY;
  #members: string[] = [];
  #memberCount = 0;
  #server = "";
  #session = "";
  #ended = false;
  #closing: Promise<void> | undefined;
  #invalidFrames = 0;

  constructor(options: ConnectOptions) {
    this.options = options;
    this.#endpoints = [
      { hostname: options.hostname ?? "127.0.0.1", port: options.port ?? 7777, tls: options.tls },
      ...(options.servers ?? []).map(({ hostname, port }) => ({
        hostname,
        port,
        tls: options.tls,
      })),
    ];
  }

  /** The address connected to last (or to be tried first). */
  get endpoint(): Endpoint {
    return this.#endpoints[this.#current]!;
  }

  /**
   * Dials the chat: each address in turn, from the current one (or, with
   * `next`, the one after it), until one answers.
   */
  async dial(signal: AbortSignal, timeout: AbortSignal, next = false): Promise<Dialed> {
    const count = this.#endpoints.length;
    const first = (this.#current + (next ? 1 : 0)) % count;
    let failure: unknown;
    for (let i = 0; i < count; i++) {
      const index = (first + i) % count;
      try {
        const dialed = await dial(this.#endpoints[index]!, signal, timeout);
        this.#current = index;
        return dialed;
      } catch (error) {
        failure = error;
        if (signal.aborted) break;
      }
    }
    throw failure;
  }

  /** The current link; `undefined` until the first welcome. */
  get link(): Link | undefined {
    return this.#link;
  }

  /** The name the server registered. */
  get name(): string {
    return this.#name;
  }

  /** The room joined first. */
  get room(): string {
    return this.#room;
  }

  /** Who was in that room on joining. */
  get members(): readonly string[] {
    return this.#members;
  }

  /** How many were in that room on joining (more than `members` in a crowded room). */
  get memberCount(): number {
    return this.#memberCount;
  }

  /** The server's software name and version. */
  get server(): string {
    return this.#server;
  }

  /** The token that resumes the session. */
  get session(): string {
    return this.#session;
  }

  /** Whether the client has ended for good. */
  get ended(): boolean {
    return this.#ended;
  }

  /** How many server frames broke the protocol. */
  get invalidFrames(): number {
    return this.#invalidFrames;
  }

  /** The server accepted a new name. */
  renamed(name: string): void {
    this.#name = name;
  }

  /** Dials, says `hello` and adopts the link once welcomed. */
  static async open(options: ConnectOptions): Promise<Core> {
    const core = new Core(options);
    const timeout = AbortSignal.timeout(options.timeout ?? 10_000);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    signal.throwIfAborted();
    const link = new Link(await core.dial(signal, timeout));
    try {
      const welcome = await core.hello(link, signal, options.history);
      core.#adopt(link, welcome);
      // Closed between the welcome and now: its loss went unnoticed, so notice it now.
      if (link.closed) core.lost(link, "the server closed the connection");
    } catch (error) {
      link.destroy();
      await link.reading;
      if (options.signal?.aborted) throw options.signal.reason;
      if (timeout.aborted) {
        throw new ConnectionError(
          "timeout",
          `Cannot join ${
            describeAddress(core.endpoint.hostname, core.endpoint.port)
          }: no welcome from the server in time`,
        );
      }
      throw error;
    }
    return core;
  }

  /** Sends `hello` on a new link and waits for `welcome` (or the refusal). */
  async hello(
    link: Link,
    signal: AbortSignal,
    history: number | undefined,
  ): Promise<WelcomeFrame> {
    link.start(this);
    const id = this.requests.allocate();
    const refused = this.requests.expect(id);
    refused.catch(() => {});
    const name = this.#name || this.options.name;
    const server = serverAddress(this.endpoint.hostname, this.endpoint.port);
    const hello: HelloFrame = {
      type: "hello",
      id,
      v: PROTOCOL_VERSION,
      name,
      client: `chat/${denoConfig.version}`,
      reconnect: this.options.reconnect !== undefined && this.options.reconnect !== false,
      // Events older clients would not know: the server sends them only to those who list them.
      caps: ["away"],
    };
    link.handshake = { id, name, server };
    if (this.#session) hello.resume = this.#session;
    if (history !== undefined) hello.history = history;
    if (this.options.password !== undefined) hello.password = this.options.password;
    if (this.options.transient === true) hello.transient = true;
    // The key goes along even with a resume token: if the server forgot the session
    // (it restarted), it asks for the proof instead.
    if (this.options.identity !== undefined) {
      hello.key = this.options.identity.publicKey;
      // Who the client believes it is talking to: the key proof is bound to it.
      hello.server = server;
      if (link.fingerprint !== undefined) hello.tls = link.fingerprint;
    }
    link.write(hello);
    try {
      const answer = await abortable(
        Promise.race([link.welcome.promise, refused]),
        signal,
        () => {},
      );
      if (answer.type !== "welcome") {
        throw new ConnectionError("invalid_frame", 'The server answered "hello" with an "ack"');
      }
      return answer;
    } finally {
      this.requests.drop(id);
      link.handshake = undefined;
    }
  }

  #adopt(link: Link, welcome: WelcomeFrame): void {
    this.#watchdog.start(welcome.limits.idleTimeout, () => this.#link);
    this.#link = link;
    this.#name = welcome.name;
    this.#room = welcome.room;
    this.#members = welcome.members;
    this.#memberCount = welcome.count ?? welcome.members.length;
    this.#server = welcome.server;
    this.#session = welcome.session;
    for (const room of welcome.rooms) {
      if (!this.seen.has(room.name)) this.seen.set(room.name, room.seq);
    }
  }

  /** A reconnect was welcomed on `link`: it becomes the current one. */
  resumed(link: Link, welcome: WelcomeFrame): void {
    this.#link = link;
    this.#name = welcome.name;
    this.#server = welcome.server;
    this.#session = welcome.session;
  }

  /** Whether the client is connected right now. */
  get connected(): boolean {
    return this.#link !== undefined && !this.#link.closed;
  }

  /** Sends a request; `onAck` runs as soon as its ack is read, before the frames after it. */
  request(
    frame: Request,
    signal: AbortSignal | undefined,
    onAck?: (ack: AckFrame) => void,
  ): Promise<AckFrame> {
    if (this.#ended) {
      return Promise.reject(new ConnectionError("closed", "Connection is closed"));
    }
    // While reconnecting, the request waits and is sent after the reconnect.
    return this.requests.send(frame, this.connected ? this.#link : undefined, signal, onAck);
  }

  /** Notes that `room` has reached `seq`. */
  saw(room: string, seq: number): void {
    const seen = this.seen.get(room);
    if (seen === undefined || seq > seen) this.seen.set(room, seq);
  }

  /** Acknowledged own messages of rooms catching up: the highest number, noted once caught up. */
  readonly #ownWhileCatchingUp = new Map<string, number>();

  /**
   * Notes the number of an own message. While its room catches up after a
   * reconnect, the messages of others before it may still be waiting: it is
   * noted once they are through, or they would look already seen.
   */
  sawOwn(room: string, seq: number): void {
    if (!this.catchingUp.has(room)) return this.saw(room, seq);
    this.#ownWhileCatchingUp.set(room, Math.max(seq, this.#ownWhileCatchingUp.get(room) ?? 0));
  }

  /** A room caught up: own messages acknowledged meanwhile count as seen now. */
  caughtUp(room: string): void {
    const own = this.#ownWhileCatchingUp.get(room);
    this.#ownWhileCatchingUp.delete(room);
    if (own !== undefined) this.saw(room, own);
  }

  /** Queues an event. */
  push(event: ChatEvent): void {
    this.events.push(event);
  }

  /** Before the first welcome, a TLS record means the port speaks TLS. */
  expectsPlainText(): boolean {
    return this.#link === undefined;
  }

  /** One line from the server on `link`. */
  onLine(link: Link, line: string): void {
    if (!line.startsWith("{")) {
      link.notice = line.replace(/^[!*\s]+/, "").slice(0, 200);
      return;
    }
    let frame: ServerFrame;
    try {
      frame = parseServerFrame(line);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      return this.#invalid(error);
    }
    switch (frame.type) {
      case "welcome":
        link.welcomedAt ??= performance.now();
        return link.welcome.resolve(frame);
      case "ping":
        return link.write({ type: "pong" });
      case "challenge":
        return this.#challenge(link, frame.id, frame.nonce);
      case "ack":
        this.requests.settle(frame.id, frame);
        return;
      case "error": {
        const { type, code, message, ids } = frame;
        if (this.requests.settle(frame.id, new ProtocolError(code, message))) return;
        // Refusals the server coalesced answer every request they list.
        for (const id of ids ?? []) this.requests.settle(id, new ProtocolError(code, message));
        return this.push({ type, code, message });
      }
      case "message": {
        const waiting = this.catchingUp.get(frame.room);
        if (waiting !== undefined) return void waiting.push(frame);
        return this.message(frame);
      }
      case "nick":
        if (frame.from === this.#name) this.#name = frame.to;
        return this.push(frame);
      case "bye":
        // Another connection took this session over: reconnecting would take it back.
        if (frame.reason === "replaced") this.#session = "";
        return this.push(frame);
      case "offer":
        return this.push(this.transfers.incoming(frame));
      case "transfer":
        this.transfers.update(frame);
        return this.push(frame);
      case "leave":
        // Removed from a room by one of its operators: no longer in it.
        if (frame.name === this.#name) this.seen.delete(frame.room);
        return this.push(frame);
      case "dm":
      case "join":
      case "topic":
      case "away":
        return this.push(frame);
    }
  }

  /**
   * Answers a key challenge, but only the one for the `hello` this link is
   * waiting on, and only once: a signature is never made for a server's
   * asking at any other time.
   */
  #challenge(link: Link, id: unknown, serverNonce: string): void {
    const identity = this.options.identity;
    const handshake = link.handshake;
    if (identity === undefined || handshake === undefined || id !== handshake.id) {
      return this.#invalid(
        new ConnectionError("invalid_frame", "Unexpected challenge outside the handshake"),
      );
    }
    link.handshake = undefined;
    const clientNonce = new Uint8Array(crypto.getRandomValues(new Uint8Array(24))).toBase64();
    let data: Uint8Array;
    try {
      data = proofBytes({
        server: handshake.server,
        tls: link.fingerprint ?? "",
        name: handshake.name,
        serverNonce,
        clientNonce,
      });
    } catch (error) {
      return this.#invalid(
        new ConnectionError(
          "invalid_frame",
          error instanceof Error ? error.message : String(error),
        ),
      );
    }
    identity.sign(data).then(
      (signature) => link.write({ type: "auth", id, nonce: clientNonce, signature }),
      () => link.destroy(),
    );
  }

  /**
   * A frame that does not follow the protocol: ignored, counted, reported
   * (the first, then each tenfold count). An answer to a request fails it
   * rather than leave it waiting.
   */
  #invalid(error: ProtocolError): void {
    this.requests.settle(
      requestIdOf(error),
      new ConnectionError("invalid_frame", `The server's answer is invalid: ${error.message}`),
    );
    const count = ++this.#invalidFrames;
    if (Number.isInteger(Math.log10(count))) {
      this.push({
        type: "error",
        code: "invalid_frame",
        message: `The server sent ${
          count === 1 ? "a frame" : `${count} frames`
        } that break the protocol; ignored (${error.message.slice(0, 200)})`,
      });
    }
  }

  /** A room message: delivered once, in order. */
  message(message: MessageEvent): void {
    const seen = this.seen.get(message.room);
    // Never deliver a message twice (a defence: the catch-up is exact).
    if (seen !== undefined && message.seq <= seen && !message.history) return;
    if (seen !== undefined) this.saw(message.room, message.seq);
    this.push(message);
  }

  /** The read loop of `link` ended. */
  onEnd(link: Link, reason: string): void {
    this.lost(link, reason);
  }

  /** A link ended: reconnect if asked to, else end the client. */
  lost(link: Link, reason: string): void {
    if (link !== this.#link || this.reconnector.active) return;
    const reconnect = this.options.reconnect;
    if (
      this.#closing || this.#ended || reconnect === undefined || reconnect === false ||
      !this.#session
    ) {
      return this.end();
    }
    this.reconnector.start(link, reason, reconnect === true ? {} : reconnect);
  }

  /** Leaves through the exit handshake, once. */
  close(timeout: number, reason?: string): Promise<void> {
    return this.#closing ??= this.#close(timeout, reason);
  }

  async #close(timeout: number, reason: string | undefined): Promise<void> {
    // Files still being offered or sent stop, and those being received: leaving must not wait.
    await this.transfers.stopAll();
    await this.reconnector.stop();
    const link = this.#link;
    if (!this.#ended && link !== undefined && !link.closed) {
      const signal = AbortSignal.timeout(timeout);
      try {
        await this.request(
          reason === undefined ? { type: "quit" } : { type: "quit", reason },
          signal,
        );
        await abortable(link.reading, signal, () => {});
      } catch {
        // The server is gone or slow; close our side anyway.
      }
    }
    link?.destroy();
    await link?.reading;
    this.end();
  }

  /** Ends the client for good: everything waiting fails with `closed`. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.transfers.connectionClosed();
    this.#watchdog.stop();
    void this.reconnector.stop();
    this.catchingUp.clear();
    this.requests.rejectAll(
      new ConnectionError("closed", "Connection closed before the server answered"),
    );
    this.events.end();
  }
}
