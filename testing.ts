/**
 * Helpers for testing bots and scripts that talk to a chat server.
 * {@linkcode startChat} starts an in-memory server on a free loopback port
 * with the limits a test wants and connects named clients; each client
 * records everything it receives, so a test can wait for the event it
 * expects with {@linkcode TestClient.waitFor} and print or compare what
 * everyone saw. `await using` tears it all down.
 *
 * @example A bot and its test
 * ```ts
 * import { equal } from "node:assert/strict";
 * import type { ChatClient } from "./mod.ts";
 * import { startChat } from "./testing.ts";
 *
 * // The bot: answers "!ping" in any room it is in.
 * async function pingBot(client: ChatClient): Promise<void> {
 *   for await (const event of client) {
 *     if (event.type === "message" && !event.history && event.text === "!ping") {
 *       await client.send("pong", { room: event.room });
 *     }
 *   }
 * }
 *
 * await using chat = await startChat({ clients: ["alice", "bot"] });
 * const { alice, bot } = chat.clients;
 * const running = pingBot(bot);
 *
 * await alice.send("!ping");
 * const reply = await alice.waitFor("message", (message) => message.from === "bot");
 * equal(reply.text, "pong");
 *
 * await bot.close();
 * await running;
 * ```
 *
 * @module
 */

import {
  type ChatClient,
  type ChatEvent,
  type ChatEventType,
  type ChatServer,
  connect,
  ConnectionError,
  type ConnectOptions,
  serve,
  type ServeOptions,
} from "./mod.ts";

export type { ChatClient, ChatEvent, ChatEventType, ChatServer, ConnectOptions, ServeOptions };

/** The event of a {@linkcode ChatEventType}. */
export type EventOfType<T extends ChatEventType> = Extract<ChatEvent, { type: T }>;

/** How clients made by {@linkcode startChat} and {@linkcode TestChat.connect} connect. */
export type TestConnectOptions = Omit<ConnectOptions, "name" | "hostname" | "port">;

/** Options for {@linkcode startChat}: the server's limits and options, and the clients. */
export interface StartChatOptions<N extends string = string>
  extends Omit<ServeOptions, "hostname" | "port" | "data" | "tls" | "plainPort"> {
  /**
   * The names of the clients to connect, in order; each one sees the later
   * ones join. They are in {@linkcode TestChat.clients} under these names.
   *
   * @default {[]}
   */
  clients?: readonly N[];
  /**
   * Serve TLS: `true` for a fresh self-signed certificate, or a certificate
   * and key (PEM). Clients pin the certificate's fingerprint.
   *
   * @default {false}
   */
  tls?: boolean | { cert: string; key: string };
  /**
   * How every client connects (its own options given to
   * {@linkcode TestChat.connect} come on top). The server's `password` and,
   * with `tls`, the pinned fingerprint are filled in.
   *
   * @default {{}}
   */
  connect?: TestConnectOptions;
  /**
   * How long {@linkcode TestClient.waitFor} waits by default, in ms.
   *
   * @default {5000}
   */
  timeout?: number;
}

/** Options for {@linkcode TestClient.waitFor}. */
export interface WaitForOptions {
  /**
   * Rejects with a `timeout` {@linkcode ConnectionError} after this many ms.
   *
   * @default {5000}
   */
  timeout?: number;
  /** Stops waiting when aborted. */
  signal?: AbortSignal;
}

/**
 * A {@linkcode ChatClient} that records every event it receives. Read events
 * with {@linkcode TestClient.waitFor}, `next()` or `for await`: all three
 * read the record, so nothing is missing from the transcript.
 */
export interface TestClient extends ChatClient {
  /** Every event received so far, in order, including those already read. */
  readonly events: readonly ChatEvent[];
  /**
   * Waits for the earliest event of a type, not returned before, that
   * matches a predicate: one that already arrived, or the next to arrive.
   * Events it passes over stay available to later calls.
   *
   * @example Wait for a message from alice
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { startChat } from "./testing.ts";
   *
   * await using chat = await startChat({ clients: ["alice", "bob"] });
   * await chat.clients.alice.send("first");
   * await chat.clients.alice.send("second");
   * const got = await chat.clients.bob.waitFor("message", (m) => m.text === "second");
   * equal(got.from, "alice");
   * equal((await chat.clients.bob.waitFor("message")).text, "first");
   * ```
   *
   * @param type The event type to wait for.
   * @param match Which event of that type; by default the first.
   * @param options A timeout and a signal.
   * @returns The event.
   * @throws {ConnectionError} With `timeout` when none comes in time (the
   * message lists what the client saw), or `closed` when the client closes
   * first.
   */
  waitFor<T extends ChatEventType>(
    type: T,
    match?: (event: EventOfType<T>) => boolean,
    options?: WaitForOptions,
  ): Promise<EventOfType<T>>;
  /**
   * Waits for the earliest event of a type not returned before, like
   * {@linkcode TestClient.waitFor} without a predicate. Unlike
   * {@linkcode ChatClient.next}, it drops nothing it passes over.
   *
   * @example Events in any order
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { startChat } from "./testing.ts";
   *
   * await using chat = await startChat({ clients: ["alice", "bob"] });
   * await chat.clients.alice.send("hi");
   * await chat.clients.alice.dm("bob", "psst");
   * equal((await chat.clients.bob.next("dm")).text, "psst");
   * equal((await chat.clients.bob.next("message")).text, "hi");
   * ```
   *
   * @param type The event type; by default any.
   * @param options A timeout and a signal.
   * @returns The event.
   */
  next<T extends ChatEventType>(type?: T, options?: WaitForOptions): Promise<EventOfType<T>>;
  /**
   * What this client saw: one line per event, without time stamps, such as
   * `#lobby <alice> hi`, `(dm) <alice> psst` or `#lobby: bob joined`.
   *
   * @example Compare what bob saw
   * ```ts
   * import { deepEqual } from "node:assert/strict";
   * import { startChat } from "./testing.ts";
   *
   * await using chat = await startChat({ clients: ["alice", "bob"] });
   * const { alice, bob } = chat.clients;
   * await alice.send("hi");
   * await alice.dm("bob", "psst");
   * await bob.waitFor("dm");
   * deepEqual(bob.transcript(), ["#lobby <alice> hi", "(dm) <alice> psst"]);
   * deepEqual(alice.transcript(), ["#lobby: bob joined"]);
   * ```
   *
   * @returns The lines, oldest first.
   */
  transcript(): string[];
}

/** A server and its clients, made by {@linkcode startChat}. */
export interface TestChat<N extends string = string> extends AsyncDisposable {
  /** The server, listening on `127.0.0.1` with history in memory. */
  readonly server: ChatServer;
  /** The address to connect to: `127.0.0.1`. */
  readonly hostname: string;
  /** The server's port. */
  readonly port: number;
  /** With `tls`: the certificate (PEM) and the fingerprint clients pin. */
  readonly tls: { cert: string; fingerprint: string } | undefined;
  /** The clients named in {@linkcode StartChatOptions.clients}. */
  readonly clients: Readonly<Record<N, TestClient>>;
  /**
   * Connects one more recording client and resolves once every client in
   * `#lobby` has seen it join.
   *
   * @example A latecomer
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { startChat } from "./testing.ts";
   *
   * await using chat = await startChat({ clients: ["alice"] });
   * await using carol = await chat.connect("carol");
   * equal((await chat.clients.alice.waitFor("join")).name, "carol");
   * ```
   *
   * @param name The name to join with.
   * @param options How to connect, on top of {@linkcode StartChatOptions.connect}.
   * @returns The client; {@linkcode TestChat.close} closes it too.
   * @throws {ProtocolError} When the server refuses the client.
   */
  connect(name: string, options?: TestConnectOptions): Promise<TestClient>;
  /**
   * What every client saw, under its name, for a failure message.
   *
   * @example Print it when a check fails
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { startChat } from "./testing.ts";
   *
   * await using chat = await startChat({ clients: ["alice", "bob"] });
   * await chat.clients.alice.send("hi");
   * await chat.clients.bob.waitFor("message");
   * equal(chat.transcript(), "alice:\n  #lobby: bob joined\nbob:\n  #lobby <alice> hi");
   * ```
   *
   * @returns The transcripts as text.
   */
  transcript(): string;
  /**
   * Closes every client, then the server. Calling it again returns the same
   * promise; `await using` calls it.
   *
   * @example Without `await using`
   * ```ts
   * import { startChat } from "./testing.ts";
   *
   * const chat = await startChat({ clients: ["alice"] });
   * try {
   *   await chat.clients.alice.send("hi");
   * } finally {
   *   await chat.close();
   * }
   * ```
   *
   * @returns A promise that resolves once everything is closed.
   */
  close(): Promise<void>;
}

const DEFAULT_TIMEOUT = 5000;

/**
 * Renders an event as one transcript line, without its time stamp.
 *
 * @param event The event.
 * @returns The line.
 */
function describeEvent(event: ChatEvent): string {
  switch (event.type) {
    case "message":
      return `${event.room} ${event.history ? "(history) " : ""}` +
        (event.action ? `* ${event.from} ${event.text}` : `<${event.from}> ${event.text}`);
    case "dm":
      return event.action
        ? `(dm) * ${event.from} ${event.text}`
        : `(dm) <${event.from}> ${event.text}`;
    case "join":
      return `${event.room}: ${event.name} joined`;
    case "leave":
      return `${event.room}: ${event.name} left (${event.reason})`;
    case "nick":
      return `${event.from} is now ${event.to}`;
    case "topic":
      return `${event.room}: ${event.from} set the topic to "${event.topic}"`;
    case "offer":
      return `${event.from} offers "${event.name}" (${event.size} bytes) to ${event.to}`;
    case "transfer":
      return `transfer ${event.transfer} ${event.state} by ${event.by}` +
        (event.reason === undefined ? "" : ` (${event.reason})`);
    case "error":
      return `error ${event.code}: ${event.message}`;
    case "bye":
      return `bye (${event.reason}): ${event.message}`;
    case "reconnecting":
      return `reconnecting (attempt ${event.attempt}): ${event.reason}`;
    case "reconnected":
      return `reconnected (${event.resumed ? "resumed" : "new session"}, ${event.missed} missed)`;
    default: {
      const { type, ...rest } = event as { type: string };
      return `${type} ${JSON.stringify(rest)}`;
    }
  }
}

interface Waiter {
  find(): boolean;
  end(): void;
}

/** Reads every event of one client into a record that the test then reads. */
class Recorder {
  readonly client: ChatClient;
  readonly events: ChatEvent[] = [];
  readonly reading: Promise<void>;
  #taken = new Set<number>();
  #waiters = new Set<Waiter>();
  #ended = false;
  #timeout: number;

  constructor(client: ChatClient, timeout: number) {
    this.client = client;
    this.#timeout = timeout;
    this.reading = this.#read();
  }

  async #read(): Promise<void> {
    try {
      for await (const event of this.client) {
        this.events.push(event);
        for (const waiter of this.#waiters) waiter.find();
      }
    } catch {
      // The client failed for good; it is closed, which is what waiters learn.
    } finally {
      this.#ended = true;
      for (const waiter of this.#waiters) waiter.end();
    }
  }

  /**
   * Resolves with the index of the first recorded event that passes `test`,
   * now or later; with `take`, marks it taken at once, so that no other wait
   * gets it.
   */
  #first(
    test: (event: ChatEvent, index: number) => boolean,
    take: boolean,
    what: string,
    options: WaitForOptions,
  ): Promise<number> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const found = this.events.findIndex(test);
    if (found !== -1) {
      if (take) this.#taken.add(found);
      return Promise.resolve(found);
    }
    if (this.#ended) return Promise.reject(this.#closedError(what));
    const timeout = options.timeout ?? this.#timeout;
    const { promise, resolve, reject } = Promise.withResolvers<number>();
    const waiter: Waiter = {
      find: () => {
        const index = this.events.findIndex(test);
        if (index === -1) return false;
        if (take) this.#taken.add(index);
        done();
        resolve(index);
        return true;
      },
      end: () => {
        done();
        reject(this.#closedError(what));
      },
    };
    const abort = () => {
      done();
      reject(signal!.reason);
    };
    const timer = Number.isFinite(timeout)
      ? setTimeout(() => {
        done();
        const seen = this.events.length === 0
          ? " nothing"
          : ":" + this.transcript().map((line) => `\n  ${line}`).join("");
        reject(
          new ConnectionError(
            "timeout",
            `Timed out after ${timeout} ms waiting for ${what}; "${this.client.name}" saw${seen}`,
          ),
        );
      }, timeout)
      : undefined;
    const done = () => {
      clearTimeout(timer);
      this.#waiters.delete(waiter);
      signal?.removeEventListener("abort", abort);
    };
    this.#waiters.add(waiter);
    signal?.addEventListener("abort", abort, { once: true });
    return promise;
  }

  #closedError(what: string): ConnectionError {
    return new ConnectionError(
      "closed",
      `The connection of "${this.client.name}" ended while waiting for ${what}`,
    );
  }

  async waitFor<T extends ChatEventType>(
    type: T | undefined,
    match: ((event: EventOfType<T>) => boolean) | undefined,
    options: WaitForOptions = {},
  ): Promise<EventOfType<T>> {
    const what = type === undefined
      ? "an event"
      : `${match === undefined ? "a" : "a matching"} "${type}" event`;
    const index = await this.#first(
      (event, index) =>
        !this.#taken.has(index) && (type === undefined || event.type === type) &&
        (match === undefined || match(event as EventOfType<T>)),
      true,
      what,
      options,
    );
    return this.events[index] as EventOfType<T>;
  }

  /** Waits for an event without taking it. */
  async observe(test: (event: ChatEvent) => boolean, what: string): Promise<void> {
    await this.#first(test, false, what, {});
  }

  transcript(): string[] {
    return this.events.map(describeEvent);
  }

  async *iterate(): AsyncGenerator<ChatEvent> {
    while (true) {
      try {
        yield await this.waitFor(undefined, undefined, { timeout: Infinity });
      } catch (error) {
        if (error instanceof ConnectionError && error.code === "closed") return;
        throw error;
      }
    }
  }
}

function recording(recorder: Recorder): TestClient {
  const own: Record<PropertyKey, unknown> = {
    waitFor: recorder.waitFor.bind(recorder),
    next: <T extends ChatEventType>(type?: T, options?: WaitForOptions) =>
      recorder.waitFor(type, undefined, options),
    transcript: recorder.transcript.bind(recorder),
    [Symbol.asyncIterator]: recorder.iterate.bind(recorder),
  };
  // The client's methods run on the client itself, where its private fields are.
  return new Proxy(recorder.client, {
    get(target, key) {
      if (key === "events") return recorder.events;
      if (Object.hasOwn(own, key)) return own[key];
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
    has(target, key) {
      return key === "events" || Object.hasOwn(own, key) || Reflect.has(target, key);
    },
  }) as TestClient;
}

class Chat<N extends string> implements TestChat<N> {
  readonly server: ChatServer;
  readonly hostname = "127.0.0.1";
  readonly port: number;
  readonly tls: { cert: string; fingerprint: string } | undefined;
  readonly clients = {} as Record<N, TestClient>;
  #recorders: Recorder[] = [];
  #connect: TestConnectOptions;
  #timeout: number;
  #closing: Promise<void> | undefined;

  constructor(
    server: ChatServer,
    tls: { cert: string; fingerprint: string } | undefined,
    connect: TestConnectOptions,
    timeout: number,
  ) {
    this.server = server;
    this.port = server.addr.port;
    this.tls = tls;
    this.#connect = connect;
    this.#timeout = timeout;
  }

  async connect(name: string, options: TestConnectOptions = {}): Promise<TestClient> {
    if (this.#closing !== undefined) {
      throw new ConnectionError("closed", `Cannot connect "${name}": the test chat is closed`);
    }
    const client = await connect({
      ...this.#connect,
      ...options,
      name,
      hostname: this.hostname,
      port: this.port,
    });
    const recorder = new Recorder(client, this.#timeout);
    this.#recorders.push(recorder);
    // Wait until the others have seen the join, so that no transcript depends on timing.
    const lobby = client.room;
    const waits = this.#recorders
      .filter((other) =>
        other !== recorder && !other.client.closed && client.members.includes(other.client.name)
      )
      .map((other) =>
        other.observe(
          (event) => event.type === "join" && event.room === lobby && event.name === client.name,
          `"${client.name}" to join ${lobby}`,
        )
      );
    await Promise.all(waits);
    return recording(recorder);
  }

  transcript(): string {
    return this.#recorders.map((recorder) => {
      const lines = recorder.transcript();
      return `${recorder.client.name}:` +
        (lines.length === 0 ? " (nothing)" : lines.map((line) => `\n  ${line}`).join(""));
    }).join("\n");
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.allSettled(this.#recorders.map((recorder) => recorder.client.close()));
      await Promise.allSettled(this.#recorders.map((recorder) => recorder.reading));
      await this.server.close();
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Starts a chat server for a test, on a free port of `127.0.0.1` with
 * history in memory, and connects the named clients one after another.
 * Resolves once every client has seen the later ones join, so the
 * transcripts start the same way on every run.
 *
 * @example Limits and a TLS server
 * ```ts
 * import { equal, rejects } from "node:assert/strict";
 * import { ProtocolError } from "./mod.ts";
 * import { startChat } from "./testing.ts";
 *
 * await using chat = await startChat({ clients: ["alice", "bob"], tls: true, maxTextLength: 64 });
 * const { alice, bob } = chat.clients;
 * await rejects(alice.send("x".repeat(65)), ProtocolError);
 * await alice.send("short enough");
 * equal((await bob.waitFor("message")).text, "short enough");
 * ```
 *
 * @typeParam N The client names.
 * @param options The server's limits and options, and the clients to connect.
 * @returns The server and the clients; close it with `await using` or
 * {@linkcode TestChat.close}.
 * @throws {ProtocolError} When a client cannot connect (everything started
 * is closed first).
 * @throws {RangeError} When a limit is not above 0.
 */
export async function startChat<const N extends string = never>(
  options: StartChatOptions<N> = {},
): Promise<TestChat<N>> {
  const { clients = [], tls, connect: connectOptions = {}, timeout, ...serveOptions } = options;
  let certificate: { cert: string; key: string; fingerprint: string } | undefined;
  if (tls === true) {
    const { createSelfSignedCertificate } = await import("./_common/tls.ts");
    certificate = await createSelfSignedCertificate(["localhost", "127.0.0.1", "::1"]);
  } else if (typeof tls === "object") {
    const { certificateFingerprint } = await import("./_common/tls.ts");
    certificate = { ...tls, fingerprint: await certificateFingerprint(tls.cert) };
  }
  const server = await serve({
    ...serveOptions,
    hostname: "127.0.0.1",
    port: 0,
    data: ":memory:",
    ...(certificate === undefined ? {} : { tls: { cert: certificate.cert, key: certificate.key } }),
  });
  const defaults: TestConnectOptions = {};
  if (options.password !== undefined) defaults.password = options.password;
  if (certificate !== undefined) defaults.tls = { fingerprint: certificate.fingerprint };
  const chat = new Chat<N>(
    server,
    certificate === undefined
      ? undefined
      : { cert: certificate.cert, fingerprint: certificate.fingerprint },
    { ...defaults, ...connectOptions },
    timeout ?? DEFAULT_TIMEOUT,
  );
  try {
    for (const name of clients) chat.clients[name] = await chat.connect(name);
  } catch (error) {
    await chat.close();
    throw error;
  }
  return chat;
}
