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

import denoConfig from "./deno.json" with { type: "json" };
import { type ErrorCode, ProtocolError } from "./protocol/errors.ts";
import type {
  AckFrame,
  ByeFrame,
  DmEvent,
  FileOfferEvent,
  JoinEvent,
  LeaveEvent,
  MessageEvent,
  NickEvent,
  RoomInfo,
  ServerFrame,
  TopicEvent,
  TransferEvent,
  WelcomeFrame,
} from "./protocol/frames.ts";
import { parseServerFrame, requestIdOf } from "./protocol/frames.ts";
import { LOBBY, PROTOCOL_VERSION } from "./protocol/limits.ts";
import { LineDecoder } from "./protocol/line_decoder.ts";
import { SendQueue } from "./_common/send_queue.ts";
import { type Identity, proofBytes } from "./_common/identity.ts";
import {
  downloadsDir,
  hashFile,
  mediaType,
  moveToFreeName,
  safeFileName,
  sha256,
} from "./_client/files.ts";
import { basename, join } from "node:path";
import { statfs } from "node:fs/promises";

/** An `error` frame that answered no request: the server could not read something we sent. */
export interface ErrorEvent {
  /** The frame type. */
  type: "error";
  /** The machine-readable error code. */
  code: ErrorCode;
  /** What happened, for people. */
  message: string;
}

/** The connection broke; the client waits `delay` ms and tries again. */
export interface ReconnectingEvent {
  /** The event type. */
  type: "reconnecting";
  /** Which attempt this is, from 1. */
  attempt: number;
  /** How long the client waits before it, in ms. */
  delay: number;
  /** Why the last connection or attempt failed. */
  reason: string;
}

/** The client is connected again; the missed messages come next, in order. */
export interface ReconnectedEvent {
  /** The event type. */
  type: "reconnected";
  /** Whether the server still held the session (name and rooms kept). */
  resumed: boolean;
  /** How many messages were missed and are delivered now. */
  missed: number;
  /**
   * How many earlier missed messages were not fetched, because a catch-up
   * fetches at most {@linkcode ReconnectOptions.maxCatchUp} per room: read
   * them with {@linkcode ChatClient.history}. By room; absent when none.
   */
  skipped?: Record<string, number>;
}

/** Every event a client can receive, told apart by `type`. */
export type ChatEvent =
  | MessageEvent
  | DmEvent
  | JoinEvent
  | LeaveEvent
  | NickEvent
  | TopicEvent
  | ErrorEvent
  | ByeFrame
  | ReconnectingEvent
  | ReconnectedEvent
  | IncomingOffer
  | TransferEvent;

/** Options for {@linkcode IncomingOffer.accept}. */
export interface AcceptOptions {
  /**
   * Where to save the file.
   *
   * @default {"~/Downloads"}
   */
  dir?: string;
  /** Called as bytes arrive (at most every 100 ms, and at the end). */
  onProgress?: (bytes: number, total: number) => void;
  /** Cancels the transfer when aborted. */
  signal?: AbortSignal;
  /**
   * Gives up when no byte arrives for this long, in ms.
   *
   * @default {30000}
   */
  stallTimeout?: number;
}

/** A file that arrived whole. */
export interface ReceivedFile {
  /** Where it was saved. */
  path: string;
  /** Its size in bytes. */
  size: number;
  /** Its SHA-256 (hex), which matched the offer. */
  sha256: string;
}

/** A file offered to this client: accept or decline it. */
export interface IncomingOffer extends FileOfferEvent {
  /**
   * Accepts: streams the file into `dir` under a safe, unused name, and
   * keeps it only if its size and SHA-256 match the offer.
   */
  accept(options?: AcceptOptions): Promise<ReceivedFile>;
  /** Declines. */
  decline(): Promise<void>;
}

/** Options for {@linkcode ChatClient.sendFile}. */
export interface SendFileOptions extends RequestOptions {
  /** The name the receiver sees; by default the path's last part, or `file`. */
  name?: string;
  /** The media type; by default guessed from the name. */
  mime?: string;
  /** Called as bytes go out to each receiver (at most every 100 ms, and at the end). */
  onProgress?: (bytes: number, total: number, to: string) => void;
  /** Called with the transfer id once the server has taken the offer. */
  onOffer?: (transfer: string) => void;
}

/** A file that was sent. */
export interface SentFile {
  /** The transfer id. */
  transfer: string;
  /** The file's size. */
  size: number;
  /** Its SHA-256 (hex). */
  sha256: string;
  /** Who received it whole (one name for a direct offer; room members who accepted). */
  to: string[];
}

/** The type names of {@linkcode ChatEvent}. */
export type ChatEventType = ChatEvent["type"];

/** A room message as the server stored it: the `message` event the others received. */
export type SentMessage = Omit<MessageEvent, "type" | "history">;

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

/** A room after {@linkcode ChatClient.join}. */
export interface JoinedRoom {
  /** The room's name. */
  room: string;
  /** Its topic, `""` when none. */
  topic: string;
  /** Everyone in it, sorted, the client included. */
  members: string[];
  /** The sequence number of its last message. */
  seq: number;
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

/** Options for {@linkcode ChatClient.join}. */
export interface JoinOptions extends RequestOptions {
  /**
   * How many recent messages to replay as `message` events marked
   * `history: true`; the server caps it.
   *
   * @default {50}
   */
  history?: number;
}

/** Options for {@linkcode ChatClient.history}. */
export interface HistoryOptions extends RequestOptions {
  /** Only messages before this sequence number (to page backwards). */
  before?: number;
  /** Only messages after this sequence number. */
  after?: number;
  /**
   * How many at most; the server caps it (200 by default).
   *
   * @default {50}
   */
  limit?: number;
}

/** Options for {@linkcode ChatClient.next}. */
export interface NextOptions {
  /** Rejects with a `timeout` {@linkcode ProtocolError} after this many ms. */
  timeout?: number;
  /** Stops waiting when aborted. */
  signal?: AbortSignal;
}

/** How {@linkcode connect} reconnects after a lost connection. */
export interface ReconnectOptions {
  /**
   * The first delay, in ms; each attempt doubles it, with random jitter.
   *
   * @default {250}
   */
  minDelay?: number;
  /**
   * The longest delay, in ms.
   *
   * @default {10000}
   */
  maxDelay?: number;
  /**
   * Gives up after this many attempts in a row; the client then closes.
   * A connection that ends within 10 s of its welcome does not start the
   * count (or the delays) again.
   *
   * @default {Infinity}
   */
  maxAttempts?: number;
  /**
   * Fetches at most this many missed messages per room after a reconnect
   * (the latest ones); the {@linkcode ReconnectedEvent} tells how many
   * earlier ones were left for {@linkcode ChatClient.history}.
   *
   * @default {1000}
   */
  maxCatchUp?: number;
}

/**
 * How long a connection must have lived after its welcome, in ms, before a
 * break counts as new and the reconnect backoff starts again from its first
 * delay. A server that welcomes and drops at once keeps the backoff growing.
 */
const STABLE_CONNECTION_MS = 10_000;

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
  /**
   * How many recent `#lobby` messages to replay on joining, as `message`
   * events marked `history: true`.
   *
   * @default {50}
   */
  history?: number;
  /**
   * Reconnect by itself when the connection breaks, keeping the name, the
   * rooms and every message: `true` for the defaults, or options.
   *
   * @default {false}
   */
  reconnect?: boolean | ReconnectOptions;
  /** The server's password, if it has one. */
  password?: string;
  /**
   * The user's key: proves the name is theirs. Names are bound to the first
   * key that uses them; `chat connect` keeps one in the config directory.
   */
  identity?: Identity;
  /**
   * Connect over TLS: `true` to verify the server's certificate with the
   * system's trusted authorities, `{ caCerts }` to trust given PEM
   * certificates, or `{ fingerprint: "SHA256:…" }` to trust exactly the
   * certificate with that fingerprint (what `chat serve --tls` prints).
   *
   * @default {false}
   */
  tls?: boolean | TlsOptions;
  /** Gives up connecting when aborted. */
  signal?: AbortSignal;
}

/** How to trust a TLS server. */
export interface TlsOptions {
  /** PEM certificates to trust instead of the system's authorities. */
  caCerts?: string[];
  /** Trust exactly the certificate with this SHA-256 fingerprint. */
  fingerprint?: string;
}

/** What {@linkcode ChatClient.whois} tells about a name. */
export interface WhoisResult {
  /** The name. */
  name: string;
  /** Whether someone with that name is online. */
  online: boolean;
  /** Whether they are an operator. */
  op: boolean;
  /** The fingerprint of the key the name is bound to, if any. */
  fingerprint?: string;
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
  frame: Record<string, unknown>;
  resolve: (ack: AckFrame) => void;
  reject: (error: Error) => void;
}

interface Waiter {
  type: ChatEventType | undefined;
  resolve: (event: ChatEvent) => void;
  reject: (error: Error) => void;
}

const encoder = new TextEncoder();

async function writeAll(
  target: { write(bytes: Uint8Array): Promise<number> },
  bytes: Uint8Array,
): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await target.write(bytes.subarray(offset));
}
const MAX_SERVER_FRAME_BYTES = 16 * 1024 * 1024;
const READ_BUFFER_BYTES = 64 * 1024;
const CATCH_UP_PAGE = 200;
const MAX_CATCH_UP = 1000;
const STALL_TIMEOUT = 30_000;
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

function describe(type: ChatEventType | undefined): string {
  return type === undefined ? "an event" : `a "${type}" event`;
}

/** A field an answer must carry: what a server says is checked, never assumed. */
function answered<K extends "room" | "seq" | "ts" | "to" | "name" | "transfer" | "token">(
  ack: AckFrame,
  field: K,
): NonNullable<AckFrame[K]> {
  const value = ack[field];
  if (value === undefined) {
    throw new ProtocolError("invalid_frame", `The server's answer has no "${field}"`);
  }
  return value as NonNullable<AckFrame[K]>;
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

/** The address as dialed, `host:port` (an IPv6 host in brackets): what a key proof names. */
function serverAddress(hostname: string, port: number): string {
  return `${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
}

function describeAddress(hostname: string, port: number): string {
  return `"${serverAddress(hostname, port)}"`;
}

/** A new connection, and the fingerprint of the TLS certificate it was made with, if known. */
interface Dialed {
  conn: Deno.Conn;
  fingerprint?: string;
}

/** What a TLS handshake reports when the other side answers in plain text. */
const NOT_TLS = /InvalidContentType|wrong version number|corrupt message/i;

async function dial(
  hostname: string,
  port: number,
  tls: boolean | TlsOptions | undefined,
  signal: AbortSignal,
  timeout: AbortSignal,
  needFingerprint = false,
): Promise<Dialed> {
  const where = describeAddress(hostname, port);
  let caCerts = typeof tls === "object" ? tls.caCerts : undefined;
  let pinned = false;
  let fingerprint: string | undefined;
  if (tls && (typeof tls !== "object" || tls.fingerprint === undefined) && needFingerprint) {
    // A key proof names the certificate: read it first, then connect verifying as usual.
    // Should the server hand a different one to the verified connection, it refuses the proof.
    const { certificateFingerprint, fetchPeerCertificate } = await import("./_common/tls.ts");
    try {
      fingerprint = await certificateFingerprint(
        await fetchPeerCertificate(hostname, port, { signal }),
      );
    } catch {
      // The verified connection below reports what is wrong.
    }
  }
  if (typeof tls === "object" && tls.fingerprint !== undefined) {
    // Loaded only when needed: it brings in the X.509 library.
    const { certificateFingerprint, fetchPeerCertificate, normalizeFingerprint } = await import(
      "./_common/tls.ts"
    );
    const wanted = normalizeFingerprint(tls.fingerprint);
    if (wanted === undefined) {
      throw new TypeError(
        `Invalid fingerprint "${tls.fingerprint}": expected SHA256: and 32 bytes of hex`,
      );
    }
    // Fetch the certificate unverified, compare, then connect verifying against exactly it.
    let pem: string;
    try {
      pem = await fetchPeerCertificate(hostname, port, { signal });
    } catch (error) {
      if (signal.aborted && !timeout.aborted) throw signal.reason;
      const message = timeout.aborted
        ? `Cannot connect to ${where} over TLS: timed out`
        : error instanceof Error
        ? error.message
        : String(error);
      throw new ProtocolError("unreachable", message, { cause: error });
    }
    const actual = await certificateFingerprint(pem);
    if (actual !== wanted) {
      throw new ProtocolError(
        "certificate_changed",
        `Refusing ${where}: its certificate's fingerprint is ${actual}, not the ${wanted} you asked to trust`,
      );
    }
    caCerts = [pem];
    pinned = true;
    fingerprint = wanted;
  }
  let opened: Deno.Conn | undefined;
  try {
    if (pinned) {
      // Trust rests on the pinned certificate alone, whatever address it was made for:
      // verify it under the name every self-signed chat certificate carries.
      const tcp = await Deno.connect({ hostname, port, transport: "tcp", signal });
      opened = tcp;
      const conn = opened = await Deno.startTls(tcp, { hostname: "localhost", caCerts });
      await conn.handshake();
      return { conn, fingerprint };
    }
    if (tls) {
      const conn = opened = await Deno.connectTls(
        { hostname, port, caCerts, signal } as Deno.ConnectTlsOptions,
      );
      await conn.handshake();
      return { conn, fingerprint };
    }
    return { conn: await Deno.connect({ hostname, port, transport: "tcp", signal }) };
  } catch (error) {
    try {
      opened?.close();
    } catch {
      // Already closed.
    }
    if (signal.aborted && !timeout.aborted) throw signal.reason;
    const message = error instanceof Error ? error.message : String(error);
    if (
      tls && /certificate|UnknownIssuer|NotValidForName|CertExpired|BadSignature/i.test(message)
    ) {
      throw new ProtocolError(
        "unreachable",
        `Cannot verify the TLS certificate of ${where} (${message.replace(/^.*: /, "")}): ` +
          `trust it with --ca CERT.pem, or with --fingerprint SHA256:… as printed by "chat serve --tls"`,
        { cause: error },
      );
    }
    if (tls && !timeout.aborted && NOT_TLS.test(message)) {
      throw new ProtocolError(
        "unreachable",
        `Cannot connect to ${where} over TLS: this port does not speak TLS`,
        { cause: error },
      );
    }
    const reason = timeout.aborted
      ? "timed out"
      : error instanceof Deno.errors.ConnectionRefused
      ? "connection refused"
      : error instanceof Error
      ? error.message.replace(/ \(os error \d+\)$/, "").toLowerCase()
      : String(error);
    throw new ProtocolError(
      "unreachable",
      `Cannot connect to ${where}: ${reason}`,
      {
        cause: error,
      },
    );
  }
}

/**
 * Refuses an offer larger than the free space where it would be saved (when
 * the system can tell; without the `sys` permission for `statfs` it cannot).
 */
async function checkFreeSpace(dir: string, offer: FileOfferEvent): Promise<void> {
  let free: number;
  try {
    const stats = await statfs(dir);
    free = Number(stats.bavail) * Number(stats.bsize);
  } catch {
    return;
  }
  if (Number.isFinite(free) && offer.size > free) {
    throw new ProtocolError(
      "transfer_failed",
      `Cannot accept "${offer.name}": it has ${offer.size} bytes but only ${free} are free in "${dir}"`,
    );
  }
}

/** One TCP connection of a client; a reconnecting client has a new one after each break. */
class Link {
  readonly conn: Deno.Conn;
  /** The fingerprint of the server's TLS certificate, when known. */
  readonly fingerprint: string | undefined;
  readonly queue: SendQueue;
  readonly welcome: PromiseWithResolvers<WelcomeFrame> = Promise.withResolvers();
  reading: Promise<void> = Promise.resolve();
  /** When something last arrived (`performance.now()`). */
  lastInput = performance.now();
  /** When `welcome` arrived (`performance.now()`), or `undefined` before. */
  welcomedAt: number | undefined;
  /** The last plain-text line the server sent before `welcome`: why it refused us, if it did. */
  notice = "";
  /**
   * The `hello` this client sent, until the server answers it: the only time a
   * challenge is answered, and only once.
   */
  handshake: { id: number; name: string; server: string } | undefined;

  constructor({ conn, fingerprint }: Dialed) {
    this.conn = conn;
    this.fingerprint = fingerprint;
    this.queue = new SendQueue(conn, { maxBytes: Number.MAX_SAFE_INTEGER });
    this.welcome.promise.catch(() => {});
  }

  write(frame: Record<string, unknown>): void {
    this.queue.push(encoder.encode(JSON.stringify(frame) + "\n"));
  }
}

/**
 * A connection to a chat server, made by {@linkcode connect}. Events arrive
 * in order and wait in a queue until read with {@linkcode ChatClient.next} or
 * `for await`. The client's own room messages are not events: `send()`
 * returns them.
 */
export class ChatClient implements AsyncDisposable, AsyncIterable<ChatEvent> {
  #options: ConnectOptions;
  #hostname: string;
  #port: number;
  #link: Link | undefined;
  #name = "";
  #room = LOBBY;
  #members: string[] = [];
  #server = "";
  #session = "";
  #nextId = 0;
  #pending = new Map<number, Pending>();
  #events: ChatEvent[] = [];
  #waiters: Waiter[] = [];
  /** The last sequence number seen in each joined room (events and own acks). */
  #seen = new Map<string, number>();
  /** Rooms catching up after a reconnect: live messages wait here until the gap is filled. */
  #catchingUp = new Map<string, MessageEvent[]>();
  #ended = false;
  #closing: Promise<void> | undefined;
  #stopReconnect = new AbortController();
  #reconnected: Promise<void> = Promise.resolve();
  #reconnecting = false;
  #watchdog: ReturnType<typeof setInterval> | undefined;
  #outgoing = new Map<string, (event: TransferEvent) => void>();
  /** Files being received: closing stops them and waits until their temporary files are gone. */
  #receiving = new Map<AbortController, Promise<unknown>>();
  #invalidFrames = 0;
  /** The last reconnect attempt, carried over when a connection did not live long. */
  #attempt = 0;

  /** Use {@linkcode connect}. */
  private constructor(options: ConnectOptions) {
    this.#options = options;
    this.#hostname = options.hostname ?? "127.0.0.1";
    this.#port = options.port ?? 7777;
  }

  /** @internal */
  static async open(options: ConnectOptions): Promise<ChatClient> {
    const client = new ChatClient(options);
    const timeout = AbortSignal.timeout(options.timeout ?? 10_000);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    signal.throwIfAborted();
    const link = new Link(
      await dial(
        client.#hostname,
        client.#port,
        options.tls,
        signal,
        timeout,
        options.identity !== undefined,
      ),
    );
    try {
      const welcome = await client.#hello(link, signal, options.history);
      client.#adopt(link, welcome);
      // Closed between the welcome and now: its loss went unnoticed, so notice it now.
      if (link.queue.closed) client.#lost(link, "the server closed the connection");
    } catch (error) {
      link.queue.destroy();
      await link.reading;
      if (options.signal?.aborted) throw options.signal.reason;
      if (timeout.aborted) {
        throw new ProtocolError(
          "timeout",
          `Cannot join ${
            describeAddress(client.#hostname, client.#port)
          }: no welcome from the server in time`,
        );
      }
      throw error;
    }
    return client;
  }

  /** Sends `hello` on a new link and waits for `welcome` (or the refusal). */
  async #hello(
    link: Link,
    signal: AbortSignal,
    history: number | undefined,
  ): Promise<WelcomeFrame> {
    link.reading = this.#read(link);
    const id = ++this.#nextId;
    const refused = new Promise<AckFrame>((resolve, reject) =>
      this.#pending.set(id, { frame: {}, resolve, reject })
    );
    refused.catch(() => {});
    const name = this.#name || this.#options.name;
    const server = serverAddress(this.#hostname, this.#port);
    const hello: Record<string, unknown> = {
      type: "hello",
      id,
      v: PROTOCOL_VERSION,
      name,
      client: `chat/${denoConfig.version}`,
      reconnect: this.#options.reconnect !== undefined && this.#options.reconnect !== false,
    };
    link.handshake = { id, name, server };
    if (this.#session) hello.resume = this.#session;
    if (history !== undefined) hello.history = history;
    if (this.#options.password !== undefined) hello.password = this.#options.password;
    // The key goes along even with a resume token: if the server forgot the session
    // (it restarted), it asks for the proof instead.
    if (this.#options.identity !== undefined) {
      hello.key = this.#options.identity.publicKey;
      // Who the client believes it is talking to: the key proof is bound to it.
      hello.server = server;
      if (link.fingerprint !== undefined) hello.tls = link.fingerprint;
    }
    link.write(hello);
    try {
      return await abortable(
        Promise.race([link.welcome.promise, refused]),
        signal,
        () => {},
      ) as WelcomeFrame;
    } finally {
      this.#pending.delete(id);
      link.handshake = undefined;
    }
  }

  #adopt(link: Link, welcome: WelcomeFrame): void {
    this.#watch(welcome.limits.idleTimeout);
    this.#link = link;
    this.#name = welcome.name;
    this.#room = welcome.room;
    this.#members = welcome.members;
    this.#server = welcome.server;
    this.#session = welcome.session;
    for (const room of welcome.rooms) {
      if (!this.#seen.has(room.name)) this.#seen.set(room.name, room.seq);
    }
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

  /** The rooms this client is in. */
  get joined(): readonly string[] {
    return [...this.#seen.keys()];
  }

  /**
   * The token that resumes this session after a lost connection (what
   * `reconnect` uses). Treat it like a password: it takes over the name.
   */
  get session(): string {
    return this.#session;
  }

  /** The server's software name and version. */
  get server(): string {
    return this.#server;
  }

  /**
   * How many frames from the server did not follow the protocol and were
   * ignored (the first one, and then each tenfold count, is also reported as
   * an `error` event with code `invalid_frame`).
   */
  get invalidFrames(): number {
    return this.#invalidFrames;
  }

  /** Whether the client has closed for good. */
  get closed(): boolean {
    return this.#ended;
  }

  /** Whether the client is connected right now (`false` while reconnecting). */
  get connected(): boolean {
    return this.#link !== undefined && !this.#link.queue.closed;
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
   * @param options The room, whether it is an action, and a signal.
   * @returns The message as stored, with its sequence number and time.
   * @throws {ProtocolError} When the server refuses it (`invalid_text`, `not_in_room`, …) or the connection closes.
   */
  async send(text: string, options: SendOptions = {}): Promise<SentMessage> {
    const room = options.room ?? this.#room;
    const action = options.action === true;
    const frame: Record<string, unknown> = { type: "send", room, text, key: crypto.randomUUID() };
    if (action) frame.action = true;
    const ack = await this.#request(frame, options.signal);
    const sent: SentMessage = {
      room: answered(ack, "room"),
      from: this.#name,
      text,
      ts: answered(ack, "ts"),
      seq: answered(ack, "seq"),
    };
    this.#saw(sent.room, sent.seq);
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
    const frame: Record<string, unknown> = { type: "dm", to, text, key: crypto.randomUUID() };
    if (action) frame.action = true;
    const ack = await this.#request(frame, options.signal);
    const sent: SentDm = {
      from: this.#name,
      to: answered(ack, "to"),
      text,
      ts: answered(ack, "ts"),
    };
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
    this.#name = answered(ack, "name");
    return this.#name;
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
    const frame: Record<string, unknown> = { type: "join", room };
    if (options.history !== undefined) frame.history = options.history;
    const ack = await this.#request(frame, options.signal);
    const joined = answered(ack, "room");
    this.#saw(joined, ack.seq ?? 0);
    return { room: joined, topic: ack.topic ?? "", members: ack.names ?? [], seq: ack.seq ?? 0 };
  }

  /**
   * Leaves a room; the others see a `leave` event with reason `part`.
   *
   * @param room The room.
   * @param options A signal.
   * @throws {ProtocolError} With `not_in_room`.
   */
  async leave(room: string, options: RequestOptions = {}): Promise<void> {
    await this.#request({ type: "part", room }, options.signal);
    this.#seen.delete(room);
  }

  /**
   * Lists the rooms that have people in them.
   *
   * @param options A signal.
   * @returns Each room's name, member count and topic, sorted by name.
   */
  async rooms(options: RequestOptions = {}): Promise<RoomInfo[]> {
    const ack = await this.#request({ type: "rooms" }, options.signal);
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
    const frame: Record<string, unknown> = { type: "topic", room };
    if (text !== undefined) frame.topic = text;
    const ack = await this.#request(frame, options.signal);
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
    const frame: Record<string, unknown> = { type: "history", room, limit: options.limit ?? 50 };
    if (options.before !== undefined) frame.before = options.before;
    if (options.after !== undefined) frame.after = options.after;
    const ack = await this.#request(frame, options.signal);
    return ack.messages ?? [];
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
    const ack = await this.#request({ type: "whois", name }, options.signal);
    const result: WhoisResult = {
      name: ack.name ?? name,
      online: ack.online === true,
      op: ack.op === true,
    };
    if (ack.fingerprint !== undefined) result.fingerprint = ack.fingerprint;
    return result;
  }

  /**
   * Operators: disconnects a user.
   *
   * @param name The name.
   * @param reason Why, shown to everyone.
   * @param options A signal.
   * @throws {ProtocolError} With `not_operator` or `no_such_user`.
   */
  async kick(name: string, reason?: string, options: RequestOptions = {}): Promise<void> {
    await this.#request(
      reason === undefined ? { type: "kick", name } : { type: "kick", name, reason },
      options.signal,
    );
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
    const frame: Record<string, unknown> = { type: "ban", target };
    if (options.duration !== undefined) frame.duration = options.duration;
    if (options.reason !== undefined) frame.reason = options.reason;
    await this.#request(frame, options.signal);
  }

  /**
   * Operators: lifts a ban.
   *
   * @param target As given to {@linkcode ChatClient.ban}.
   * @param options A signal.
   */
  async unban(target: string, options: RequestOptions = {}): Promise<void> {
    await this.#request({ type: "unban", target }, options.signal);
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
    const frame: Record<string, unknown> = { type: "mute", name };
    if (options.duration !== undefined) frame.duration = options.duration;
    if (options.reason !== undefined) frame.reason = options.reason;
    await this.#request(frame, options.signal);
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
   * once. A reconnecting client stops trying.
   *
   * @param options How long to wait for the server.
   */
  close(options: CloseOptions = {}): Promise<void> {
    return this.#closing ??= this.#close(options.timeout ?? 5000);
  }

  async #close(timeout: number): Promise<void> {
    // Files still being offered or sent stop: leaving must not wait for them.
    for (const transfer of [...this.#outgoing.keys()]) {
      this.#request({ type: "cancel", transfer }, undefined).catch(() => {});
      this.#outgoing.get(transfer)?.({
        type: "transfer",
        transfer,
        state: "cancelled",
        by: this.#name,
        reason: "you left",
      });
    }
    // Files being received stop too, and their temporary files go.
    for (const stop of this.#receiving.keys()) stop.abort();
    await Promise.all(this.#receiving.values());
    this.#stopReconnect.abort();
    await this.#reconnected.catch(() => {});
    const link = this.#link;
    if (!this.#ended && link !== undefined && !link.queue.closed) {
      const signal = AbortSignal.timeout(timeout);
      try {
        await this.#request({ type: "quit" }, signal);
        await abortable(link.reading, signal, () => {});
      } catch {
        // The server is gone or slow; close our side anyway.
      }
    }
    link?.queue.destroy();
    await link?.reading;
    this.#end();
  }

  /** Same as {@linkcode ChatClient.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Sends a request; `onAck` runs as soon as its ack is read, before the frames after it. */
  #request(
    frame: Record<string, unknown>,
    signal: AbortSignal | undefined,
    onAck?: (ack: AckFrame) => void,
  ): Promise<AckFrame> {
    if (this.#ended) {
      return Promise.reject(new ProtocolError("closed", "Connection is closed"));
    }
    const id = ++this.#nextId;
    const withId = { ...frame, id };
    const promise = new Promise<AckFrame>((resolve, reject) =>
      this.#pending.set(id, {
        frame: withId,
        resolve: onAck === undefined ? resolve : (ack) => {
          try {
            onAck(ack);
            resolve(ack);
          } catch (error) {
            reject(error);
          }
        },
        reject,
      })
    );
    // While reconnecting, the request waits and is sent after the reconnect.
    if (this.connected) this.#link!.write(withId);
    return abortable(promise, signal, () => this.#pending.delete(id));
  }

  #saw(room: string, seq: number): void {
    const seen = this.#seen.get(room);
    if (seen === undefined || seq > seen) this.#seen.set(room, seq);
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

  async #read(link: Link): Promise<void> {
    const decoder = new LineDecoder({ maxBytes: MAX_SERVER_FRAME_BYTES });
    const buffer = new Uint8Array(READ_BUFFER_BYTES);
    let reason = "the server closed the connection";
    try {
      while (true) {
        const read = await link.conn.read(buffer);
        if (read === null) break;
        // A TLS record (alert or handshake) where a line was expected: the port speaks TLS.
        if (!this.#link && (buffer[0] === 0x15 || buffer[0] === 0x16) && buffer[1] === 0x03) {
          link.notice =
            "this port speaks TLS: join with --fingerprint SHA256:… (as chat serve printed it) " +
            "or --ca FILE";
          break;
        }
        link.lastInput = performance.now();
        for (const line of decoder.push(buffer.subarray(0, read))) {
          // A frame we cannot read may have been an answer: the stream can no
          // longer be trusted, so end the connection rather than hang.
          if (!line.ok) throw new ProtocolError(line.code, line.message);
          this.#frame(link, line.text);
        }
      }
    } catch (error) {
      reason = error instanceof Error ? error.message : String(error);
    } finally {
      link.queue.destroy();
      link.welcome.reject(
        new ProtocolError(
          "closed",
          link.notice
            ? `The server refused the connection: ${link.notice}`
            : "Connection closed before the server answered",
        ),
      );
      this.#lost(link, reason);
    }
  }

  #frame(link: Link, line: string): void {
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
      case "error": {
        const pending = typeof frame.id === "number" ? this.#pending.get(frame.id) : undefined;
        if (pending !== undefined) {
          this.#pending.delete(frame.id as number);
          if (frame.type === "ack") pending.resolve(frame);
          else pending.reject(new ProtocolError(frame.code, frame.message));
          return;
        }
        if (frame.type === "ack") return;
        const { type, code, message, ids } = frame;
        // Refusals the server coalesced answer every request they list.
        for (const id of ids ?? []) {
          const refused = typeof id === "number" ? this.#pending.get(id) : undefined;
          if (refused === undefined) continue;
          this.#pending.delete(id as number);
          refused.reject(new ProtocolError(code, message));
        }
        return this.#push({ type, code, message });
      }
      case "message": {
        const waiting = this.#catchingUp.get(frame.room);
        if (waiting !== undefined) return void waiting.push(frame);
        return this.#message(frame);
      }
      case "nick":
        if (frame.from === this.#name) this.#name = frame.to;
        return this.#push(frame);
      case "bye":
        // Another connection took this session over: reconnecting would take it back.
        if (frame.reason === "replaced") this.#session = "";
        return this.#push(frame);
      case "offer":
        return this.#push(this.#incoming(frame));
      case "transfer":
        this.#outgoing.get(frame.transfer)?.(frame);
        return this.#push(frame);
      case "dm":
      case "join":
      case "leave":
      case "topic":
        return this.#push(frame);
    }
  }

  /**
   * Answers a key challenge, but only the one for the `hello` this link is
   * waiting on, and only once: a signature is never made for a server's
   * asking at any other time.
   */
  #challenge(link: Link, id: unknown, serverNonce: string): void {
    const identity = this.#options.identity;
    const handshake = link.handshake;
    if (identity === undefined || handshake === undefined || id !== handshake.id) {
      return this.#invalid(
        new ProtocolError("invalid_frame", "Unexpected challenge outside the handshake"),
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
        new ProtocolError("invalid_frame", error instanceof Error ? error.message : String(error)),
      );
    }
    identity.sign(data).then(
      (signature) => link.write({ type: "auth", id, nonce: clientNonce, signature }),
      () => link.queue.destroy(),
    );
  }

  /**
   * A frame that does not follow the protocol: ignored, counted, reported
   * (the first, then each tenfold count). An answer to a request fails it
   * rather than leave it waiting.
   */
  #invalid(error: ProtocolError): void {
    const id = requestIdOf(error);
    const pending = typeof id === "number" ? this.#pending.get(id) : undefined;
    if (pending !== undefined && typeof id === "number") {
      this.#pending.delete(id);
      pending.reject(
        new ProtocolError("invalid_frame", `The server's answer is invalid: ${error.message}`),
      );
    }
    const count = ++this.#invalidFrames;
    if (Number.isInteger(Math.log10(count))) {
      this.#push({
        type: "error",
        code: "invalid_frame",
        message: `The server sent ${
          count === 1 ? "a frame" : `${count} frames`
        } that break the protocol; ignored (${error.message.slice(0, 200)})`,
      });
    }
  }

  /** Opens a data connection for a transfer and returns it with the bytes read past the go-ahead. */
  async #openData(
    token: string,
    signal?: AbortSignal,
  ): Promise<{ conn: Deno.Conn; rest: Uint8Array }> {
    const timeout = AbortSignal.timeout(this.#options.timeout ?? 10_000);
    const { conn } = await dial(
      this.#hostname,
      this.#port,
      this.#options.tls,
      signal ? AbortSignal.any([signal, timeout]) : timeout,
      timeout,
    );
    try {
      await writeAll(conn, encoder.encode(JSON.stringify({ type: "data", token }) + "\n"));
      const buffer = new Uint8Array(64 * 1024);
      let seen = 0;
      while (true) {
        const read = await conn.read(buffer.subarray(seen));
        if (read === null) {
          throw new ProtocolError("transfer_failed", "The server closed the data connection");
        }
        seen += read;
        const end = buffer.subarray(0, seen).indexOf(0x0a);
        if (end === -1) {
          if (seen === buffer.length) {
            throw new ProtocolError("transfer_failed", "The server's answer is too long");
          }
          continue;
        }
        let answer: unknown;
        try {
          answer = JSON.parse(new TextDecoder().decode(buffer.subarray(0, end)));
        } catch {
          answer = undefined;
        }
        const fields = typeof answer === "object" && answer !== null
          ? answer as Record<string, unknown>
          : {};
        if (fields.type !== "data" || fields.ok !== true) {
          const why = typeof fields.message === "string" ? fields.message : "no reason";
          throw new ProtocolError("transfer_failed", `The server refused the transfer: ${why}`);
        }
        return { conn, rest: buffer.slice(end + 1, seen) };
      }
    } catch (error) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
      throw error;
    }
  }

  #incoming(offer: FileOfferEvent): IncomingOffer {
    return {
      ...offer,
      accept: (options = {}) => this.#receive(offer, options),
      decline: async () => {
        await this.#request({ type: "decline", transfer: offer.transfer }, undefined);
      },
    };
  }

  #receive(offer: FileOfferEvent, options: AcceptOptions): Promise<ReceivedFile> {
    // Closing the client stops the transfer and waits until its temporary file is gone.
    const stop = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
    const receiving = this.#receiveInto(offer, { ...options, signal }, options.signal);
    this.#receiving.set(stop, receiving.catch(() => {}));
    return receiving.finally(() => this.#receiving.delete(stop));
  }

  async #receiveInto(
    offer: FileOfferEvent,
    options: AcceptOptions & { signal: AbortSignal },
    callerSignal: AbortSignal | undefined,
  ): Promise<ReceivedFile> {
    const dir = options.dir ?? downloadsDir();
    await Deno.mkdir(dir, { recursive: true });
    await checkFreeSpace(dir, offer);
    const ack = await this.#request({ type: "accept", transfer: offer.transfer }, options.signal);
    const token = answered(ack, "token");
    // The temporary name is ours: nothing the server chose becomes part of a path.
    const random = new Uint8Array(crypto.getRandomValues(new Uint8Array(12))).toHex();
    const temporary = join(dir, `.chat-${random}.part`);
    const { conn, rest } = await this.#openData(token, options.signal);
    const abort = () =>
      this.#request({ type: "cancel", transfer: offer.transfer }, undefined).catch(() => {});
    options.signal.addEventListener("abort", abort, { once: true });
    const stallTimeout = options.stallTimeout ?? STALL_TIMEOUT;
    let stalled = false;
    let stallTimer: ReturnType<typeof setTimeout> | undefined;
    const watch = () => {
      clearTimeout(stallTimer);
      stallTimer = setTimeout(() => {
        stalled = true;
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }, stallTimeout);
    };
    const cut = () => {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    };
    options.signal.addEventListener("abort", cut, { once: true });
    const hash = sha256();
    let received = 0;
    let reported = 0;
    let closed = false;
    try {
      {
        using file = await Deno.open(temporary, { write: true, createNew: true });
        const keep = async (bytes: Uint8Array) => {
          const part = bytes.subarray(0, Math.max(0, offer.size - received));
          hash.update(part);
          await writeAll(file, part);
          received += part.length;
          if (
            options.onProgress && (performance.now() - reported > 100 || received === offer.size)
          ) {
            reported = performance.now();
            options.onProgress(received, offer.size);
          }
        };
        if (rest.length > 0) await keep(rest);
        const buffer = new Uint8Array(256 * 1024);
        while (received < offer.size) {
          watch();
          let read: number | null;
          try {
            read = await conn.read(buffer);
          } catch (error) {
            if (stalled || options.signal.aborted) read = null;
            else throw error;
          }
          if (read === null) break;
          await keep(buffer.subarray(0, read));
        }
        clearTimeout(stallTimer);
      }
      if (options.signal.aborted) throw options.signal.reason;
      const digest = hash.hex();
      if (received !== offer.size || digest !== offer.sha256) {
        const why = stalled
          ? `nothing arrived for ${stallTimeout / 1000} s (${received} of ${offer.size} bytes)`
          : received !== offer.size
          ? `only ${received} of ${offer.size} bytes arrived`
          : "its SHA-256 does not match the offer";
        // Told, not awaited: a server that never answers must not hold the result back.
        this.#request({ type: "received", transfer: offer.transfer, ok: false }, undefined)
          .catch(() => {});
        throw new ProtocolError("transfer_failed", `"${offer.name}" was not saved: ${why}`);
      }
      const path = await moveToFreeName(temporary, dir, safeFileName(offer.name));
      closed = true;
      this.#request({ type: "received", transfer: offer.transfer, ok: true }, undefined)
        .catch(() => {});
      return { path, size: received, sha256: digest };
    } catch (error) {
      if (!closed) await Deno.remove(temporary).catch(() => {});
      if (callerSignal?.aborted) throw callerSignal.reason;
      if (options.signal.aborted) {
        throw new ProtocolError(
          "transfer_failed",
          `"${offer.name}" was not saved: the client closed`,
        );
      }
      throw error;
    } finally {
      clearTimeout(stallTimer);
      options.signal.removeEventListener("abort", abort);
      options.signal.removeEventListener("abort", cut);
      cut();
    }
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
  async sendFile(
    to: string,
    source: string | URL | Uint8Array | ReadableStream<Uint8Array>,
    options: SendFileOptions = {},
  ): Promise<SentFile> {
    let path: string | undefined;
    let bytes: Uint8Array | undefined;
    let spooled: string | undefined;
    if (source instanceof Uint8Array) bytes = source;
    else if (source instanceof ReadableStream) {
      spooled = path = await Deno.makeTempFile({ prefix: "chat-send-" });
      using file = await Deno.open(path, { write: true });
      for await (const chunk of source) await writeAll(file, chunk);
    } else path = source instanceof URL ? source.pathname : source;
    try {
      const name = options.name ??
        (path !== undefined && spooled === undefined ? basename(path) : "file");
      let size: number;
      let digest: string;
      if (bytes !== undefined) {
        const hash = sha256();
        hash.update(bytes);
        size = bytes.length;
        digest = hash.hex();
      } else {
        ({ size, sha256: digest } = await hashFile(path!));
      }
      const direct = !to.startsWith("#");
      const done = Promise.withResolvers<SentFile>();
      const delivered: string[] = [];
      const legs = new Set<Promise<void>>();
      let transfer = "";
      const fail = (message: string) => done.reject(new ProtocolError("transfer_failed", message));
      const handle = (event: TransferEvent) => {
        switch (event.state) {
          case "accepted": {
            // A broken leg is reported by the server ("cancelled"), which knows why.
            const leg = this.#stream(event, path, bytes, size, options).catch(() => {});
            legs.add(leg);
            return;
          }
          case "declined":
            if (direct) fail(`${event.by} declined "${name}"`);
            return;
          case "received":
            if (event.ok) delivered.push(event.by);
            if (direct) {
              if (event.ok) done.resolve({ transfer, size, sha256: digest, to: delivered });
              else fail(`${event.by} did not receive "${name}" whole`);
            }
            return;
          case "cancelled":
            if (direct || event.by === this.#name) {
              fail(`The transfer of "${name}" was cancelled: ${event.reason ?? ""}`.trim());
            }
            return;
          case "expired":
            if (direct || delivered.length === 0) fail(`Nobody accepted "${name}" in time`);
            else done.resolve({ transfer, size, sha256: digest, to: delivered });
            return;
        }
      };
      let offerFailed: { error: unknown } | undefined;
      await this.#request(
        { type: "offer", to, name, size, mime: options.mime ?? mediaType(name), sha256: digest },
        options.signal,
        (ack) => {
          // At once: an answer may follow the ack in the same read, before this function resumes.
          transfer = answered(ack, "transfer");
          this.#outgoing.set(transfer, handle);
          try {
            options.onOffer?.(transfer);
          } catch (error) {
            offerFailed = { error };
          }
        },
      );
      if (offerFailed !== undefined) throw offerFailed.error;
      const cancel = () => {
        this.#request({ type: "cancel", transfer }, undefined).catch(() => {});
        done.reject(options.signal!.reason);
      };
      options.signal?.addEventListener("abort", cancel, { once: true });
      try {
        return await done.promise;
      } finally {
        options.signal?.removeEventListener("abort", cancel);
        this.#outgoing.delete(transfer);
        await Promise.allSettled(legs);
      }
    } finally {
      if (spooled !== undefined) await Deno.remove(spooled).catch(() => {});
    }
  }

  /** Streams one leg of an outgoing file to the server. */
  async #stream(
    event: TransferEvent,
    path: string | undefined,
    bytes: Uint8Array | undefined,
    size: number,
    options: SendFileOptions,
  ): Promise<void> {
    if (event.token === undefined) {
      throw new ProtocolError("invalid_frame", 'The server\'s "accepted" event has no "token"');
    }
    const { conn } = await this.#openData(event.token, options.signal);
    let sent = 0;
    let reported = 0;
    const progress = () => {
      if (options.onProgress && (performance.now() - reported > 100 || sent === size)) {
        reported = performance.now();
        options.onProgress(sent, size, event.by);
      }
    };
    try {
      if (bytes !== undefined) {
        for (let offset = 0; offset < bytes.length; offset += 256 * 1024) {
          const chunk = bytes.subarray(offset, offset + 256 * 1024);
          await writeAll(conn, chunk);
          sent += chunk.length;
          progress();
        }
      } else {
        using file = await Deno.open(path!);
        const buffer = new Uint8Array(256 * 1024);
        while (sent < size) {
          const read = await file.read(buffer);
          if (read === null) break;
          await writeAll(conn, buffer.subarray(0, read));
          sent += read;
          progress();
        }
      }
    } finally {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  }

  /**
   * Stops a transfer: an offer you made (every receiver), or one you are receiving.
   *
   * @param transfer The transfer id.
   * @param options A signal.
   */
  async cancelTransfer(transfer: string, options: RequestOptions = {}): Promise<void> {
    await this.#request({ type: "cancel", transfer }, options.signal);
  }

  #message(message: MessageEvent): void {
    const seen = this.#seen.get(message.room);
    // Never deliver a message twice (a defence: the catch-up is exact).
    if (seen !== undefined && message.seq <= seen && !message.history) return;
    if (seen !== undefined) this.#saw(message.room, message.seq);
    this.#push(message);
  }

  #push(event: ChatEvent): void {
    this.#events.push(event);
    this.#serve();
  }

  /** A link ended: reconnect if asked to, else end the client. */
  #lost(link: Link, reason: string): void {
    if (link !== this.#link || this.#reconnecting) return;
    const reconnect = this.#options.reconnect;
    if (
      this.#closing || this.#ended || reconnect === undefined || reconnect === false ||
      !this.#session
    ) {
      return this.#end();
    }
    this.#reconnecting = true;
    // A connection that did not live long does not earn a fresh backoff: a server
    // that welcomes and drops must not get a reconnect storm.
    const lived = link.welcomedAt === undefined ? 0 : performance.now() - link.welcomedAt;
    const first = lived >= STABLE_CONNECTION_MS ? 1 : this.#attempt + 1;
    this.#reconnected = this.#reconnect(reason, reconnect === true ? {} : reconnect, first)
      .finally(() => {
        this.#reconnecting = false;
        // The new connection may have closed while catching up, unnoticed: notice it now.
        const current = this.#link;
        if (current !== undefined && current !== link && current.queue.closed) {
          this.#lost(current, "the server closed the connection");
        }
      });
  }

  async #reconnect(reason: string, options: ReconnectOptions, first: number): Promise<void> {
    const minDelay = options.minDelay ?? 250;
    const maxDelay = options.maxDelay ?? 10_000;
    const maxAttempts = options.maxAttempts ?? Infinity;
    const stop = this.#stopReconnect.signal;
    for (let attempt = first; attempt <= maxAttempts && !stop.aborted; attempt++) {
      this.#attempt = attempt;
      // Exponential backoff with "equal jitter": between half the ceiling and the ceiling.
      const ceiling = Math.min(maxDelay, minDelay * 2 ** (attempt - 1));
      const delay = Math.round(ceiling / 2 + Math.random() * ceiling / 2);
      this.#push({ type: "reconnecting", attempt, delay, reason });
      const slept = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(true), delay);
        stop.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve(false);
        }, { once: true });
      });
      if (!slept) break;
      const timeout = AbortSignal.timeout(this.#options.timeout ?? 10_000);
      const signal = AbortSignal.any([stop, timeout]);
      let link: Link | undefined;
      // Live messages on the new connection wait until the gap before them is filled.
      for (const room of this.#seen.keys()) this.#catchingUp.set(room, []);
      try {
        link = new Link(
          await dial(
            this.#hostname,
            this.#port,
            this.#options.tls,
            signal,
            timeout,
            this.#options.identity !== undefined,
          ),
        );
        const welcome = await this.#hello(link, signal, 0);
        await this.#resync(link, welcome, options.maxCatchUp ?? MAX_CATCH_UP);
        return;
      } catch (error) {
        link?.queue.destroy();
        await link?.reading;
        if (error instanceof ProtocolError && FINAL_CODES.includes(error.code)) {
          this.#push({
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
    this.#end();
  }

  /** After a reconnect: rejoin rooms, re-send what was not acknowledged, fetch what was missed. */
  async #resync(link: Link, welcome: WelcomeFrame, maxCatchUp: number): Promise<void> {
    const before = new Map(this.#seen);
    const tops = new Map(welcome.rooms.map((room) => [room.name, room.seq]));
    for (const room of welcome.rooms) {
      if (!before.has(room.name)) this.#seen.set(room.name, room.seq);
    }
    this.#link = link;
    this.#name = welcome.name;
    this.#server = welcome.server;
    this.#session = welcome.session;
    // A new session is only in #lobby: enter the other rooms again first.
    for (const room of before.keys()) {
      if (tops.has(room)) continue;
      const ack = await this.#raw(link, { type: "join", room, history: 0 });
      tops.set(room, ack.seq ?? 0);
    }
    // Requests that were never answered go out again, in order; keys make sends safe to repeat.
    for (const [, pending] of [...this.#pending].sort(([a], [b]) => a - b)) {
      link.write(pending.frame);
    }
    let missed = 0;
    const skipped: Record<string, number> = {};
    const gaps: MessageEvent[][] = [];
    for (const [room, last] of before) {
      const top = tops.get(room) ?? 0;
      if (top < last) {
        // The server forgot this room's history (it kept it in memory and restarted):
        // numbering starts again, so follow it.
        this.#seen.set(room, top);
        continue;
      }
      const gap: MessageEvent[] = [];
      // Only the latest messages: a huge gap is left for "history", page by page.
      let cursor = Math.max(last, top - Math.max(0, maxCatchUp));
      if (cursor > last) skipped[room] = cursor - last;
      while (cursor < top) {
        const ack = await this.#raw(link, {
          type: "history",
          room,
          after: cursor,
          limit: CATCH_UP_PAGE,
        });
        const page = ack.messages ?? [];
        if (page.length === 0) break;
        const before = cursor;
        for (const message of page) {
          if (message.seq > top || message.seq <= cursor) break;
          cursor = message.seq;
          delete message.history;
          if (message.from !== this.#name) gap.push(message);
        }
        // A page that does not move forward would loop for ever.
        if (cursor === before || cursor >= top || gap.length > maxCatchUp) break;
        // Let the rest of the program (keys, screen) run between pages.
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
      this.#saw(room, top);
      missed += gap.length;
      gaps.push(gap);
    }
    const reconnected: ReconnectedEvent = { type: "reconnected", resumed: welcome.resumed, missed };
    if (Object.keys(skipped).length > 0) reconnected.skipped = skipped;
    this.#push(reconnected);
    for (const gap of gaps) for (const message of gap) this.#push(message);
    for (const [room, waiting] of this.#catchingUp) {
      this.#catchingUp.delete(room);
      for (const message of waiting) this.#message(message);
    }
  }

  /** A request on a specific link, outside the re-send queue. */
  #raw(link: Link, frame: Record<string, unknown>): Promise<AckFrame> {
    const id = ++this.#nextId;
    return new Promise<AckFrame>((resolve, reject) => {
      const fail = () => {
        if (!this.#pending.delete(id)) return;
        reject(new ProtocolError("closed", "Connection closed while catching up"));
      };
      this.#pending.set(id, { frame: { ...frame, id }, resolve, reject });
      link.write({ ...frame, id });
      link.reading.then(fail);
      this.#stopReconnect.signal.addEventListener("abort", fail, { once: true });
    });
  }

  /**
   * Notices a dead server: the server pings an idle client, so a link that
   * hears nothing for the server's idle timeout is gone.
   */
  #watch(idleTimeout: number | undefined): void {
    if (this.#watchdog !== undefined || !(idleTimeout! > 0)) return;
    // However short the server says its timeout is, check at most once a second.
    this.#watchdog = setInterval(() => {
      const link = this.#link;
      if (
        link !== undefined && !link.queue.closed &&
        performance.now() - link.lastInput > idleTimeout! + 5000
      ) {
        link.queue.destroy();
      }
    }, Math.max(Math.min(idleTimeout! / 4, 30_000), 1000));
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    for (const [transfer, handle] of this.#outgoing) {
      handle({
        type: "transfer",
        transfer,
        state: "cancelled",
        by: this.#name,
        reason: "the connection closed",
      });
    }
    clearInterval(this.#watchdog);
    this.#stopReconnect.abort();
    this.#catchingUp.clear();
    const closed = new ProtocolError("closed", "Connection closed before the server answered");
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
