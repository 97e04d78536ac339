/**
 * The chat client library: {@linkcode connect} joins a server and returns a
 * {@linkcode ChatClient} to send messages and await events, which makes a
 * whole conversation scriptable from a test. With `reconnect: true` the
 * client survives a broken connection: it reconnects with backoff, resumes
 * its session, fetches exactly the messages it missed and re-sends what was
 * not acknowledged, without storing anything twice.
 *
 * @module
 */

import { ConnectionError } from "./protocol/errors.ts";
import type {
  DmFrame,
  HistoryFrame,
  JoinFrame,
  MessageEvent,
  PartFrame,
  RoomInfo,
  SearchFrame,
  SendFrame,
  TopicFrame,
} from "./protocol/frames.ts";
import { Core } from "./_client/core.ts";
import { banRequest, kickRequest, muteRequest, unbanRequest } from "./_client/moderation.ts";
import { answered } from "./_client/requests.ts";
import type {
  ChatEvent,
  ChatEventType,
  CloseOptions,
  ConnectOptions,
  DmOptions,
  HistoryOptions,
  JoinedRoom,
  JoinOptions,
  KickOptions,
  LeaveOptions,
  NextOptions,
  RequestOptions,
  Roster,
  SearchOptions,
  SearchPage,
  SendFileOptions,
  SendOptions,
  SentDm,
  SentFile,
  SentMessage,
  WhoisResult,
  WhoOptions,
} from "./_client/types.ts";

export type {
  AcceptOptions,
  ChatEvent,
  ChatEventType,
  CloseOptions,
  ConnectOptions,
  DmOptions,
  ErrorEvent,
  HistoryOptions,
  IncomingOffer,
  JoinedRoom,
  JoinOptions,
  KickOptions,
  LeaveOptions,
  NextOptions,
  ReceivedFile,
  ReconnectedEvent,
  ReconnectingEvent,
  ReconnectOptions,
  RequestOptions,
  Roster,
  SearchOptions,
  SearchPage,
  SendFileOptions,
  SendOptions,
  SentDm,
  SentFile,
  SentMessage,
  TlsOptions,
  WhoisResult,
  WhoOptions,
} from "./_client/types.ts";
export { createIdentity, type Identity, loadIdentity } from "./_common/identity.ts";

/** Makes a ChatClient around a connected core: set by the class, for connect(). */
let wrap: (core: Core) => ChatClient;

/**
 * A connection to a chat server, made by {@linkcode connect}. Events arrive
 * in order and wait in a queue until read with {@linkcode ChatClient.next} or
 * `for await`. The client's own room messages are not events: `send()`
 * returns them.
 */
export class ChatClient implements AsyncDisposable, AsyncIterable<ChatEvent> {
  #core: Core;

  /** Use {@linkcode connect}. */
  private constructor(core: Core) {
    this.#core = core;
  }

  static {
    // connect() makes clients; nothing else can.
    wrap = (core) => new ChatClient(core);
  }

  /** The name the server registered for this client. */
  get name(): string {
    return this.#core.name;
  }

  /** The room this client joined first. */
  get room(): string {
    return this.#core.room;
  }

  /** Who was in the room when this client joined, itself included (only itself in a crowd). */
  get members(): readonly string[] {
    return this.#core.members;
  }

  /**
   * How many were in the room when this client joined, itself included:
   * {@linkcode ChatClient.members}' length, or more in a crowded room, whose
   * names the server does not list.
   */
  get memberCount(): number {
    return this.#core.memberCount;
  }

  /** The rooms this client is in. */
  get joined(): readonly string[] {
    return [...this.#core.seen.keys()];
  }

  /**
   * The token that resumes this session after a lost connection (what
   * `reconnect` uses). Treat it like a password: it takes over the name.
   */
  get session(): string {
    return this.#core.session;
  }

  /** The server's software name and version. */
  get server(): string {
    return this.#core.server;
  }

  /**
   * How many frames from the server did not follow the protocol and were
   * ignored (the first one, and then each tenfold count, is also reported as
   * an `error` event with code `invalid_frame`).
   */
  get invalidFrames(): number {
    return this.#core.invalidFrames;
  }

  /** Whether the client has closed for good. */
  get closed(): boolean {
    return this.#core.ended;
  }

  /** Whether the client is connected right now (`false` while reconnecting). */
  get connected(): boolean {
    return this.#core.connected;
  }

  /**
   * Sends a message to a room and resolves once the server has stored it.
   * While reconnecting, the message waits and goes out after the reconnect;
   * its idempotency key makes sure it is stored once, even if it is sent
   * twice.
   *
   * @example Send and read the stamp
   * ```ts ignore
   * const sent = await client.send("hello");
   * console.log(sent.seq, sent.ts);
   * ```
   *
   * @param text The message; may hold several lines.
   * @param options The room, whether it is an action or a notice, and a signal.
   * @returns The message as stored, with its sequence number and time.
   * @throws {ProtocolError} When the server refuses it (`invalid_text`, `not_in_room`, …).
   * @throws {ConnectionError} With `closed` when the connection closes first.
   */
  async send(text: string, options: SendOptions = {}): Promise<SentMessage> {
    const room = options.room ?? this.#core.room;
    const action = options.action === true;
    const frame: Omit<SendFrame, "id"> = { type: "send", room, text, key: crypto.randomUUID() };
    if (action) frame.action = true;
    if (options.notice === true) frame.notice = true;
    const ack = await this.#core.request(frame, options.signal);
    const sent: SentMessage = {
      room: answered(ack, "room"),
      from: this.#core.name,
      text,
      ts: answered(ack, "ts"),
      seq: answered(ack, "seq"),
    };
    this.#core.sawOwn(sent.room, sent.seq);
    if (action) sent.action = true;
    if (options.notice === true) sent.notice = true;
    return sent;
  }

  /**
   * Sends a private message to one user.
   *
   * @param to The recipient's name.
   * @param text The message.
   * @param options Whether it is an action or a notice, and a signal.
   * @returns The message as delivered.
   * @throws {ProtocolError} With `no_such_user` when nobody has that name.
   */
  async dm(to: string, text: string, options: DmOptions = {}): Promise<SentDm> {
    const action = options.action === true;
    const frame: Omit<DmFrame, "id"> = { type: "dm", to, text, key: crypto.randomUUID() };
    if (action) frame.action = true;
    if (options.notice === true) frame.notice = true;
    const ack = await this.#core.request(frame, options.signal);
    const sent: SentDm = {
      from: this.#core.name,
      to: answered(ack, "to"),
      text,
      ts: answered(ack, "ts"),
    };
    if (action) sent.action = true;
    if (options.notice === true) sent.notice = true;
    if (ack.away) sent.away = ack.away;
    return sent;
  }

  /**
   * Marks this user away, with a message others see in `who`, `whois` and
   * when they send a private message; `""` marks the user back.
   *
   * @example Step out and come back
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { connect, serve } from "@chat/chat";
   *
   * await using server = await serve({ hostname: "127.0.0.1", port: 0 });
   * await using alice = await connect({ port: server.addr.port, name: "alice" });
   * await using bob = await connect({ port: server.addr.port, name: "bob" });
   * equal(await alice.away("lunch"), "lunch");
   * equal((await bob.dm("alice", "ping?")).away, "lunch");
   * equal(await alice.away(""), "");
   * ```
   *
   * @param message Why the user is away (at most 300 characters); `""` to come back.
   * @param options A signal.
   * @returns The away message now, `""` when back.
   * @throws {ProtocolError} With `invalid_text` for a message that is too long, `muted`.
   */
  async away(message: string, options: RequestOptions = {}): Promise<string> {
    const ack = await this.#core.request({ type: "away", message }, options.signal);
    this.#core.away = ack.away ?? "";
    return this.#core.away;
  }

  /**
   * Lists who is in a room, and who of them is away.
   *
   * @param options The room and a signal.
   * @returns The names, sorted, the away messages and the room's operators.
   */
  async roster(options: WhoOptions = {}): Promise<Roster> {
    const ack = await this.#core.request(
      { type: "who", room: options.room ?? this.#core.room },
      options.signal,
    );
    return {
      room: ack.room ?? options.room ?? this.#core.room,
      names: ack.names ?? [],
      away: { ...ack.awayMessages },
      ops: ack.ops ?? [],
    };
  }

  /**
   * Lists who is in a room.
   *
   * @param options The room and a signal.
   * @returns The names, sorted.
   */
  async who(options: WhoOptions = {}): Promise<string[]> {
    const ack = await this.#core.request(
      { type: "who", room: options.room ?? this.#core.room },
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
    const ack = await this.#core.request({ type: "nick", name }, options.signal);
    this.#core.renamed(answered(ack, "name"));
    return this.#core.name;
  }

  /**
   * Enters a room, creating it if nobody is there. Its latest messages arrive
   * first as `message` events marked `history: true`.
   *
   * @example Join and talk
   * ```ts ignore
   * await client.join("#dev");
   * await client.send("hi devs", { room: "#dev" });
   * ```
   *
   * @param room The room, starting with `#`.
   * @param options How much history to replay, and a signal.
   * @returns The room's topic, members and last sequence number.
   * @throws {ProtocolError} With `invalid_room` for a bad name.
   */
  async join(room: string, options: JoinOptions = {}): Promise<JoinedRoom> {
    const frame: Omit<JoinFrame, "id"> = { type: "join", room };
    if (options.history !== undefined) frame.history = options.history;
    const ack = await this.#core.request(frame, options.signal);
    const joined = answered(ack, "room");
    this.#core.saw(joined, ack.seq ?? 0);
    return {
      room: joined,
      topic: ack.topic ?? "",
      members: ack.names ?? [],
      count: ack.count ?? ack.names?.length ?? 0,
      ops: ack.ops ?? [],
      seq: ack.seq ?? 0,
    };
  }

  /**
   * Leaves a room; the others see a `leave` event with reason `part` (and
   * the reason given, as its `message`).
   *
   * @param room The room.
   * @param options Why, and a signal.
   * @throws {ProtocolError} With `not_in_room`, or `invalid_text` for a reason
   * longer than 300 characters.
   */
  async leave(room: string, options: LeaveOptions = {}): Promise<void> {
    const frame: Omit<PartFrame, "id"> = { type: "part", room };
    if (options.reason !== undefined) frame.reason = options.reason;
    await this.#core.request(frame, options.signal);
    this.#core.seen.delete(room);
  }

  /**
   * Lists the rooms that have people in them.
   *
   * @param options A signal.
   * @returns Each room's name, member count and topic, sorted by name.
   */
  async rooms(options: RequestOptions = {}): Promise<RoomInfo[]> {
    const ack = await this.#core.request({ type: "rooms" }, options.signal);
    return ack.rooms ?? [];
  }

  /**
   * Reads a room's topic, or sets it when `text` is given (`""` clears it).
   *
   * @param room The room.
   * @param text The new topic.
   * @param options A signal.
   * @returns The topic now.
   */
  async topic(room: string, text?: string, options: RequestOptions = {}): Promise<string> {
    const frame: Omit<TopicFrame, "id"> = { type: "topic", room };
    if (text !== undefined) frame.topic = text;
    const ack = await this.#core.request(frame, options.signal);
    return ack.topic ?? "";
  }

  /**
   * Reads a room's stored messages, oldest first: the latest `limit` ones,
   * or those before `before` (to page backwards), or after `after`.
   *
   * @param room The room (the client must be in it).
   * @param options Which messages, and a signal.
   * @returns The messages, marked `history: true`.
   */
  async history(room: string, options: HistoryOptions = {}): Promise<MessageEvent[]> {
    const frame: Omit<HistoryFrame, "id"> = { type: "history", room, limit: options.limit ?? 50 };
    if (options.before !== undefined) frame.before = options.before;
    if (options.after !== undefined) frame.after = options.after;
    const ack = await this.#core.request(frame, options.signal);
    return ack.messages ?? [];
  }

  /**
   * Searches a room's stored messages for a text (ignoring the case of ASCII
   * letters), newest first, one page at a time: the server reads a bounded
   * stretch of history per request, so a page may hold fewer messages than
   * asked for (even none) and still have a `next`.
   *
   * @example Find a message and page on
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { connect, serve } from "@chat/chat";
   *
   * await using server = await serve({ hostname: "127.0.0.1", port: 0 });
   * await using alice = await connect({ port: server.addr.port, name: "alice" });
   * await alice.send("the build is green");
   * await alice.send("lunch?");
   * const page = await alice.search("BUILD");
   * equal(page.messages.map((message) => message.text).join(), "the build is green");
   * equal(page.next, undefined);
   * ```
   *
   * @param text What to look for (1 to 100 characters).
   * @param options The room, where to start, how many, and a signal.
   * @returns The messages found, oldest first, and where the next page starts.
   * @throws {ProtocolError} With `not_in_room`, `invalid_text` or `storage_failed`.
   */
  async search(text: string, options: SearchOptions = {}): Promise<SearchPage> {
    const frame: Omit<SearchFrame, "id"> = {
      type: "search",
      room: options.room ?? this.#core.room,
      text,
    };
    if (options.before !== undefined) frame.before = options.before;
    if (options.limit !== undefined) frame.limit = options.limit;
    const ack = await this.#core.request(frame, options.signal);
    const page: SearchPage = { room: ack.room ?? frame.room, messages: ack.messages ?? [] };
    if (ack.next !== undefined) page.next = ack.next;
    return page;
  }

  /**
   * Tells whether a name is online and which key it is bound to.
   *
   * @param name The name.
   * @param options A signal.
   * @returns What the server knows.
   * @throws {ProtocolError} With `no_such_user` for a name nobody uses or claimed.
   */
  async whois(name: string, options: RequestOptions = {}): Promise<WhoisResult> {
    const ack = await this.#core.request({ type: "whois", name }, options.signal);
    const result: WhoisResult = {
      name: ack.name ?? name,
      online: ack.online === true,
      op: ack.op === true,
    };
    if (ack.fingerprint !== undefined) result.fingerprint = ack.fingerprint;
    if (ack.away) result.away = ack.away;
    return result;
  }

  /**
   * Operators: disconnects a user; with `room`, a room's operators (its
   * creator, and the server's operators) remove them from that room only.
   *
   * @param name The name.
   * @param reason Why, shown to everyone.
   * @param options The room, and a signal.
   * @throws {ProtocolError} With `not_operator` or `no_such_user`.
   */
  async kick(name: string, reason?: string, options: KickOptions = {}): Promise<void> {
    const frame = kickRequest(name, reason);
    if (options.room !== undefined) frame.room = options.room;
    await this.#core.request(frame, options.signal);
  }

  /**
   * A room's operators: lets only operators set its topic (IRC's `+t`), or
   * everyone again.
   *
   * @param room The room.
   * @param locked Whether only operators may set the topic.
   * @param options A signal.
   * @returns Whether the topic is locked now.
   * @throws {ProtocolError} With `not_operator` or `not_in_room`.
   */
  async lockTopic(room: string, locked: boolean, options: RequestOptions = {}): Promise<boolean> {
    const ack = await this.#core.request({ type: "mode", room, topicLock: locked }, options.signal);
    return ack.topicLock === true;
  }

  /**
   * Operators: bans a name, a key (`key:SHA256:…`) or an address (`ip:…`),
   * and disconnects whoever matches. Bans are stored and survive restarts.
   *
   * @param target A name, `key:FINGERPRINT` or `ip:ADDRESS`.
   * @param options How long (seconds; for ever by default), why, and a signal.
   * @throws {ProtocolError} With `not_operator`.
   */
  async ban(
    target: string,
    options: RequestOptions & { duration?: number; reason?: string } = {},
  ): Promise<void> {
    await this.#core.request(banRequest(target, options), options.signal);
  }

  /**
   * Operators: lifts a ban.
   *
   * @param target As given to {@linkcode ChatClient.ban}.
   * @param options A signal.
   */
  async unban(target: string, options: RequestOptions = {}): Promise<void> {
    await this.#core.request(unbanRequest(target), options.signal);
  }

  /**
   * Operators: stops a name from sending messages; `duration: 0` lifts it.
   *
   * @param name The name.
   * @param options How long (seconds; for ever by default), why, and a signal.
   */
  async mute(
    name: string,
    options: RequestOptions & { duration?: number; reason?: string } = {},
  ): Promise<void> {
    await this.#core.request(muteRequest(name, options), options.signal);
  }

  /**
   * Checks the connection: resolves when the server answers.
   *
   * @param options A signal.
   */
  async ping(options: RequestOptions = {}): Promise<void> {
    await this.#core.request({ type: "ping" }, options.signal);
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
   * @throws {ConnectionError} With `timeout` when it does not come in time, or
   * `closed` when the connection ends first.
   */
  next<T extends ChatEventType>(
    type?: T,
    options: NextOptions = {},
  ): Promise<Extract<ChatEvent, { type: T }>> {
    return this.#core.events.next(type, options);
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
        if (error instanceof ConnectionError && error.code === "closed") return;
        throw error;
      }
    }
  }

  /**
   * Leaves through the exit handshake: asks to quit, waits for the server's
   * confirmation and for it to close the connection. Safe to call more than
   * once. A reconnecting client stops trying.
   *
   * @param options How long to wait for the server, and why you leave.
   */
  close(options: CloseOptions = {}): Promise<void> {
    return this.#core.close(options.timeout ?? 5000, options.reason);
  }

  /** Same as {@linkcode ChatClient.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Offers a file to a user or a room and streams it to everyone who
   * accepts, through the server, which never holds it whole. Resolves when
   * the receiver has checked it (for a room: when the offer expires).
   *
   * @example Send bytes to bob
   * ```ts ignore
   * const sent = await alice.sendFile("bob", new TextEncoder().encode("hello"), { name: "hello.txt" });
   * console.log(sent.sha256, sent.to);
   * ```
   *
   * @param to A name, or a room (`#…`).
   * @param source A file path, the bytes, or a stream (spooled to a temporary file first).
   * @param options The name and type to announce, progress, and a signal that cancels.
   * @returns What was sent, and to whom.
   * @throws {ProtocolError} With `transfer_failed` when declined, cancelled, expired or not received whole.
   */
  sendFile(
    to: string,
    source: string | URL | Uint8Array | ReadableStream<Uint8Array>,
    options: SendFileOptions = {},
  ): Promise<SentFile> {
    return this.#core.transfers.sendFile(to, source, options);
  }

  /**
   * Stops a transfer: an offer you made (every receiver), or one you are receiving.
   *
   * @param transfer The transfer id.
   * @param options A signal.
   */
  async cancelTransfer(transfer: string, options: RequestOptions = {}): Promise<void> {
    await this.#core.request({ type: "cancel", transfer }, options.signal);
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
 * @throws {ProtocolError} With `name_taken`, `invalid_name`, `name_claimed`,
 * `banned` or `unauthorized` when the server refuses to let the client in.
 * @throws {ConnectionError} With `unreachable` when the server cannot be
 * reached, `certificate_changed` when its certificate does not match the
 * pinned one, `timeout` when it does not answer in time, and `closed` when
 * it closes the connection first.
 */
export async function connect(options: ConnectOptions): Promise<ChatClient> {
  return wrap(await Core.open(options));
}
