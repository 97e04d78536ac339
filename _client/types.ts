/**
 * The public shapes of the client library: the events a client receives and
 * the options and results of its requests. `client.ts` re-exports them.
 *
 * @module
 */

import type { ErrorCode } from "../protocol/errors.ts";
import type {
  AwayEvent,
  ByeFrame,
  DmEvent,
  FileOfferEvent,
  JoinEvent,
  LeaveEvent,
  MessageEvent,
  NickEvent,
  TopicEvent,
  TransferEvent,
} from "../protocol/frames.ts";
import type { Identity } from "../_common/identity.ts";

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
  | AwayEvent
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
  /** `true` for a notice. */
  notice?: boolean;
  /** The recipient's away message, when they are away (the message was delivered all the same). */
  away?: string;
}

/** Who is in a room, and who of them is away: the answer of {@linkcode ChatClient.roster}. */
export interface Roster {
  /** The room's name. */
  room: string;
  /** Everyone in it, sorted. */
  names: string[];
  /** The away messages of those who are away, by name. */
  away: Record<string, string>;
  /** The room's operators among the names: its creator, and the server's operators. */
  ops: string[];
}

/** A room after {@linkcode ChatClient.join}. */
export interface JoinedRoom {
  /** The room's name. */
  room: string;
  /** Its topic, `""` when none. */
  topic: string;
  /** Everyone in it, sorted, the client included; only the client in a crowded room. */
  members: string[];
  /**
   * How many are in it: `members.length`, or more in a crowded room (more
   * members than the server announces joins and leaves for), where
   * `members` lists only the client.
   */
  count: number;
  /** Its operators among the members: its creator, and the server's operators. */
  ops: string[];
  /** The sequence number of its last message. */
  seq: number;
}

/** Options every request takes. */
export interface RequestOptions {
  /** Stops waiting for the answer when aborted (the request may still take effect). */
  signal?: AbortSignal;
}

/** Options for {@linkcode ChatClient.kick}. */
export interface KickOptions extends RequestOptions {
  /** Only remove them from this room (a room's operators may), instead of disconnecting them. */
  room?: string;
}

/** Options for {@linkcode ChatClient.leave}. */
export interface LeaveOptions extends RequestOptions {
  /** Why you leave the room: the others see it (at most 300 characters). */
  reason?: string;
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
  /**
   * A notice: an automatic message (a bot's, a service's) that must never
   * be answered automatically. IRC users see it as `NOTICE`.
   *
   * @default {false}
   */
  notice?: boolean;
}

/** Options for {@linkcode ChatClient.dm}. */
export interface DmOptions extends RequestOptions {
  /**
   * Send as an action.
   *
   * @default {false}
   */
  action?: boolean;
  /**
   * A notice: an automatic message (a bot's, a service's) that must never
   * be answered automatically. IRC users see it as `NOTICE`.
   *
   * @default {false}
   */
  notice?: boolean;
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

/** Options for {@linkcode ChatClient.search}. */
export interface SearchOptions extends RequestOptions {
  /**
   * The room to search (the client must be in it).
   *
   * @default {"#lobby"}
   */
  room?: string;
  /** Only messages before this sequence number: the `next` of the page before. */
  before?: number;
  /**
   * How many at most; the server caps it (50).
   *
   * @default {50}
   */
  limit?: number;
}

/** One page of {@linkcode ChatClient.search} results. */
export interface SearchPage {
  /** The room searched. */
  room: string;
  /** The messages found, oldest first, marked `history: true`. */
  messages: MessageEvent[];
  /** Pass as `before` for the next, older page; absent when the search reached the room's start. */
  next?: number;
}

/** Options for {@linkcode ChatClient.next}. */
export interface NextOptions {
  /** Rejects with a `timeout` {@linkcode ConnectionError} after this many ms. */
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
   * More addresses of the same chat (servers sharing one database): when
   * `hostname:port` cannot be reached the next one is tried, and a reconnect
   * tries the next one first.
   */
  servers?: readonly { hostname: string; port: number }[];
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
  /**
   * A short-lived connection (a one-shot message from a script): the server
   * does not announce its joins and leaves, so rooms are not flooded with
   * them. Servers that do not know the flag announce them as usual.
   *
   * @default {false}
   */
  transient?: boolean;
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
  /** Their away message, when they are online and away. */
  away?: string;
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
  /** Why you leave: the others see it (at most 300 characters). */
  reason?: string;
}
