/**
 * The core's two kinds of state: a {@linkcode Session} (one person, which
 * can outlive a connection) and a {@linkcode Room} (its members, last
 * sequence number and topic).
 *
 * @module
 */

import type { AckFrame, DmEvent, HelloFrame } from "../protocol/frames.ts";
import type { Outbound, OutboundRun } from "./outbound.ts";
import { TokenBucket } from "./token_bucket.ts";

/** Most private messages kept for a session while it reconnects. */
export const MAX_HELD_DMS = 100;
/** Most recent private-message keys remembered per session. */
const MAX_DM_KEYS = 256;

/** One connection as the core sees it: where a session's events go. */
export interface Peer {
  /** Queues an event for the peer. Must not throw. */
  deliver(out: Outbound): void;
  /**
   * Queues events `start` to `end` (excluded) of a run, as one view of the
   * run's bytes. Optional: without it they are delivered one by one. Must not
   * throw.
   */
  deliverRun?(run: OutboundRun, start: number, end: number): void;
  /** Sends what is queued, then closes the connection. */
  close(): void;
  /** This connection now carries another (resumed) session. */
  adopt(session: Session): void;
  /** Whether the peer can take part in file transfers (plain-text users cannot). */
  readonly files: boolean;
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
  /**
   * On a TLS connection: the names the server's certificate is valid for. A
   * key proof made over a connection verified by a certificate authority
   * (no fingerprint in it) must name one of them.
   */
  names?: Promise<readonly string[]>;
}

/** A room: its members, its last sequence number and its topic. */
export class Room {
  /** The room's name, starting with `#`. */
  readonly name: string;
  /** Everyone in the room. */
  readonly members: Set<Session> = new Set();
  /** Its operators: whoever created it (joined it empty), while they stay in it. */
  readonly operators: Set<Session> = new Set();
  #seq: number;
  #topic: string;
  #topicLocked = false;

  /**
   * Creates a room.
   *
   * @param name The room's name.
   * @param seq The last stored sequence number.
   * @param topic The stored topic.
   */
  constructor(name: string, seq: number, topic: string) {
    this.name = name;
    this.#seq = seq;
    this.#topic = topic;
  }

  /** The sequence number of the room's last message. */
  get seq(): number {
    return this.#seq;
  }

  /** The topic, `""` when none. */
  get topic(): string {
    return this.#topic;
  }

  /**
   * Numbers a new message.
   *
   * @returns Its sequence number.
   */
  next(): number {
    return ++this.#seq;
  }

  /**
   * Goes back to the last stored number, after a commit failed.
   *
   * @param seq The last stored sequence number.
   */
  rewind(seq: number): void {
    this.#seq = seq;
  }

  /**
   * Sets the topic, once stored.
   *
   * @param topic The topic.
   */
  retitle(topic: string): void {
    this.#topic = topic;
  }

  /** Whether only its operators may set its topic (IRC's `+t`). */
  get topicLocked(): boolean {
    return this.#topicLocked;
  }

  /**
   * Lets only its operators set its topic, or everyone again.
   *
   * @param locked Whether only operators may.
   */
  lockTopic(locked: boolean): void {
    this.#topicLocked = locked;
  }
}

/** A `hello` with a key, waiting for its `auth`, and the nonce it must sign. */
export interface Challenge {
  /** The `hello`. */
  hello: HelloFrame;
  /** The server's nonce. */
  nonce: string;
}

/** A session that completed the handshake: it has a name. */
export type Registered = Session & { readonly name: string };

/** One person's state on the server, which can outlive a connection. */
export class Session {
  #peer: Peer | undefined;
  #origin: Origin;
  #name: string | undefined;
  /** A few rooms at most: an array costs less than a set for every connection. */
  #rooms: Room[] = [];
  #current: Room | undefined;
  #gone = false;
  #token = "";
  #reconnect = false;
  #holdTimer: ReturnType<typeof setTimeout> | undefined;
  #heldDms: DmEvent[] | undefined;
  #dmKeys: Map<string, AckFrame> | undefined;
  #fingerprint: string | undefined;
  #bucket: TokenBucket | undefined;
  #challenge: Challenge | undefined;
  #transient = false;
  #away = "";
  #caps: ReadonlySet<string> | undefined;

  /**
   * Creates a session for a new connection.
   *
   * @param peer The connection.
   * @param origin Where it comes from.
   */
  constructor(peer: Peer, origin: Origin) {
    this.#peer = peer;
    this.#origin = origin;
  }

  /** The connection, or `undefined` while the server holds the session for a reconnect. */
  get peer(): Peer | undefined {
    return this.#peer;
  }

  /** Where the connection comes from, and what a key proof must name. */
  get origin(): Origin {
    return this.#origin;
  }

  /** Where the connection comes from, for the log. */
  get remote(): string {
    return this.#origin.remote;
  }

  /** The client's IP address. */
  get ip(): string {
    return this.#origin.ip;
  }

  /** The registered name, once the handshake is done. */
  get name(): string | undefined {
    return this.#name;
  }

  /** Whether the handshake is done. */
  registered(): this is Registered {
    return this.#name !== undefined;
  }

  /** The rooms the session is in. */
  get rooms(): readonly Room[] {
    return this.#rooms;
  }

  /** The room plain-text lines go to. */
  get current(): Room | undefined {
    return this.#current;
  }

  /** The name of the room plain-text lines go to. */
  get room(): string | undefined {
    return this.#current?.name;
  }

  /** A short-lived session (`hello.transient`): its joins and leaves are not announced. */
  get transient(): boolean {
    return this.#transient;
  }

  /**
   * Whether the client understands an event not every client does (it
   * listed it in `hello.caps`).
   *
   * @param cap Its name, e.g. `"away"`.
   * @returns Whether it does.
   */
  understands(cap: string): boolean {
    return this.#caps?.has(cap) === true;
  }

  /**
   * Remembers what the client said it understands (`hello.caps`).
   *
   * @param caps The names.
   */
  understand(caps: readonly string[] | undefined): void {
    this.#caps = caps === undefined || caps.length === 0 ? undefined : new Set(caps);
  }

  /** The away message, `""` when the user is here. */
  get away(): string {
    return this.#away;
  }

  /**
   * Marks the user away, or back.
   *
   * @param message Why the user is away; `""` when back.
   */
  setAway(message: string): void {
    this.#away = message;
  }

  /** Set once the session has left, so it is announced only once. */
  get gone(): boolean {
    return this.#gone;
  }

  /** The resume token. */
  get token(): string {
    return this.#token;
  }

  /** Whether the client reconnects by itself. */
  get reconnect(): boolean {
    return this.#reconnect;
  }

  /** The fingerprint of the key the client proved it holds, if any. */
  get fingerprint(): string | undefined {
    return this.#fingerprint;
  }

  /** Whether a key proof is pending: the next frame must answer it. */
  get challenged(): boolean {
    return this.#challenge !== undefined;
  }

  /**
   * Records the challenge sent for a `hello` with a key.
   *
   * @param challenge The `hello` and the nonce.
   */
  challenge(challenge: Challenge): void {
    this.#challenge = challenge;
  }

  /**
   * Takes the pending challenge (a challenge is answered once).
   *
   * @returns The challenge, if one was pending.
   */
  takeChallenge(): Challenge | undefined {
    const challenge = this.#challenge;
    this.#challenge = undefined;
    return challenge;
  }

  /**
   * Whether the session is in a room.
   *
   * @param name The room's name.
   * @returns Whether it is a member.
   */
  inRoom(name: string): boolean {
    for (const room of this.#rooms) if (room.name === name) return true;
    return false;
  }

  /**
   * Records the key the client proved it holds.
   *
   * @param fingerprint The key's fingerprint.
   */
  proved(fingerprint: string): void {
    this.#fingerprint = fingerprint;
  }

  /**
   * Completes the handshake.
   *
   * @param name The name claimed.
   * @param token The resume token.
   * @param reconnect Whether the client reconnects by itself.
   * @param transient Whether its joins and leaves go unannounced.
   * @returns The session, now with its name.
   */
  register(name: string, token: string, reconnect: boolean, transient = false): Registered {
    this.#name = name;
    this.#transient = transient;
    this.renew(token, reconnect);
    return this as Registered;
  }

  /**
   * Takes a new name.
   *
   * @param name The new name.
   */
  rename(name: string): void {
    this.#name = name;
  }

  /**
   * Gives the session a fresh resume token.
   *
   * @param token The token.
   * @param reconnect Whether the client reconnects by itself.
   */
  renew(token: string, reconnect: boolean): void {
    this.#token = token;
    this.#reconnect = reconnect;
  }

  /**
   * Joins a room, which becomes the current one.
   *
   * @param room The room.
   */
  enter(room: Room): void {
    room.members.add(this);
    if (!this.#rooms.includes(room)) this.#rooms.push(room);
    this.#current = room;
  }

  /**
   * Makes a room the current one.
   *
   * @param room A room the session is in.
   */
  switchTo(room: Room): void {
    this.#current = room;
  }

  /**
   * Leaves a room; another becomes current if it was.
   *
   * @param room The room.
   */
  exit(room: Room): void {
    room.members.delete(this);
    room.operators.delete(this);
    const at = this.#rooms.indexOf(room);
    if (at !== -1) this.#rooms.splice(at, 1);
    if (this.#current === room) this.#current = this.#rooms[0];
  }

  /**
   * Ends the session, once.
   *
   * @returns Whether it was still on.
   */
  end(): boolean {
    if (this.#gone) return false;
    this.#gone = true;
    clearTimeout(this.#holdTimer);
    this.#holdTimer = undefined;
    return true;
  }

  /**
   * Leaves every room.
   *
   * @returns The rooms it was in, for the announcements.
   */
  exitAll(): Room[] {
    const rooms = this.#rooms;
    for (const room of rooms) {
      room.members.delete(this);
      room.operators.delete(this);
    }
    this.#rooms = [];
    return rooms;
  }

  /**
   * The connection is lost: the session waits for its client to come back.
   *
   * @param ms How long to wait.
   * @param expire What to do when it does not come back.
   */
  hold(ms: number, expire: () => void): void {
    this.#peer = undefined;
    this.#holdTimer = setTimeout(expire, ms);
  }

  /**
   * Carries on over a new connection, which the session leaves its old one for.
   *
   * @param peer The new connection.
   * @param origin Where it comes from.
   * @returns The old connection, if it was still open.
   */
  resume(peer: Peer, origin: Origin): Peer | undefined {
    clearTimeout(this.#holdTimer);
    this.#holdTimer = undefined;
    const old = this.#peer;
    this.#peer = peer;
    this.#origin = origin;
    return old;
  }

  /**
   * Keeps a private message for a session being held, dropping the oldest
   * past the limit.
   *
   * @param dm The message.
   */
  keep(dm: DmEvent): void {
    this.#heldDms ??= [];
    if (this.#heldDms.length >= MAX_HELD_DMS) this.#heldDms.shift();
    this.#heldDms.push(dm);
  }

  /**
   * Takes the private messages kept while the session was held.
   *
   * @returns The messages, oldest first.
   */
  takeKept(): DmEvent[] {
    const kept = this.#heldDms ?? [];
    this.#heldDms = undefined;
    return kept;
  }

  /**
   * The acknowledgement of a private message sent earlier with this key.
   *
   * @param key The idempotency key.
   * @returns The ack, if the key is remembered.
   */
  dmAck(key: string): AckFrame | undefined {
    return this.#dmKeys?.get(key);
  }

  /**
   * Remembers the acknowledgement of a private message sent with a key.
   *
   * @param key The idempotency key.
   * @param ack The ack.
   */
  rememberDm(key: string, ack: AckFrame): void {
    this.#dmKeys ??= new Map();
    this.#dmKeys.set(key, ack);
    if (this.#dmKeys.size > MAX_DM_KEYS) {
      for (const oldest of this.#dmKeys.keys()) {
        this.#dmKeys.delete(oldest);
        break;
      }
    }
  }

  /**
   * Takes rate-limit tokens for a request, if there are enough.
   *
   * @param cost How many.
   * @param rate Tokens per second.
   * @param burst Most tokens held.
   * @returns `0` when taken, else how long until there are enough, in ms.
   */
  spend(cost: number, rate: number, burst: number): number {
    const now = performance.now();
    const bucket = this.#bucket ??= new TokenBucket(rate, burst, now);
    if (bucket.tryTake(cost, now)) return 0;
    return bucket.wait(cost);
  }
}
