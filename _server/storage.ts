/**
 * What the core needs from storage: room history, topics, names bound to
 * keys, and bans. Asynchronous, as a database across the network answers
 * later; {@linkcode SqliteStorage} (the runtime's `node:sqlite`, in one file)
 * is the embedded default. The core keeps its guarantees whatever the
 * storage: a message is acknowledged only once committed, the sends of one
 * turn are committed together, and the sends made while a commit is in flight
 * are committed after it, so per-room order holds.
 *
 * @module
 */

import type {
  AcceptFrame,
  CancelFrame,
  DeclineFrame,
  DmEvent,
  LeaveReason,
  MessageEvent,
  ReceivedFrame,
  ServerFrame,
} from "../protocol/frames.ts";
import type { Ban, BanKind, Retention, Store, StoredMessage, Topic } from "./store.ts";

export type { Ban, BanKind, Retention, StoredMessage, Topic } from "./store.ts";

/** Storage for one server. Each method may reject when the storage fails. */
export interface Storage {
  /** Where the data is, for messages (a path, or `":memory:"`). */
  readonly path: string;
  /** The sequence number of a room's last message, 0 when it has none. */
  lastSeq(room: string): Promise<number>;
  /** The stored message with a sender-scoped idempotency key, if any. */
  findKey(room: string, key: string): Promise<{ seq: number; ts: string } | undefined>;
  /**
   * Stores messages, all or none. A storage shared by several servers
   * numbers them itself and resolves with their numbers, in order.
   */
  append(messages: readonly StoredMessage[]): Promise<readonly Committed[] | void>;
  /** The latest messages of a room (before a sequence number), oldest first. */
  recent(room: string, limit: number, before?: number): Promise<MessageEvent[]>;
  /** The messages of a room after a sequence number, oldest first. */
  after(room: string, after: number, limit: number, history: boolean): Promise<MessageEvent[]>;
  /**
   * The latest messages of a room that contain a text (ignoring the case of
   * ASCII letters; `%` and `_` are plain characters), among those with a
   * sequence number above `from` and below `before`; oldest first, marked as
   * history. Reads at most `before - from - 1` messages.
   */
  search(
    room: string,
    text: string,
    range: { from: number; before: number },
    limit: number,
  ): Promise<MessageEvent[]>;
  /** A room's topic, if it has one. */
  topic(room: string): Promise<Topic | undefined>;
  /** Sets a room's topic. */
  setTopic(room: string, topic: Topic): Promise<void>;
  /** Removes history past the retention policy; resolves with how many messages went. */
  prune(retention: Retention): Promise<number>;
  /** The fingerprint of the key a name key is bound to, if any. */
  nameOwner(nameKey: string): Promise<string | undefined>;
  /** Binds a name to a key. */
  claimName(nameKey: string, name: string, fingerprint: string): Promise<void>;
  /** Every name bound to a key. */
  boundNames(): Promise<{ name: string; fingerprint: string }[]>;
  /** Stores a ban or mute (replacing one of the same kind and value). */
  ban(ban: Ban): Promise<void>;
  /** Lifts a ban and those made with it; resolves with whether there was one. */
  unban(kind: BanKind, value: string): Promise<boolean>;
  /** The bans in force. */
  bans(): Promise<Ban[]>;
  /** Present when several servers share this storage: how they tell each other. */
  readonly node?: string;
}

/** A message as a shared storage committed it. */
export interface Committed {
  /** Its sequence number in its room. */
  seq: number;
  /** Its time. */
  ts: string;
  /** Set when its idempotency key was stored already (nothing new was stored). */
  duplicate?: boolean;
}

/** What the nodes tell each other besides new messages. */
export type ClusterEvent =
  /** `op`: they are an operator of the room (they created it, or hold an operator's key). */
  | { kind: "join"; node: string; room: string; name: string; op?: boolean; ts: string }
  | {
    kind: "leave";
    node: string;
    room: string;
    name: string;
    reason: LeaveReason;
    message?: string;
    /** Who removed them, when kicked. */
    by?: string;
    ts: string;
  }
  | {
    kind: "quit";
    node: string;
    name: string;
    rooms: string[];
    reason: LeaveReason;
    message?: string;
    ts: string;
  }
  | { kind: "nick"; node: string; from: string; to: string; rooms: string[]; ts: string }
  | { kind: "topic"; node: string; room: string; topic: string; from: string; ts: string }
  /** Someone went away (a message) or came back (`""`). */
  | { kind: "away"; node: string; name: string; message: string; rooms: string[]; ts: string }
  /** An operator removes someone of another node from a room: their node does it. */
  | { kind: "kick"; node: string; room: string; name: string; by: string; message?: string }
  /** A room's settings changed, or (answering a join) are these. */
  | { kind: "mode"; node: string; room: string; topicLock: boolean }
  | { kind: "dm"; node: string; dm: DmEvent }
  | { kind: "bans"; node: string }
  | { kind: "drop"; node: string; name: string; reason: "kicked" | "banned"; message: string }
  | { kind: "takeover"; node: string; name: string }
  | FileEvent;

/** What the nodes tell each other about file transfers. */
export type FileEvent =
  /** A frame for someone on the node that has them (`to`), or for a room's members there. */
  | { kind: "deliver"; node: string; to: string; frame: ServerFrame }
  | { kind: "deliver"; node: string; room: string; except: string[]; frame: ServerFrame }
  /** A request about an offer, for the node of its sender (`home`). */
  | {
    kind: "file";
    node: string;
    home: string;
    from: string;
    request: AcceptFrame | DeclineFrame | CancelFrame | ReceivedFrame;
    /** Set when the recipient's node refuses the offer for them (they cannot take files). */
    refused?: string;
  }
  /** An accepted offer's leg: the tokens its two data connections may present on any node. */
  | {
    kind: "leg";
    node: string;
    leg: string;
    transfer: string;
    size: number;
    tokens: [string, string];
    sender: string;
    receiver: string;
  }
  /** A leg's data connections: a side attached, a chunk stored or taken, the end. */
  | {
    kind: "pipe";
    node: string;
    leg: string;
    state: "attached" | "chunk" | "ack" | "done" | "failed" | "closed";
    side?: 0 | 1;
    n?: number;
    reason?: string;
  };

/** What wakes a node. */
export interface BusHandlers {
  /** A room has messages up to `seq`. */
  message(room: string, seq: number): void;
  /** Another event. */
  event(event: ClusterEvent): void;
  /** Listening (again): anything may have been missed meanwhile. */
  ready(): void;
}

/** Someone online (or held for a reconnect) on some node. */
export interface PresenceRow {
  /** The name's comparison key. */
  nameKey: string;
  /** The name's look (confusables folded). */
  look: string;
  /** The name as written. */
  name: string;
  /** The node the session is on. */
  node: string;
  /** Its resume token. */
  token: string;
  /** Its key's fingerprint, if it proved one. */
  fingerprint?: string;
  /** The rooms it is in. */
  rooms: readonly string[];
  /** Whether it is held for a reconnect. */
  held: boolean;
  /** Its away message, `""` when it is not away. */
  away?: string;
  /** The rooms it is an operator of. */
  ops?: readonly string[];
}

/** A storage shared by several servers: how the nodes meet. */
export interface ClusterBus extends Storage {
  /** This node's id. */
  readonly node: string;
  /** Whether notifications are arriving. */
  readonly listening: boolean;
  /** Starts listening; listens again by itself after the connection breaks. */
  subscribe(handlers: BusHandlers): void;
  /** The last sequence numbers of rooms. */
  tops(rooms: readonly string[]): Promise<Map<string, number>>;
  /** Tells every node (this one too). */
  publish(event: ClusterEvent): Promise<void>;
  /** Says this node is alive; resolves with the nodes alive. */
  heartbeat(): Promise<string[]>;
  /**
   * Takes a name for a session of this node, unless someone has it or one
   * like it (then resolves with them). With `takeover`, the session that
   * had that resume token is replaced.
   */
  claimPresence(row: PresenceRow, takeover?: string): Promise<PresenceRow | undefined>;
  /** Changes the rooms, token, hold, away message or operator rooms of a session of this node. */
  updatePresence(
    nameKey: string,
    change: {
      rooms?: readonly string[];
      token?: string;
      held?: number | null;
      away?: string;
      ops?: readonly string[];
    },
  ): Promise<void>;
  /** Moves a session of this node to a new name; resolves with whether it was free. */
  renamePresence(oldKey: string, row: PresenceRow): Promise<boolean>;
  /** Forgets a session of this node. */
  dropPresence(nameKey: string): Promise<void>;
  /** Everyone on every node. */
  presence(): Promise<PresenceRow[]>;
  /** The session a resume token belongs to, on any node. */
  byToken(token: string): Promise<PresenceRow | undefined>;
  /**
   * Removes the sessions of nodes silent for `staleMs` once `grace` has run
   * out since their last heartbeat; resolves with them (each is returned to
   * one node only, which announces it).
   */
  reap(staleMs: number, grace: number): Promise<PresenceRow[]>;
  /**
   * Keeps a private message for a session held for a reconnect, whichever
   * node it resumes on (the oldest go past `max`).
   */
  keepDm(nameKey: string, dm: DmEvent, max: number): Promise<void>;
  /**
   * Keeps a private message for a session whose node is dead (silent for
   * `staleMs`, or gone); resolves with whether it did.
   */
  keepDmIfOrphaned(nameKey: string, dm: DmEvent, max: number, staleMs: number): Promise<boolean>;
  /** Takes (reads and removes) the private messages kept for a name, oldest first. */
  takeDms(nameKey: string): Promise<DmEvent[]>;
  /**
   * Stores a chunk of a file on its way between two nodes, and tells the
   * nodes it is there (a `pipe` event with state `chunk`).
   */
  putChunk(leg: string, n: number, data: Uint8Array): Promise<void>;
  /** Takes (reads and removes) a chunk of a file, if it is there yet. */
  takeChunk(leg: string, n: number): Promise<Uint8Array | undefined>;
  /** Removes whatever is left of a leg's chunks. */
  dropChunks(leg: string): Promise<void>;
  /** Which of these nodes are alive (they beat within the last few seconds). */
  alive(nodes: readonly string[], staleMs: number): Promise<Set<string>>;
  /** Closes the connections. */
  close(): Promise<void>;
}

/**
 * Whether a storage is shared by several servers.
 *
 * @param storage The storage.
 * @returns Whether it is a cluster bus.
 */
export function isShared(storage: Storage): storage is ClusterBus {
  return storage.node !== undefined;
}

/** The embedded default: a SQLite file (or memory), answering at once. */
export class SqliteStorage implements Storage {
  #store: Store;

  /**
   * Serves a store.
   *
   * @param store The open SQLite store (the caller closes it).
   */
  constructor(store: Store) {
    this.#store = store;
  }

  get path(): string {
    return this.#store.path;
  }

  lastSeq(room: string): Promise<number> {
    return attempt(() => this.#store.lastSeq(room));
  }

  findKey(room: string, key: string): Promise<{ seq: number; ts: string } | undefined> {
    return attempt(() => this.#store.findKey(room, key));
  }

  append(messages: readonly StoredMessage[]): Promise<void> {
    return attempt(() => this.#store.append(messages));
  }

  recent(room: string, limit: number, before?: number): Promise<MessageEvent[]> {
    return attempt(() => this.#store.recent(room, limit, before));
  }

  after(room: string, after: number, limit: number, history: boolean): Promise<MessageEvent[]> {
    return attempt(() => this.#store.after(room, after, limit, history));
  }

  search(
    room: string,
    text: string,
    range: { from: number; before: number },
    limit: number,
  ): Promise<MessageEvent[]> {
    return attempt(() => this.#store.search(room, text, range, limit));
  }

  topic(room: string): Promise<Topic | undefined> {
    return attempt(() => this.#store.topic(room));
  }

  setTopic(room: string, topic: Topic): Promise<void> {
    return attempt(() => this.#store.setTopic(room, topic));
  }

  prune(retention: Retention): Promise<number> {
    return attempt(() => this.#store.prune(retention));
  }

  nameOwner(nameKey: string): Promise<string | undefined> {
    return attempt(() => this.#store.nameOwner(nameKey));
  }

  claimName(nameKey: string, name: string, fingerprint: string): Promise<void> {
    return attempt(() => this.#store.claimName(nameKey, name, fingerprint));
  }

  boundNames(): Promise<{ name: string; fingerprint: string }[]> {
    return attempt(() => this.#store.boundNames());
  }

  ban(ban: Ban): Promise<void> {
    return attempt(() => this.#store.ban(ban));
  }

  unban(kind: BanKind, value: string): Promise<boolean> {
    return attempt(() => this.#store.unban(kind, value));
  }

  bans(): Promise<Ban[]> {
    return attempt(() => this.#store.bans());
  }
}

/** Runs a synchronous call, as a promise that holds its result or its failure. */
function attempt<T>(call: () => T): Promise<T> {
  try {
    return Promise.resolve(call());
  } catch (error) {
    return Promise.reject(error);
  }
}

/** Error codes of a database that cannot be reached (the client's, and SQLSTATE classes 08, 57P). */
const UNREACHABLE = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
]);

/**
 * Whether an error says the storage cannot be reached (a database across
 * the network, restarting or away), rather than that a request is wrong.
 *
 * @param error What was thrown.
 * @returns Whether it is worth trying again later.
 */
export function unreachable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && (UNREACHABLE.has(code) || /^(?:08|57P)/.test(code));
}
