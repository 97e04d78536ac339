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

import type { MessageEvent } from "../protocol/frames.ts";
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
  /** Stores messages, all or none. */
  append(messages: readonly StoredMessage[]): Promise<void>;
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
