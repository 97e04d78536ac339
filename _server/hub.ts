/**
 * The chat's rooms and sessions, free of sockets: requests in, frames out.
 * The server's connections feed it parsed frames; tests can drive it with
 * fake peers. Room messages are stored before anyone hears of them: sends
 * that arrive in the same turn of the event loop are committed together.
 *
 * @module
 */

import type { ErrorCode } from "../protocol/errors.ts";
import type {
  AckFrame,
  ClientFrame,
  DmEvent,
  DmFrame,
  HelloFrame,
  HistoryFrame,
  JoinFrame,
  LeaveReason,
  MessageEvent,
  NickFrame,
  PartFrame,
  RequestId,
  RoomInfo,
  SendFrame,
  ServerFrame,
  TopicFrame,
  WhoFrame,
} from "../protocol/frames.ts";
import { type Limits, LOBBY, PROTOCOL_VERSION } from "../protocol/limits.ts";
import { checkName, isRoomName, nameKey } from "../protocol/names.ts";
import { sanitize } from "../protocol/sanitize.ts";
import { formatFrame } from "../protocol/text_format.ts";
import { createHash, timingSafeEqual } from "node:crypto";
import type { Ban, BanKind, Retention, Store, StoredMessage } from "./store.ts";
import { type ByteStream, Transfers } from "./transfers.ts";
import { fingerprintOf, proofBytes, verifySignature } from "../_common/identity.ts";
import { confusableKey } from "./skeleton.ts";
import { LoginGuard } from "./login_guard.ts";
import type { Core } from "./core.ts";
import type { Command, CommandTable } from "./commands.ts";
import {
  type AddressRange,
  format as formatAddress,
  inRange,
  parseAddress,
  parseAddressRange,
} from "./address.ts";

const encoder = new TextEncoder();
/** Sorts names the same way whatever the server's locale. */
const byName = new Intl.Collator("und");
/** Most bytes of messages in one history answer or replay, so it fits any send queue. */
const HISTORY_BUDGET_BYTES = 256 * 1024;
/** Most private messages kept for a session while it reconnects. */
const MAX_HELD_DMS = 100;
/** Most recent private-message keys remembered per session. */
const MAX_DM_KEYS = 256;
/** Prune history after this many stored messages. */
const PRUNE_EVERY = 10_000;
/** Longest ban or mute with an end: a century. */
const MAX_SANCTION_SECONDS = 100 * 365 * 86_400;

/**
 * A server frame with its encodings, made at most once however many peers
 * receive it.
 */
export class Outbound {
  /** The frame. */
  readonly frame: ServerFrame;
  #json: Uint8Array | undefined;
  #text: Uint8Array | null | undefined;
  /** A room message as text with its room named, for readers typing into another room. */
  #tagged: Uint8Array | null | undefined;

  /**
   * Wraps a frame.
   *
   * @param frame The frame to send.
   */
  constructor(frame: ServerFrame) {
    this.frame = frame;
  }

  /** The frame as one line of JSON. */
  get json(): Uint8Array {
    return this.#json ??= encoder.encode(JSON.stringify(this.frame) + "\n");
  }

  /**
   * The frame as text lines for `nc` users, or `null` when there is nothing to
   * show. A room message is tagged with its room unless the reader types into
   * that room; each of the two forms is rendered at most once.
   *
   * @param room The room the reader types into.
   * @returns The bytes to send.
   */
  text(room: string | undefined): Uint8Array | null {
    const frame = this.frame;
    if (frame.type === "message" && frame.room !== room) {
      if (this.#tagged === undefined) this.#tagged = render(frame, "");
      return this.#tagged;
    }
    if (this.#text === undefined) {
      this.#text = render(frame, frame.type === "message" ? frame.room : undefined);
    }
    return this.#text;
  }
}

function render(frame: ServerFrame, room: string | undefined): Uint8Array | null {
  const text = formatFrame(frame, { room });
  return text === undefined ? null : encoder.encode(text.replaceAll("\n", "\r\n") + "\r\n");
}

/** One connection as the hub sees it. */
export interface Peer {
  /** Queues a frame for the peer. Must not throw. */
  deliver(out: Outbound): void;
  /** Sends what is queued, then closes the connection. */
  close(): void;
  /** This connection now carries another (resumed) session. */
  adopt(session: Session): void;
  /** Whether the peer can take part in file transfers (plain-text users cannot). */
  readonly files: boolean;
}

/** One person's state on the server, which can outlive a connection. */
export class Session {
  /** The connection, or `undefined` while the server holds the session for a reconnect. */
  peer: Peer | undefined;
  /** Where the connection comes from, for the log. */
  remote: string;
  /** The registered name, once the handshake is done. */
  name: string | undefined;
  /** The rooms the session is in. */
  readonly rooms: Set<Room> = new Set();
  /** The room plain-text lines go to. */
  current: Room | undefined;
  /** Set once the session has left, so it is announced only once. */
  gone = false;
  /** The resume token. */
  token = "";
  /** Whether the client reconnects by itself. */
  reconnect = false;
  /** The timer that ends a held session. */
  holdTimer: ReturnType<typeof setTimeout> | undefined;
  /** Private messages that arrived while the session was held. */
  heldDms: DmEvent[] = [];
  /** Recent private-message keys and their acks (made on first use). */
  dmKeys: Map<string, AckFrame> | undefined;
  /** The fingerprint of the key the client proved it holds, if any. */
  fingerprint: string | undefined;
  /** The client's IP address. */
  ip = "";
  /** Rate-limit tokens left, and when they were last refilled (`performance.now()`). */
  tokens = Infinity;
  refilled = 0;

  /**
   * Creates a session for a new connection.
   *
   * @param peer The connection.
   * @param remote Where it comes from.
   */
  constructor(peer: Peer, origin: Origin) {
    this.peer = peer;
    this.remote = origin.remote;
    this.ip = origin.ip;
    this.origin = origin;
  }

  /** Where the connection comes from, and what a key proof must name. */
  origin: Origin;
  /** A `hello` with a key, waiting for its `auth`. */
  challenge: { hello: HelloFrame; nonce: string } | undefined;

  /** The name of the room plain-text lines go to. */
  get room(): string | undefined {
    return this.current?.name;
  }

  /**
   * Whether the session is in a room.
   *
   * @param name The room's name.
   * @returns Whether it is a member.
   */
  inRoom(name: string): boolean {
    for (const room of this.rooms) if (room.name === name) return true;
    return false;
  }
}

/** Where a connection comes from, as its door tells the core. */
export interface Origin {
  /** The address and port, for the log. */
  remote: string;
  /** The IP address, for bans and login backoff. */
  ip: string;
  /** The ports clients reach this server on: a key proof must name one of them. */
  ports: readonly number[];
  /**
   * On a TLS connection: the fingerprint of the server's certificate, which a
   * key proof must name; `undefined` on a plain connection.
   */
  fingerprint?: Promise<string | undefined>;
}

/** A room: its members, its last sequence number and its topic. */
export class Room {
  /** The room's name, starting with `#`. */
  readonly name: string;
  /** Everyone in the room. */
  readonly members: Set<Session> = new Set();
  /** The sequence number of the room's last message. */
  seq: number;
  /** The topic, `""` when none. */
  topic: string;

  /**
   * Creates a room.
   *
   * @param name The room's name.
   * @param seq The last stored sequence number.
   * @param topic The stored topic.
   */
  constructor(name: string, seq: number, topic: string) {
    this.name = name;
    this.seq = seq;
    this.topic = topic;
  }
}

/** Options for {@linkcode Hub}. */
export interface HubOptions {
  /** The limits to enforce. */
  limits: Limits;
  /** Server software name and version, sent in `welcome`. */
  software: string;
  /** Where room messages are stored. */
  store: Store;
  /** How many recent messages to replay on joining a room. */
  historyOnJoin: number;
  /** Most messages in one `history` answer. */
  maxHistoryPage: number;
  /** How long a lost session of a reconnecting client is held, in ms. */
  resumeGrace: number;
  /** How much history to keep. */
  retention: Retention;
  /** The server's password, if it has one. */
  password?: string;
  /** Fingerprints of the operators' keys. */
  operators?: ReadonlySet<string>;
  /** Receives one line per join, leave and rename, for the operator. */
  log?: (line: string) => void;
}

/** A raw 32-byte key and a 64-byte signature in padded base64. */
const WELL_FORMED_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
const WELL_FORMED_SIGNATURE = /^[A-Za-z0-9+/]{85}[AQgw]==$/;

function nonce(): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(24))));
}

/** Why a `hello` with a key names another server than the one it reached, or `undefined`. */
async function notForUs(origin: Origin, hello: HelloFrame): Promise<string | undefined> {
  if (hello.server === undefined) {
    return 'A key proof must name the server ("server" in "hello", chat-auth-v2): ' +
      "update the client";
  }
  const port = /^(?:\[[^\]]*\]|[^:\[\]]*):(\d{1,5})$/.exec(hello.server)?.[1];
  if (port === undefined || !origin.ports.includes(Number(port))) {
    return `The key proof is for "${hello.server.slice(0, 100)}", not for this server (port ${
      origin.ports.join(" or ")
    })`;
  }
  const ours = await origin.fingerprint;
  const theirs = hello.tls ?? "";
  if ((ours ?? "") !== theirs) {
    return theirs === ""
      ? "The key proof names no TLS certificate, but this connection is TLS"
      : ours === undefined
      ? `The key proof is for a TLS server with the certificate "${
        theirs.slice(0, 100)
      }", but this connection is not TLS`
      : `The key proof is for the TLS certificate "${
        theirs.slice(0, 100)
      }", not this server's ${ours}`;
  }
  return undefined;
}

function digest(text: string): Uint8Array {
  return createHash("sha256").update(text).digest();
}

function until(ban: Ban): string {
  return ban.until === null ? "for ever" : `until ${ban.until.slice(0, 16).replace("T", " ")} UTC`;
}

function codePoints(text: string): number {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0xd800 || unit > 0xdbff) count++;
  }
  return count;
}

function token(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(18));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_");
}

interface PendingSend {
  session: Session;
  room: Room;
  id: RequestId;
  stored: StoredMessage;
  out: Outbound;
}

/** The rooms and sessions of one server. */
export class Hub implements Core {
  #options: HubOptions;
  #store: Store;
  #names = new Map<string, Session>();
  #tokens = new Map<string, Session>();
  #sessions = new Set<Session>();
  #rooms = new Map<string, Room>();
  #pending: PendingSend[] = [];
  #pendingKeys = new Map<string, PendingSend>();
  #commitScheduled = false;
  #storedSincePrune = 0;
  #prunedAt = performance.now();
  #closing = false;
  #bans = new Map<string, Ban>();
  /** Parsed `ip` ban values. */
  #ranges = new Map<string, AddressRange>();
  /** Sessions (connected or held) by the look of their name. */
  #looks = new Map<string, Session>();
  /** Names bound to keys, by their look: fingerprint → the name as written. */
  #bound = new Map<string, Map<string, string>>();
  #guard: LoginGuard;
  #transfers: Transfers;
  #password: Uint8Array | undefined;

  /**
   * Creates a hub with only `#lobby`.
   *
   * @param options The store, the limits and where to log.
   */
  constructor(options: HubOptions) {
    this.#options = options;
    this.#store = options.store;
    this.#room(LOBBY);
    this.#transfers = new Transfers(options.limits, {
      find: (name) => this.#names.get(nameKey(name.normalize("NFC"))),
      room: (session, name) => {
        const room = this.#rooms.get(name);
        return room !== undefined && session.rooms.has(room) ? room : undefined;
      },
      outbound: (frame) => new Outbound(frame),
      log: options.log,
    });
    this.#store.prune(options.retention);
    this.#loadBans();
    for (const { name, fingerprint } of this.#store.boundNames()) this.#bind(name, fingerprint);
    if (options.password !== undefined) this.#password = digest(options.password);
    this.#guard = new LoginGuard(options.limits.loginFailureRate, options.limits.loginBackoffMax);
  }

  #loadBans(): void {
    this.#bans.clear();
    for (const ban of this.#store.bans()) this.#bans.set(`${ban.kind}:${ban.value}`, ban);
  }

  /** Remembers that a name is bound to a key, for the look-alike check. */
  #bind(name: string, fingerprint: string): void {
    const look = confusableKey(name);
    let owners = this.#bound.get(look);
    if (owners === undefined) this.#bound.set(look, owners = new Map());
    if (!owners.has(fingerprint)) owners.set(fingerprint, name);
  }

  /** Counts a failed password or key proof against an address. */
  #loginFailed(ip: string): void {
    this.#guard.failed(ip);
    this.#options.log?.(`Failed login from ${ip}`);
  }

  /**
   * The ban in force for a name key, fingerprint, address or mute, if any.
   *
   * @param kind What it applies to.
   * @param value The name key, fingerprint or address.
   * @returns The ban.
   */
  banned(kind: BanKind, value: string | undefined): Ban | undefined {
    if (value === undefined) return undefined;
    if (kind === "ip") return this.#addressBan(value);
    const ban = this.#bans.get(`${kind}:${value}`);
    if (ban === undefined) return undefined;
    if (ban.until !== null && ban.until <= new Date().toISOString()) {
      this.#bans.delete(`${kind}:${value}`);
      return undefined;
    }
    return ban;
  }

  /** The `ip:` ban in force whose address or prefix holds an address, if any. */
  #addressBan(ip: string): Ban | undefined {
    const address = parseAddress(ip);
    if (address === undefined) return undefined;
    const now = new Date().toISOString();
    for (const [key, ban] of this.#bans) {
      if (ban.kind !== "ip") continue;
      if (ban.until !== null && ban.until <= now) {
        this.#bans.delete(key);
        continue;
      }
      let range = this.#ranges.get(ban.value);
      if (range === undefined) {
        const parsed = parseAddressRange(ban.value);
        if (!parsed.ok) continue;
        this.#ranges.set(ban.value, range = parsed.range);
      }
      if (inRange(range, address)) return ban;
    }
    return undefined;
  }

  /** How many sessions completed the handshake and are still here (held ones included). */
  get size(): number {
    return this.#names.size;
  }

  /**
   * Registers a new connection, so it hears about a shutdown even before it
   * has a name.
   *
   * @param peer The connection.
   * @param origin Where it comes from.
   * @returns Its session.
   */
  open(peer: Peer, origin: Origin): Session {
    const session = new Session(peer, origin);
    this.#sessions.add(session);
    return session;
  }

  /**
   * Handles one request from a session.
   *
   * @param session The session it came from.
   * @param frame The request.
   * @returns A promise when the requests after this one must wait for it (a
   * key proof being checked).
   */
  receive(session: Session, frame: ClientFrame): Promise<void> | undefined {
    // While a key proof is pending, the next frame must be it.
    if (session.challenge !== undefined) return this.#authenticate(session, frame);
    if (
      frame.type === "hello" && frame.key !== undefined && session.name === undefined &&
      !this.#canResume(frame.resume)
    ) {
      // Prove the key before anything else: sign a fresh nonce. The name goes into the
      // signed bytes, so check it first.
      const name = checkName(frame.name);
      if (!name.ok) {
        this.reject(session, "invalid_name", name.message, frame.id);
        return undefined;
      }
      // The proof must be for this server, as the client dialed it: else a server the
      // user joined could pass our challenge on and log in here as them.
      return this.#challengeFor(session, frame);
    }
    this.#request(session, frame);
    return undefined;
  }

  /** Sends a challenge for a `hello` with a key, once the server it names is this one. */
  async #challengeFor(session: Session, frame: HelloFrame): Promise<void> {
    const refusal = await notForUs(session.origin, frame);
    if (refusal !== undefined) return this.reject(session, "auth_failed", refusal, frame.id);
    session.challenge = { hello: frame, nonce: nonce() };
    session.peer?.deliver(
      new Outbound({ type: "challenge", id: frame.id, nonce: session.challenge.nonce }),
    );
  }

  async #authenticate(session: Session, frame: ClientFrame): Promise<void> {
    const { hello, nonce } = session.challenge!;
    session.challenge = undefined;
    const fail = (message: string) => this.reject(session, "auth_failed", message, hello.id);
    if (frame.type !== "auth" || frame.id !== hello.id) {
      fail('Expected "auth" with the signed challenge after a "hello" with a key');
      // The frame itself still gets its own answer.
      if (frame.type !== "auth" && frame.type !== "data") await this.receive(session, frame);
      return;
    }
    const wait = this.#guard.wait(session.ip);
    if (wait > 0) {
      return this.reject(
        session,
        "rate_limited",
        `Too many failed logins from your address; try again in ${Math.ceil(wait / 1000)} s`,
        hello.id,
      );
    }
    const key = hello.key!;
    if (frame.nonce === undefined || frame.nonce === "" || frame.nonce.includes("\n")) {
      return fail('Expected the client\'s "nonce" in "auth" (chat-auth-v2): update the client');
    }
    const valid = await verifySignature(
      key,
      frame.signature,
      proofBytes({
        server: hello.server ?? "",
        tls: hello.tls ?? "",
        name: hello.name,
        serverNonce: nonce,
        clientNonce: frame.nonce,
      }),
    );
    if (!valid) {
      // Only a proof that could have been right counts as a failed login.
      if (WELL_FORMED_KEY.test(key) && WELL_FORMED_SIGNATURE.test(frame.signature)) {
        this.#loginFailed(session.ip);
      }
      return fail("The signature does not match the key");
    }
    session.fingerprint = await fingerprintOf(key);
    this.#request(session, hello);
  }

  /**
   * The requests and the rules that apply to each; see
   * {@linkcode CommandTable}. Handlers run once the rules let them through.
   */
  static #commands: CommandTable<Hub, Session, Session> = {
    hello: { run: (hub, session, frame) => hub.#hello(session, frame), beforeName: true, cost: 0 },
    send: { run: (hub, session, frame) => hub.#send(session, frame), speaks: true },
    dm: { run: (hub, session, frame) => hub.#dm(session, frame), speaks: true },
    nick: { run: (hub, session, frame) => hub.#nick(session, frame) },
    who: { run: (hub, session, frame) => hub.#who(session, frame) },
    join: { run: (hub, session, frame) => hub.#join(session, frame), cost: 5 },
    part: { run: (hub, session, frame) => hub.#part(session, frame) },
    rooms: {
      run: (hub, session, frame) =>
        hub.#ack(session, { type: "ack", id: frame.id, rooms: hub.#roomList() }),
    },
    topic: {
      run: (hub, session, frame) => hub.#topic(session, frame),
      speaks: (frame) => frame.topic !== undefined,
    },
    history: { run: (hub, session, frame) => hub.#history(session, frame) },
    whois: { run: (hub, session, frame) => hub.#whois(session, frame.id, frame.name) },
    kick: { run: (hub, session, frame) => hub.#moderate(session, frame), operator: true },
    ban: { run: (hub, session, frame) => hub.#moderate(session, frame), operator: true },
    unban: { run: (hub, session, frame) => hub.#moderate(session, frame), operator: true },
    mute: { run: (hub, session, frame) => hub.#moderate(session, frame), operator: true },
    auth: {
      run: (hub, session, frame) =>
        hub.#fail(session, frame.id, "bad_request", 'Unexpected "auth": no challenge is pending'),
    },
    offer: {
      run: (hub, session, frame) => hub.#transfers.offer(session, frame),
      speaks: true,
    },
    accept: { run: (hub, session, frame) => hub.#transfers.accept(session, frame) },
    decline: { run: (hub, session, frame) => hub.#transfers.decline(session, frame) },
    cancel: { run: (hub, session, frame) => hub.#transfers.cancel(session, frame) },
    received: { run: (hub, session, frame) => hub.#transfers.received(session, frame) },
    quit: {
      run: (hub, session, frame) => {
        hub.#ack(session, { type: "ack", id: frame.id });
        hub.#leave(session, "quit");
        session.peer?.close();
      },
      cost: 0,
    },
    ping: {
      run: (hub, session, frame) => hub.#ack(session, { type: "ack", id: frame.id }),
      cost: 0,
    },
  };

  /** Applies the rules of the table, in one place, then runs the request's handler. */
  #request(session: Session, frame: ClientFrame): void {
    // After "quit" (or a disconnect) nothing more is read from the session.
    if (session.gone || frame.type === "pong" || frame.type === "data") return;
    if (this.#closing) {
      return this.#fail(session, frame.id, "shutting_down", "Server is shutting down");
    }
    const command = Hub.#commands[frame.type] as Command<Hub, Session, typeof frame>;
    if (!this.#allow(session, frame.id, command.cost ?? 1)) return;
    // A send joins the batch; everything else sees the world after the sends before it.
    if (frame.type !== "send" || session.name === undefined) this.commit();
    if (session.name === undefined && command.beforeName !== true) {
      return this.#fail(session, frame.id, "not_registered", 'Send "hello" first');
    }
    if (command.operator === true && !this.#isOperator(session)) {
      return this.#fail(session, frame.id, "not_operator", "Only operators can do that");
    }
    const speaks = typeof command.speaks === "function" ? command.speaks(frame) : command.speaks;
    if (speaks === true && this.#muted(session, frame.id)) return;
    command.run(this, session, frame);
  }

  /**
   * Reports a frame that could not be read.
   *
   * @param session The session that sent it.
   * @param code Why it was rejected.
   * @param message What was wrong.
   * @param id The request id, when one could be read.
   */
  reject(session: Session, code: ErrorCode, message: string, id?: RequestId): void {
    this.commit();
    this.#fail(session, id, code, message);
  }

  /**
   * Whether a resume token would take over a session (then no key proof is
   * needed: the token is the proof).
   */
  #canResume(token: string | undefined): boolean {
    const held = token === undefined ? undefined : this.#tokens.get(token);
    return held !== undefined && !held.gone && held.reconnect;
  }

  /**
   * Reports a failure of the server itself while handling a request: logged
   * for the operator, answered with `internal_error`.
   *
   * @param session The session whose request failed.
   * @param error What was thrown.
   */
  fault(session: Session, error: unknown): void {
    this.#options.log?.(
      `Internal error: ${error instanceof Error ? error.stack ?? error.message : String(error)}`,
    );
    this.#fail(
      session,
      undefined,
      "internal_error",
      "The server failed on that request; it was logged",
    );
  }

  /**
   * A connection ended. If it still carried its session, the session leaves,
   * or is held for a reconnect when its client said it would come back.
   *
   * @param session The connection's session.
   * @param peer The connection.
   * @param reason Why it ended.
   */
  disconnect(session: Session, peer: Peer, reason: LeaveReason): void {
    if (session.peer !== peer || session.gone) return;
    this.commit();
    if (
      (reason === "lost" || reason === "timeout") && session.reconnect &&
      session.name !== undefined &&
      this.#options.resumeGrace > 0
    ) {
      session.peer = undefined;
      session.holdTimer = setTimeout(() => this.#leave(session, "lost"), this.#options.resumeGrace);
      this.#options.log?.(`${session.name} lost the connection; holding the name for a reconnect`);
      return;
    }
    this.#leave(session, reason);
  }

  /**
   * Commits the sends waiting in the current batch, then delivers them and
   * their acknowledgements. Called at the end of each event-loop turn, and
   * before anything that must see them.
   */
  commit(): void {
    if (this.#pending.length === 0) return;
    const batch = this.#pending;
    this.#pending = [];
    this.#pendingKeys.clear();
    try {
      this.#store.append(batch.map((entry) => entry.stored));
    } catch (error) {
      for (const entry of batch) entry.room.seq = this.#store.lastSeq(entry.room.name);
      this.#options.log?.(
        `Cannot store messages: ${error instanceof Error ? error.message : error}`,
      );
      for (const entry of batch) {
        this.#fail(
          entry.session,
          entry.id,
          "storage_failed",
          "The server could not store the message; try again",
        );
      }
      return;
    }
    for (const entry of batch) {
      this.#broadcast(entry.room.members, entry.out, entry.session);
      const { room, seq, ts } = entry.stored;
      this.#ack(entry.session, { type: "ack", id: entry.id, room, seq, ts });
    }
    this.#storedSincePrune += batch.length;
    if (this.#storedSincePrune >= PRUNE_EVERY) {
      this.#storedSincePrune = 0;
      this.#prune();
    }
  }

  /** Housekeeping the server runs every few seconds: history retention, every ten minutes. */
  maintain(): void {
    const now = performance.now();
    if (now - this.#prunedAt < 600_000) return;
    this.#prunedAt = now;
    this.#guard.sweep();
    this.commit();
    this.#prune();
  }

  /** Applies the retention policy while serving: a failure is logged, and serving goes on. */
  #prune(): void {
    try {
      this.#store.prune(this.#options.retention);
    } catch (error) {
      this.#options.log?.(
        `Cannot remove old history from "${this.#store.path}": ${
          error instanceof Error ? error.message : error
        }`,
      );
    }
  }

  /**
   * Hands a data connection (its first frame was `data`) to the transfers.
   *
   * @param stream The connection's bytes.
   * @param token The token it presented.
   * @returns A promise that resolves when the data connection is closed, or
   * `undefined` when the token opened nothing.
   */
  attachData(stream: ByteStream, token: string): Promise<void> | undefined {
    return this.#closing ? undefined : this.#transfers.attach(stream, token);
  }

  /** Stops every transfer and waits for their relays. */
  stopTransfers(): Promise<void> {
    return this.#transfers.shutdown();
  }

  /** Says goodbye to every session and closes them; the hub accepts nothing more. */
  shutdown(): void {
    this.commit();
    this.#closing = true;
    const bye = new Outbound({
      type: "bye",
      reason: "shutdown",
      message: "Server is shutting down",
    });
    for (const session of this.#sessions) {
      session.gone = true;
      clearTimeout(session.holdTimer);
      session.peer?.deliver(bye);
      session.peer?.close();
    }
    this.#sessions.clear();
    this.#names.clear();
    this.#looks.clear();
    this.#tokens.clear();
  }

  /** The token bucket: a burst, then a steady rate; some requests cost more. */
  #allow(session: Session, id: RequestId, price: number): boolean {
    if (price === 0) return true;
    const { rateLimit, rateBurst } = this.#options.limits;
    const now = performance.now();
    session.tokens = Math.min(
      rateBurst,
      session.tokens + (now - session.refilled) * rateLimit / 1000,
    );
    session.refilled = now;
    const cost = Math.min(price, rateBurst);
    if (session.tokens >= cost) {
      session.tokens -= cost;
      return true;
    }
    const wait = Math.max((cost - session.tokens) / rateLimit, 0.1).toFixed(1);
    this.commit();
    this.#fail(
      session,
      id,
      "rate_limited",
      `Slow down: too many requests; try again in ${wait} s`,
    );
    return false;
  }

  #room(name: string): Room {
    let room = this.#rooms.get(name);
    if (room === undefined) {
      room = new Room(name, this.#store.lastSeq(name), this.#store.topic(name)?.topic ?? "");
      this.#rooms.set(name, room);
    }
    return room;
  }

  #leave(session: Session, reason: LeaveReason): void {
    if (session.gone) return;
    session.gone = true;
    clearTimeout(session.holdTimer);
    this.#sessions.delete(session);
    this.#tokens.delete(session.token);
    const name = session.name;
    if (name === undefined) return;
    this.#transfers.left(session);
    this.#names.delete(nameKey(name));
    this.#looks.delete(confusableKey(name));
    const ts = new Date().toISOString();
    for (const room of session.rooms) {
      room.members.delete(session);
      this.#presence(room, new Outbound({ type: "leave", room: room.name, name, reason, ts }));
      this.#forget(room);
    }
    session.rooms.clear();
    this.#options.log?.(`${name} left (${reason})`);
  }

  /** Drops an empty room from memory (its history and topic stay stored). */
  #forget(room: Room): void {
    if (room.members.size === 0 && room.name !== LOBBY) this.#rooms.delete(room.name);
  }

  #fail(session: Session, id: RequestId | undefined, code: ErrorCode, message: string): void {
    // Answers keep the order of the requests: settle the sends before this one.
    this.commit();
    session.peer?.deliver(
      new Outbound(
        id === undefined ? { type: "error", code, message } : { type: "error", id, code, message },
      ),
    );
  }

  #ack(session: Session, ack: AckFrame): void {
    session.peer?.deliver(new Outbound(ack));
  }

  #broadcast(members: Iterable<Session>, out: Outbound, except?: Session): void {
    for (const member of members) {
      if (member !== except) member.peer?.deliver(out);
    }
  }

  #checkText(session: Session, id: RequestId, text: string): boolean {
    const max = this.#options.limits.maxTextLength;
    if (text.trim() === "") {
      this.#fail(session, id, "invalid_text", "Message is empty");
      return false;
    }
    if (text.length > max && (text.length > 2 * max || codePoints(text) > max)) {
      this.#fail(session, id, "invalid_text", `Message is longer than ${max} characters`);
      return false;
    }
    return true;
  }

  #claim(session: Session, id: RequestId, wanted: string): string | undefined {
    const checked = checkName(wanted);
    if (!checked.ok) {
      this.#fail(session, id, "invalid_name", checked.message);
      return undefined;
    }
    const owner = this.#store.nameOwner(nameKey(checked.name));
    if (owner !== undefined && owner !== session.fingerprint) {
      this.#fail(
        session,
        id,
        "name_claimed",
        `The name "${checked.name}" belongs to another key (${owner}); choose another name`,
      );
      return undefined;
    }
    const look = confusableKey(checked.name);
    if (owner === undefined) {
      // A name that looks like one bound to another key is that key's too.
      for (const [fingerprint, name] of this.#bound.get(look) ?? []) {
        if (fingerprint === session.fingerprint) continue;
        this.#fail(
          session,
          id,
          "name_claimed",
          `The name "${checked.name}" looks like "${name}", which belongs to another key (${fingerprint}); choose another name`,
        );
        return undefined;
      }
    }
    const holder = this.#names.get(nameKey(checked.name));
    if (holder !== undefined && holder !== session) {
      this.#fail(
        session,
        id,
        "name_taken",
        holder.peer === undefined
          ? `The name "${checked.name}" is held for someone who is reconnecting`
          : `The name "${checked.name}" is taken`,
      );
      return undefined;
    }
    const alike = this.#looks.get(look);
    if (alike !== undefined && alike !== session && !alike.gone) {
      this.#fail(
        session,
        id,
        "name_taken",
        `The name "${checked.name}" looks like "${alike.name}", which is taken; choose another name`,
      );
      return undefined;
    }
    return checked.name;
  }

  /** Replays the latest messages of a room that fit the budget. */
  #replay(session: Session, room: Room, count: number): void {
    const limit = Math.min(count, this.#options.maxHistoryPage);
    const messages = this.#read(
      room,
      `the latest ${limit}`,
      () => this.#store.recent(room.name, limit),
    );
    // Damaged history is logged and skipped: the join itself succeeds.
    for (const message of this.#fit(messages ?? [], true)) {
      session.peer?.deliver(new Outbound(message));
    }
  }

  /**
   * Reads history, or logs for the operator which part of which room cannot
   * be read (a damaged database) and returns `undefined`.
   */
  #read(room: Room, what: string, read: () => MessageEvent[]): MessageEvent[] | undefined {
    try {
      return read();
    } catch (error) {
      this.#options.log?.(
        `Cannot read the history of ${room.name} (${what} messages) from "${this.#store.path}": ${
          error instanceof Error ? error.message : error
        }`,
      );
      return undefined;
    }
  }

  /** Keeps the newest (`fromEnd`) or oldest messages whose JSON fits the history budget. */
  #fit(messages: MessageEvent[], fromEnd: boolean): MessageEvent[] {
    let bytes = 0;
    const kept: MessageEvent[] = [];
    const order = fromEnd ? [...messages].reverse() : messages;
    for (const message of order) {
      bytes += message.text.length * 3 + 200;
      if (bytes > HISTORY_BUDGET_BYTES && kept.length > 0) break;
      kept.push(message);
    }
    return fromEnd ? kept.reverse() : kept;
  }

  #roomState(room: Room): { name: string; seq: number; topic: string; members: string[] } {
    return { name: room.name, seq: room.seq, topic: room.topic, members: this.#namesIn(room) };
  }

  #hello(session: Session, frame: HelloFrame): void {
    if (session.name !== undefined) {
      return this.#fail(session, frame.id, "already_registered", "Already joined");
    }
    if (frame.v !== PROTOCOL_VERSION) {
      return this.#fail(
        session,
        frame.id,
        "unsupported_version",
        `Protocol version ${frame.v} is not supported; this server speaks version ${PROTOCOL_VERSION}`,
      );
    }
    const software = frame.client === undefined ? "" : ` (${sanitize(frame.client.slice(0, 100))})`;
    const held = frame.resume === undefined ? undefined : this.#tokens.get(frame.resume);
    if (held !== undefined && !held.gone && held.reconnect) {
      return this.#resume(session, held, frame, software);
    }

    if (this.#password !== undefined) {
      const wait = this.#guard.wait(session.ip);
      if (wait > 0) {
        this.#fail(
          session,
          frame.id,
          "rate_limited",
          `Too many failed logins from your address; try again in ${Math.ceil(wait / 1000)} s`,
        );
        session.peer?.close();
        return;
      }
      const given = digest(frame.password ?? "");
      if (!timingSafeEqual(given, this.#password)) {
        if (frame.password !== undefined) this.#loginFailed(session.ip);
        this.#fail(
          session,
          frame.id,
          "unauthorized",
          frame.password === undefined ? "This server needs a password" : "Wrong password",
        );
        session.peer?.close();
        return;
      }
    }
    // The owner of the key of a session held for a reconnect takes it over at once.
    const asked = checkName(frame.name);
    const owned = asked.ok ? this.#names.get(nameKey(asked.name)) : undefined;
    if (
      owned !== undefined && owned.peer === undefined && !owned.gone &&
      session.fingerprint !== undefined && owned.fingerprint === session.fingerprint
    ) {
      if (this.#refuseBanned(session, frame.id, owned.name!)) return;
      this.#options.log?.(`${owned.name} proved its key and took over its held session`);
      return this.#resume(session, owned, frame, software);
    }
    const name = this.#claim(session, frame.id, frame.name);
    if (name === undefined) return;
    if (this.#refuseBanned(session, frame.id, name)) return;
    if (session.fingerprint !== undefined) {
      this.#store.claimName(nameKey(name), name, session.fingerprint);
      this.#bind(name, session.fingerprint);
    }
    session.name = name;
    session.token = token();
    session.reconnect = frame.reconnect === true;
    this.#names.set(nameKey(name), session);
    this.#looks.set(confusableKey(name), session);
    this.#tokens.set(session.token, session);
    const lobby = this.#room(LOBBY);
    const ts = new Date().toISOString();
    this.#presence(lobby, new Outbound({ type: "join", room: LOBBY, name, ts }));
    lobby.members.add(session);
    session.rooms.add(lobby);
    session.current = lobby;
    this.#welcome(session, frame, false);
    this.#replay(session, lobby, frame.history ?? this.#options.historyOnJoin);
    this.#options.log?.(`${name} joined from ${session.remote}${software}`);
  }

  /**
   * Refuses a `hello` whose name, key or (without a key) address is banned,
   * and closes the connection.
   */
  #refuseBanned(session: Session, id: RequestId, name: string): boolean {
    const ban = this.banned("name", nameKey(name)) ?? this.banned("key", session.fingerprint) ??
      (session.fingerprint === undefined ? this.#keylessBan(session.ip) : undefined);
    if (ban === undefined) return false;
    this.#fail(
      session,
      id,
      "banned",
      `You are banned ${until(ban)}${ban.reason ? `: ${ban.reason}` : ""}`,
    );
    session.peer?.close();
    return true;
  }

  /** A ban of the address of someone banned by name or key: it holds for sessions without a key. */
  #keylessBan(ip: string): Ban | undefined {
    const address = parseAddress(ip);
    return address === undefined ? undefined : this.banned("addr", formatAddress(address));
  }

  #welcome(session: Session, frame: HelloFrame, resumed: boolean): void {
    const { maxFrameBytes, maxTextLength } = this.#options.limits;
    const lobby = this.#room(LOBBY);
    session.peer?.deliver(
      new Outbound({
        type: "welcome",
        id: frame.id,
        v: PROTOCOL_VERSION,
        server: this.#options.software,
        name: session.name!,
        room: LOBBY,
        members: this.#namesIn(lobby),
        rooms: [...session.rooms].map((room) => this.#roomState(room)),
        session: session.token,
        resumed,
        resumeGrace: this.#options.resumeGrace,
        limits: { maxFrameBytes, maxTextLength, idleTimeout: this.#options.limits.idleTimeout },
      }),
    );
  }

  #resume(fresh: Session, held: Session, frame: HelloFrame, software: string): void {
    const old = held.peer;
    const peer = fresh.peer!;
    clearTimeout(held.holdTimer);
    held.holdTimer = undefined;
    this.#sessions.delete(fresh);
    fresh.gone = true;
    held.peer = peer;
    held.remote = fresh.remote;
    held.ip = fresh.ip;
    // A token works once: the resumed session gets a new one.
    this.#tokens.delete(held.token);
    held.token = token();
    this.#tokens.set(held.token, held);
    held.reconnect = frame.reconnect === true;
    peer.adopt(held);
    if (old !== undefined) {
      // The old connection is still open (its end has not been noticed yet): retire it.
      old.deliver(
        new Outbound({
          type: "bye",
          reason: "replaced",
          message: "This session was resumed elsewhere",
        }),
      );
      old.close();
    }
    this.#welcome(held, frame, true);
    for (const dm of held.heldDms.splice(0)) peer.deliver(new Outbound(dm));
    this.#options.log?.(`${held.name} reconnected from ${held.remote}${software}`);
  }

  #roomOf(session: Session, id: RequestId, name: string, member = true): Room | undefined {
    // A room that exists has a valid name: skip the check on the hot path.
    const known = this.#rooms.get(name);
    if (known !== undefined && (!member || session.rooms.has(known))) return known;
    if (!isRoomName(name)) {
      this.#fail(session, id, "invalid_room", `Room name ${JSON.stringify(name)} is not valid`);
      return undefined;
    }
    const room = this.#rooms.get(name);
    if (member && (room === undefined || !session.rooms.has(room))) {
      this.#fail(session, id, "not_in_room", `You are not in "${name}"`);
      return undefined;
    }
    return room ?? this.#room(name);
  }

  /** Refuses a message from a muted user. */
  #muted(session: Session, id: RequestId): boolean {
    const mute = this.#muteOf(session);
    if (mute === undefined) return false;
    this.#fail(
      session,
      id,
      "muted",
      `You are muted ${until(mute)}${mute.reason ? `: ${mute.reason}` : ""}`,
    );
    return true;
  }

  /** The mute in force for a session's name or key, if any. */
  #muteOf(session: Session): Ban | undefined {
    return this.banned("mute", nameKey(session.name!)) ??
      this.banned("mute", session.fingerprint && `key:${session.fingerprint}`);
  }

  #whois(session: Session, id: RequestId, wanted: string): void {
    const key = nameKey(wanted.normalize("NFC"));
    const online = this.#names.get(key);
    const fingerprint = online?.fingerprint ?? this.#store.nameOwner(key);
    if (online === undefined && fingerprint === undefined) {
      return this.#fail(
        session,
        id,
        "no_such_user",
        `Nobody is called "${wanted}" or has claimed that name`,
      );
    }
    const ack: AckFrame = {
      type: "ack",
      id,
      name: online?.name ?? wanted,
      online: online !== undefined,
    };
    if (fingerprint !== undefined) ack.fingerprint = fingerprint;
    if (online !== undefined) ack.op = this.#isOperator(online);
    this.#ack(session, ack);
  }

  #isOperator(session: Session): boolean {
    return session.fingerprint !== undefined &&
      (this.#options.operators?.has(session.fingerprint) ?? false);
  }

  /** Ends a session on an operator's order: it is told why, the others see it leave. */
  #eject(target: Session, reason: "kicked" | "banned", message: string): void {
    const peer = target.peer;
    this.#leave(target, reason);
    peer?.deliver(new Outbound({ type: "bye", reason, message }));
    peer?.close();
  }

  /**
   * Stores a ban or mute, and those that go with it (all with the same end,
   * reason and origin), and keeps them in memory.
   */
  #sanction(
    targets: [BanKind, string][],
    seconds: number | undefined,
    reason: string | undefined,
    by: string,
  ): Ban {
    const now = Date.now();
    const [kind, value] = targets[0]!;
    const origin = `${kind}:${value}`;
    const bans = targets.map(([kind, value]): Ban => ({
      kind,
      value,
      until: seconds === undefined ? null : new Date(now + seconds * 1000).toISOString(),
      reason: reason ?? "",
      by,
      created: new Date(now).toISOString(),
      origin,
    }));
    for (const ban of bans) {
      this.#store.ban(ban);
      this.#bans.set(`${ban.kind}:${ban.value}`, ban);
    }
    return bans[0]!;
  }

  /**
   * What a ban of a name or key covers besides itself: the key bound to the
   * name, and the keys and addresses of the sessions that match it now.
   */
  #related(kind: "name" | "key", value: string): [BanKind, string][] {
    const related: [BanKind, string][] = [[kind, value]];
    const add = (kind: BanKind, value: string | undefined) => {
      if (value !== undefined && !related.some(([k, v]) => k === kind && v === value)) {
        related.push([kind, value]);
      }
    };
    if (kind === "name") add("key", this.#store.nameOwner(value));
    for (const other of this.#sessions) {
      const matches = kind === "name"
        ? other.name !== undefined && nameKey(other.name) === value
        : other.fingerprint === value;
      if (!matches) continue;
      add("key", other.fingerprint);
      const address = parseAddress(other.ip);
      if (address !== undefined) add("addr", formatAddress(address));
    }
    return related;
  }

  /** Whether a session matches a stored ban (an `addr` ban only without a key). */
  #matches(session: Session, ban: Ban): boolean {
    switch (ban.kind) {
      case "name":
        return session.name !== undefined && nameKey(session.name) === ban.value;
      case "key":
        return session.fingerprint === ban.value;
      case "addr": {
        const address = parseAddress(session.ip);
        return session.fingerprint === undefined && address !== undefined &&
          formatAddress(address) === ban.value;
      }
      case "ip": {
        const range = parseAddressRange(ban.value);
        const address = parseAddress(session.ip);
        return range.ok && address !== undefined && inRange(range.range, address);
      }
      case "mute":
        return false;
    }
  }

  #moderate(
    session: Session,
    frame: Extract<ClientFrame, { type: "kick" | "ban" | "unban" | "mute" }>,
  ): void {
    const by = session.name!;
    // At most a century: later dates do not fit the stored form.
    if (frame.type !== "kick" && frame.type !== "unban" && frame.duration !== undefined) {
      frame.duration = Math.min(frame.duration, MAX_SANCTION_SECONDS);
    }
    if (frame.type === "kick") {
      const target = this.#names.get(nameKey(frame.name.normalize("NFC")));
      if (target === undefined) {
        return this.#fail(
          session,
          frame.id,
          "no_such_user",
          `Nobody here is called "${frame.name}"`,
        );
      }
      this.#eject(target, "kicked", `Kicked by ${by}${frame.reason ? `: ${frame.reason}` : ""}`);
      this.#options.log?.(`${by} kicked ${target.name}`);
      return this.#ack(session, { type: "ack", id: frame.id });
    }
    if (frame.type === "mute") {
      const key = nameKey(frame.name.normalize("NFC"));
      const fingerprint = this.#names.get(key)?.fingerprint;
      if (frame.duration === 0) {
        // Lifts the mute of the name and of its key, with those made with them.
        for (const value of fingerprint === undefined ? [key] : [key, `key:${fingerprint}`]) {
          this.#store.unban("mute", value);
        }
        this.#loadBans();
      } else {
        // A renamed user stays muted: the mute follows the key too (and renames, see #nick).
        const targets: [BanKind, string][] = [["mute", key]];
        if (fingerprint !== undefined) targets.push(["mute", `key:${fingerprint}`]);
        this.#sanction(targets, frame.duration, frame.reason, by);
      }
      this.#options.log?.(`${by} ${frame.duration === 0 ? "unmuted" : "muted"} ${frame.name}`);
      return this.#ack(session, { type: "ack", id: frame.id });
    }
    const target = frame.target.trim();
    let [kind, value]: [BanKind, string] = target.startsWith("key:")
      ? ["key", target.slice(4)]
      : target.startsWith("ip:")
      ? ["ip", target.slice(3)]
      : ["name", nameKey(target.normalize("NFC"))];
    if (frame.type === "ban" && frame.duration === 0) {
      return this.#fail(
        session,
        frame.id,
        "bad_request",
        "A ban needs a duration above 0, or none (for ever)",
      );
    }
    if (value === "") {
      return this.#fail(
        session,
        frame.id,
        "bad_request",
        "Say whom: NAME, key:FINGERPRINT or ip:ADDRESS",
      );
    }
    const written = value;
    if (kind === "ip") {
      const range = parseAddressRange(value);
      if (!range.ok) return this.#fail(session, frame.id, "bad_request", range.message);
      value = range.value;
    }
    if (frame.type === "unban") {
      // An address ban stored in another spelling is lifted as it was written.
      if (
        !this.#store.unban(kind, value) && !(written !== value && this.#store.unban(kind, written))
      ) {
        return this.#fail(session, frame.id, "no_such_user", `"${target}" is not banned`);
      }
      this.#loadBans();
      this.#options.log?.(`${by} unbanned ${target}`);
      return this.#ack(session, { type: "ack", id: frame.id });
    }
    const targets = kind === "name" || kind === "key"
      ? this.#related(kind, value)
      : [[kind, value] as [BanKind, string]];
    const ban = this.#sanction(targets, frame.duration, frame.reason, by);
    const message = `Banned by ${by} ${until(ban)}${ban.reason ? `: ${ban.reason}` : ""}`;
    const stored = targets.map(([kind, value]) => this.#bans.get(`${kind}:${value}`)!);
    for (const other of [...this.#sessions]) {
      if (other === session || other.gone) continue;
      if (stored.some((ban) => this.#matches(other, ban))) this.#eject(other, "banned", message);
    }
    this.#options.log?.(`${by} banned ${target} ${until(ban)}`);
    this.#ack(session, { type: "ack", id: frame.id });
  }

  #send(session: Session, frame: SendFrame): void {
    const room = this.#roomOf(session, frame.id, frame.room);
    if (room === undefined || !this.#checkText(session, frame.id, frame.text)) return;
    const from = session.name!;
    const key = frame.key === undefined ? undefined : `${nameKey(from)}:${frame.key}`;
    if (key !== undefined) {
      // The same key waiting in this batch: settle it first, so the answer is the truth.
      if (this.#pendingKeys.has(`${room.name}\n${key}`)) this.commit();
      const stored = this.#store.findKey(room.name, key);
      if (stored !== undefined) {
        // Already stored: answer as before (after the sends before it), store nothing new.
        this.commit();
        const { seq, ts } = stored;
        return this.#ack(session, {
          type: "ack",
          id: frame.id,
          room: room.name,
          seq,
          ts,
          duplicate: true,
        });
      }
    }
    const ts = new Date().toISOString();
    const seq = ++room.seq;
    const action = frame.action === true;
    const stored: StoredMessage = { room: room.name, seq, from, text: frame.text, ts, action, key };
    const out = new Outbound(
      action
        ? { type: "message", room: room.name, from, text: frame.text, ts, seq, action: true }
        : { type: "message", room: room.name, from, text: frame.text, ts, seq },
    );
    const entry: PendingSend = { session, room, id: frame.id, stored, out };
    this.#pending.push(entry);
    if (key !== undefined) this.#pendingKeys.set(`${room.name}\n${key}`, entry);
    if (!this.#commitScheduled) {
      this.#commitScheduled = true;
      queueMicrotask(() => {
        this.#commitScheduled = false;
        this.commit();
      });
    }
  }

  #dm(session: Session, frame: DmFrame): void {
    if (frame.key !== undefined) {
      const seen = session.dmKeys?.get(frame.key);
      if (seen !== undefined) return this.#ack(session, { ...seen, id: frame.id, duplicate: true });
    }
    const target = this.#names.get(nameKey(frame.to.normalize("NFC")));
    if (target === undefined) {
      return this.#fail(session, frame.id, "no_such_user", `Nobody here is called "${frame.to}"`);
    }
    if (!this.#checkText(session, frame.id, frame.text)) return;
    const ts = new Date().toISOString();
    const from = session.name!;
    const to = target.name!;
    const dm: DmEvent = frame.action === true
      ? { type: "dm", from, to, text: frame.text, ts, action: true }
      : { type: "dm", from, to, text: frame.text, ts };
    if (target.peer === undefined) {
      if (target.heldDms.length >= MAX_HELD_DMS) target.heldDms.shift();
      target.heldDms.push(dm);
    } else {
      target.peer.deliver(new Outbound(dm));
    }
    const ack: AckFrame = { type: "ack", id: frame.id, to, ts };
    if (frame.key !== undefined) {
      session.dmKeys ??= new Map();
      session.dmKeys.set(frame.key, ack);
      if (session.dmKeys.size > MAX_DM_KEYS) {
        session.dmKeys.delete(session.dmKeys.keys().next().value!);
      }
    }
    this.#ack(session, ack);
  }

  #nick(session: Session, frame: NickFrame): void {
    const name = this.#claim(session, frame.id, frame.name);
    if (name === undefined) return;
    const old = session.name!;
    const ban = this.banned("name", nameKey(name));
    if (ban !== undefined) {
      return this.#fail(session, frame.id, "banned", `The name "${name}" is banned ${until(ban)}`);
    }
    if (session.fingerprint !== undefined) {
      this.#store.claimName(nameKey(name), name, session.fingerprint);
      this.#bind(name, session.fingerprint);
    }
    if (name !== old) {
      // A mute follows its user to the new name.
      const mute = this.#muteOf(session);
      if (mute !== undefined && nameKey(name) !== nameKey(old)) {
        const origin = mute.origin || `mute:${mute.value}`;
        this.#store.ban({ ...mute, value: nameKey(name), origin });
        this.#loadBans();
      }
      this.#names.delete(nameKey(old));
      this.#names.set(nameKey(name), session);
      this.#looks.delete(confusableKey(old));
      this.#looks.set(confusableKey(name), session);
      session.name = name;
      const out = new Outbound({ type: "nick", from: old, to: name, ts: new Date().toISOString() });
      const seen = new Set<Session>();
      for (const room of session.rooms) {
        for (const member of room.members) seen.add(member);
      }
      this.#broadcast(seen, out, session);
      this.#options.log?.(`${old} is now ${name}`);
    }
    this.#ack(session, { type: "ack", id: frame.id, name });
  }

  #who(session: Session, frame: WhoFrame): void {
    const room = this.#roomOf(session, frame.id, frame.room ?? session.current?.name ?? LOBBY);
    if (room === undefined) return;
    this.#ack(session, { type: "ack", id: frame.id, room: room.name, names: this.#namesIn(room) });
  }

  #join(session: Session, frame: JoinFrame): void {
    const already = [...session.rooms].some((joined) => joined.name === frame.room);
    if (!already && session.rooms.size >= this.#options.limits.maxRoomsPerUser) {
      return this.#fail(
        session,
        frame.id,
        "too_many_rooms",
        `You are in ${session.rooms.size} rooms, the most this server allows; /leave one first`,
      );
    }
    const room = this.#roomOf(session, frame.id, frame.room, false);
    if (room === undefined) return;
    if (!session.rooms.has(room)) {
      if (session.rooms.size >= this.#options.limits.maxRoomsPerUser) {
        return this.#fail(
          session,
          frame.id,
          "too_many_rooms",
          `You are in ${session.rooms.size} rooms, the most this server allows; /leave one first`,
        );
      }
      const name = session.name!;
      this.#presence(
        room,
        new Outbound({ type: "join", room: room.name, name, ts: new Date().toISOString() }),
      );
      room.members.add(session);
      session.rooms.add(room);
      // Set first, so a plain-text user reads the room's history untagged.
      session.current = room;
      this.#replay(session, room, frame.history ?? this.#options.historyOnJoin);
    }
    session.current = room;
    this.#ack(session, {
      type: "ack",
      id: frame.id,
      room: room.name,
      seq: room.seq,
      topic: room.topic,
      names: this.#namesIn(room),
    });
  }

  #part(session: Session, frame: PartFrame): void {
    const room = this.#roomOf(session, frame.id, frame.room);
    if (room === undefined) return;
    room.members.delete(session);
    session.rooms.delete(room);
    if (session.current === room) session.current = session.rooms.values().next().value;
    const ts = new Date().toISOString();
    this.#presence(
      room,
      new Outbound({ type: "leave", room: room.name, name: session.name!, reason: "part", ts }),
    );
    this.#forget(room);
    this.#ack(session, { type: "ack", id: frame.id, room: room.name });
  }

  #topic(session: Session, frame: TopicFrame): void {
    const room = this.#roomOf(session, frame.id, frame.room);
    if (room === undefined) return;
    if (frame.topic !== undefined) {
      const topic = frame.topic.trim();
      if (codePoints(topic) > 300) {
        return this.#fail(session, frame.id, "invalid_text", "Topic is longer than 300 characters");
      }
      const ts = new Date().toISOString();
      const from = session.name!;
      try {
        this.#store.setTopic(room.name, { topic, by: from, ts });
      } catch {
        return this.#fail(
          session,
          frame.id,
          "storage_failed",
          "The server could not store the topic; try again",
        );
      }
      room.topic = topic;
      this.#broadcast(
        room.members,
        new Outbound({ type: "topic", room: room.name, topic, from, ts }),
        session,
      );
    }
    this.#ack(session, { type: "ack", id: frame.id, room: room.name, topic: room.topic });
  }

  #history(session: Session, frame: HistoryFrame): void {
    const room = this.#roomOf(session, frame.id, frame.room);
    if (room === undefined) return;
    const limit = Math.min(
      frame.limit ?? this.#options.maxHistoryPage,
      this.#options.maxHistoryPage,
    );
    const { after, before } = frame;
    const messages = after !== undefined
      ? this.#read(
        room,
        `${limit} after ${after}`,
        () =>
          this.#fit(this.#store.after(room.name, after, limit, true), false).filter((m) =>
            before === undefined || m.seq < before
          ),
      )
      : this.#read(
        room,
        `${limit} before ${before ?? "the end"}`,
        () => this.#fit(this.#store.recent(room.name, limit, before), true),
      );
    if (messages === undefined) {
      return this.#fail(
        session,
        frame.id,
        "storage_failed",
        "The server could not read that history; it was logged",
      );
    }
    this.#ack(session, { type: "ack", id: frame.id, room: room.name, seq: room.seq, messages });
  }

  #roomList(): RoomInfo[] {
    return [...this.#rooms.values()]
      .filter((room) => room.members.size > 0 || room.name === LOBBY)
      .map((room) => ({ name: room.name, members: room.members.size, topic: room.topic }))
      .sort((a, b) => byName.compare(a.name, b.name));
  }

  /** At most `maxPresence` names, sorted. */
  #namesIn(room: Room): string[] {
    const names: string[] = [];
    for (const member of room.members) {
      names.push(member.name!);
      if (names.length === this.#options.limits.maxPresence) break;
    }
    return names.sort(byName.compare);
  }

  /** Announces a join or leave, unless the room is too crowded for presence. */
  #presence(room: Room, out: Outbound): void {
    if (room.members.size <= this.#options.limits.maxPresence) this.#broadcast(room.members, out);
  }
}
