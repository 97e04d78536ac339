/**
 * Durable room history in SQLite (the runtime's `node:sqlite`): messages with
 * their per-room sequence numbers and idempotency keys, and room topics.
 * Synchronous, so a batch of messages is committed before anyone is told.
 *
 * @module
 */

import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import type { MessageEvent } from "../protocol/frames.ts";

/** The history database cannot be opened or used. */
export class StorageError extends Error {
  /**
   * Creates the error.
   *
   * @param message What happened.
   * @param options The cause.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StorageError";
  }
}

/** Who holds a database, as written in its lock file. */
interface Holder {
  pid: number;
  host: string;
  since: string;
}

/**
 * Takes the lock beside a database file (`PATH.lock`), held until the file
 * is closed; the system releases it when the process dies, so none is ever
 * left behind. The holder writes its process id and host into it.
 */
function lock(path: string): Deno.FsFile {
  const lockPath = `${path}.lock`;
  const file = Deno.openSync(lockPath, { read: true, write: true, create: true });
  try {
    if (!file.tryLockSync(true)) {
      let holder = "";
      try {
        const { pid, host } = JSON.parse(Deno.readTextFileSync(lockPath)) as Holder;
        holder = ` (pid ${pid}${host ? ` on ${host}` : ""})`;
      } catch {
        // Still being written, or locked against reading (Windows): say less.
      }
      throw new StorageError(`Cannot use "${path}": another chat server${holder} is using it`);
    }
    let host = "";
    try {
      host = Deno.hostname();
    } catch {
      // Not allowed to know: the pid alone.
    }
    const holder: Holder = { pid: Deno.pid, host, since: new Date().toISOString() };
    file.truncateSync(0);
    let bytes = new TextEncoder().encode(`${JSON.stringify(holder)}\n`);
    while (bytes.length > 0) bytes = bytes.subarray(file.writeSync(bytes));
    return file;
  } catch (error) {
    file.close();
    throw error;
  }
}

/** The schema version this code writes. */
export const SCHEMA_VERSION = 5;

/**
 * The migrations, in order: entry `n` takes a database from version `n` to
 * `n + 1`. Never edit one that has shipped; add a new one.
 */
export const MIGRATIONS: readonly string[] = [
  // 0 → 1: messages.
  `CREATE TABLE messages (
     room TEXT NOT NULL,
     seq INTEGER NOT NULL,
     sender TEXT NOT NULL,
     text TEXT NOT NULL,
     ts TEXT NOT NULL,
     action INTEGER NOT NULL DEFAULT 0,
     PRIMARY KEY (room, seq)
   ) WITHOUT ROWID;`,
  // 1 → 2: idempotency keys, topics.
  `ALTER TABLE messages ADD COLUMN key TEXT;
   CREATE UNIQUE INDEX messages_key ON messages (room, key) WHERE key IS NOT NULL;
   CREATE INDEX messages_ts ON messages (ts);
   CREATE TABLE rooms (
     name TEXT PRIMARY KEY,
     topic TEXT NOT NULL DEFAULT '',
     topic_by TEXT NOT NULL DEFAULT '',
     topic_ts TEXT NOT NULL DEFAULT ''
   ) WITHOUT ROWID;`,
  // 2 → 3: names bound to keys, bans and mutes.
  `CREATE TABLE names (
     name_key TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     fingerprint TEXT NOT NULL,
     claimed TEXT NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE bans (
     kind TEXT NOT NULL,
     value TEXT NOT NULL,
     until TEXT,
     reason TEXT NOT NULL DEFAULT '',
     by TEXT NOT NULL DEFAULT '',
     created TEXT NOT NULL,
     PRIMARY KEY (kind, value)
   ) WITHOUT ROWID;`,
  // 3 → 4: the bans made together by one operator's order share their origin.
  `ALTER TABLE bans ADD COLUMN origin TEXT NOT NULL DEFAULT '';
   CREATE INDEX bans_origin ON bans (origin) WHERE origin <> '';`,
  // 4 → 5: notices are kept as notices.
  `ALTER TABLE messages ADD COLUMN notice INTEGER NOT NULL DEFAULT 0;`,
];

/**
 * What a ban or mute applies to: a name, a key fingerprint, an IP address or
 * prefix, or (`addr`) one address as far as sessions without a key go.
 */
export type BanKind = "name" | "key" | "ip" | "addr" | "mute";

/** A ban (or a mute) as stored. */
export interface Ban {
  kind: BanKind;
  /** The name key, fingerprint or address. */
  value: string;
  /** ISO-8601 end, or `null` for ever. */
  until: string | null;
  reason: string;
  by: string;
  created: string;
  /**
   * The order it came from, as `KIND:VALUE` of the ban the operator asked
   * for: a ban of a name also bans its key and address, and they are lifted
   * together. `""` for a ban of its own.
   */
  origin?: string;
}

/** A message to store. */
export interface StoredMessage {
  room: string;
  seq: number;
  from: string;
  text: string;
  ts: string;
  action: boolean;
  /** `true` for a notice. */
  notice?: boolean;
  /** The sender's idempotency key, scoped by sender name. */
  key: string | undefined;
}

/** How long history is kept. */
export interface Retention {
  /** Most messages kept per room; 0 keeps all. */
  maxMessages: number;
  /** Messages older than this many days are removed; 0 keeps them forever. */
  maxAgeDays: number;
}

/** A room's topic. */
export interface Topic {
  topic: string;
  by: string;
  ts: string;
}

interface MessageRow {
  room: string;
  seq: number;
  sender: string;
  text: string;
  ts: string;
  action: number;
  notice: number;
}

function toEvent(row: MessageRow, history: boolean): MessageEvent {
  const event: MessageEvent = {
    type: "message",
    room: row.room,
    from: row.sender,
    text: row.text,
    ts: row.ts,
    seq: row.seq,
  };
  if (row.action) event.action = true;
  if (row.notice) event.notice = true;
  if (history) event.history = true;
  return event;
}

/**
 * Migrates a database to a schema version, one step at a time, each in its
 * own transaction.
 *
 * @param db The open database.
 * @param target The version to reach.
 * @throws {Error} When the database is newer than this code.
 */
export function migrate(db: DatabaseSync, target: number = SCHEMA_VERSION): void {
  const { user_version: current } = db.prepare("PRAGMA user_version").get() as {
    user_version: number;
  };
  if (current > MIGRATIONS.length) {
    throw new StorageError(
      `Cannot open the history database: its schema version ${current} is newer than this chat (${SCHEMA_VERSION}); upgrade chat`,
    );
  }
  for (let version = current; version < target; version++) {
    db.exec("BEGIN IMMEDIATE");
    try {
      db.exec(MIGRATIONS[version]!);
      db.exec(`PRAGMA user_version = ${version + 1}`);
      db.exec("COMMIT");
    } catch (error) {
      db.exec("ROLLBACK");
      throw error;
    }
  }
}

/** How many rows one insert takes, largest first; the last must be 1. */
const INSERT_ROWS = [32, 8, 1] as const;

/** The history database. */
export class Store {
  /** Where the database is, or `:memory:`. */
  readonly path: string;
  #db: DatabaseSync;
  /** Inserts of 1, 8 and 32 rows at once. */
  #inserts: Map<number, StatementSync> = new Map();
  #lastSeq: StatementSync;
  #byKey: StatementSync;
  #recent: StatementSync;
  #search: StatementSync;
  #after: StatementSync;
  #getTopic: StatementSync;
  #setTopic: StatementSync;
  #closed = false;
  #lock: Deno.FsFile | undefined;

  /**
   * Opens (creating if needed) and migrates a database. A file database is
   * locked for as long as it is open: a second store on the same file, in
   * this process or another, is refused and told who holds it.
   *
   * @param path A file path, or `:memory:`.
   * @throws {StorageError} When another store holds the file, or it cannot be written.
   */
  constructor(path: string) {
    this.path = path;
    this.#lock = path === ":memory:" ? undefined : lock(path);
    try {
      this.#db = new DatabaseSync(path);
    } catch (error) {
      this.#lock?.close();
      throw error;
    }
    try {
      this.#db.exec(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
      );
      migrate(this.#db);
      try {
        // Writes nothing, but fails now rather than at the first message when the file is read-only.
        this.#db.exec("DELETE FROM rooms WHERE 0");
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        throw new StorageError(
          /readonly/.test(reason)
            ? `Cannot write to the history database "${path}": it is read-only; check the permissions of the file, its "-wal" and "-shm" files and its folder`
            : `Cannot write to the history database "${path}": ${reason}`,
          { cause: error },
        );
      }
    } catch (error) {
      this.#db.close();
      this.#lock?.close();
      throw error;
    }
    // One statement per row costs more than SQLite's work for it: a burst goes in 32 at a time.
    for (const rows of INSERT_ROWS) {
      this.#inserts.set(
        rows,
        this.#db.prepare(
          "INSERT INTO messages (room, seq, sender, text, ts, action, key, notice) VALUES " +
            Array(rows).fill("(?, ?, ?, ?, ?, ?, ?, ?)").join(", "),
        ),
      );
    }
    this.#lastSeq = this.#db.prepare("SELECT max(seq) AS seq FROM messages WHERE room = ?");
    this.#byKey = this.#db.prepare("SELECT seq, ts FROM messages WHERE room = ? AND key = ?");
    this.#recent = this.#db.prepare(
      "SELECT * FROM (SELECT room, seq, sender, text, ts, action, notice FROM messages WHERE room = ? AND seq < ? ORDER BY seq DESC LIMIT ?) ORDER BY seq",
    );
    // The primary key (room, seq) bounds the rows read to the range asked for.
    this.#search = this.#db.prepare(
      "SELECT * FROM (SELECT room, seq, sender, text, ts, action, notice FROM messages WHERE room = ? AND seq > ? AND seq < ? AND text LIKE ? ESCAPE '\\' ORDER BY seq DESC LIMIT ?) ORDER BY seq",
    );
    this.#after = this.#db.prepare(
      "SELECT room, seq, sender, text, ts, action, notice FROM messages WHERE room = ? AND seq > ? ORDER BY seq LIMIT ?",
    );
    this.#getTopic = this.#db.prepare(
      "SELECT topic, topic_by AS by, topic_ts AS ts FROM rooms WHERE name = ?",
    );
    this.#setTopic = this.#db.prepare(
      "INSERT INTO rooms (name, topic, topic_by, topic_ts) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET topic = excluded.topic, topic_by = excluded.topic_by, topic_ts = excluded.topic_ts",
    );
  }

  /**
   * The sequence number of a room's last stored message.
   *
   * @param room The room.
   * @returns The number, 0 for an empty room.
   */
  lastSeq(room: string): number {
    const row = this.#lastSeq.get(room) as { seq: number | null };
    return row.seq ?? 0;
  }

  /**
   * Finds a message stored with an idempotency key.
   *
   * @param room The room.
   * @param key The key, already scoped to its sender.
   * @returns Its sequence number and time, if stored.
   */
  findKey(room: string, key: string): { seq: number; ts: string } | undefined {
    return this.#byKey.get(room, key) as { seq: number; ts: string } | undefined;
  }

  /**
   * Stores messages in one transaction: all or none.
   *
   * @param messages The messages.
   */
  append(messages: readonly StoredMessage[]): void {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      let at = 0;
      for (const rows of INSERT_ROWS) {
        const insert = this.#inserts.get(rows)!;
        for (; at + rows <= messages.length; at += rows) {
          const values: SQLInputValue[] = [];
          for (let i = at; i < at + rows; i++) {
            const m = messages[i]!;
            values.push(
              m.room,
              m.seq,
              m.from,
              m.text,
              m.ts,
              m.action ? 1 : 0,
              m.key ?? null,
              m.notice === true ? 1 : 0,
            );
          }
          insert.run(...values);
        }
      }
      this.#db.exec("COMMIT");
    } catch (error) {
      this.#db.exec("ROLLBACK");
      throw error;
    }
  }

  /**
   * The latest messages of a room, oldest first, marked as history.
   *
   * @param room The room.
   * @param limit How many at most.
   * @param before Only messages before this sequence number.
   * @returns The messages.
   */
  recent(room: string, limit: number, before: number = Number.MAX_SAFE_INTEGER): MessageEvent[] {
    if (limit <= 0) return [];
    return (this.#recent.all(room, before, limit) as unknown as MessageRow[]).map((row) =>
      toEvent(row, true)
    );
  }

  /**
   * The latest messages of a room in a range of sequence numbers that
   * contain a text, oldest first, marked as history. The text is matched
   * literally (`%`, `_` and `\\` are escaped), ignoring the case of ASCII
   * letters.
   *
   * @param room The room.
   * @param text The text.
   * @param range Only messages with a sequence number above `from` and below `before`.
   * @param limit How many at most.
   * @returns The messages.
   */
  search(
    room: string,
    text: string,
    range: { from: number; before: number },
    limit: number,
  ): MessageEvent[] {
    if (limit <= 0 || text === "") return [];
    const pattern = `%${text.replace(/[\\%_]/g, "\\$&")}%`;
    return (this.#search.all(
      room,
      range.from,
      range.before,
      pattern,
      limit,
    ) as unknown as MessageRow[])
      .map((row) => toEvent(row, true));
  }

  /**
   * The messages of a room after a sequence number, oldest first.
   *
   * @param room The room.
   * @param after The last sequence number already seen.
   * @param limit How many at most.
   * @param history Whether to mark them as history.
   * @returns The messages.
   */
  after(room: string, after: number, limit: number, history: boolean): MessageEvent[] {
    return (this.#after.all(room, after, limit) as unknown as MessageRow[]).map((row) =>
      toEvent(row, history)
    );
  }

  /**
   * A room's topic.
   *
   * @param room The room.
   * @returns The topic, if one was ever set.
   */
  topic(room: string): Topic | undefined {
    return this.#getTopic.get(room) as Topic | undefined;
  }

  /**
   * Sets a room's topic.
   *
   * @param room The room.
   * @param topic The topic.
   */
  setTopic(room: string, topic: Topic): void {
    this.#setTopic.run(room, topic.topic, topic.by, topic.ts);
  }

  /**
   * Removes what the retention policy no longer keeps.
   *
   * @param retention How much to keep.
   * @param now The current time.
   * @returns How many messages were removed.
   */
  prune(retention: Retention, now: Date = new Date()): number {
    let removed = 0;
    if (retention.maxAgeDays > 0) {
      const cutoff = new Date(now.getTime() - retention.maxAgeDays * 86_400_000).toISOString();
      // The newest message of each room stays, so sequence numbers keep growing.
      removed += Number(
        this.#db.prepare(
          "DELETE FROM messages WHERE ts < ? AND seq < (SELECT max(seq) FROM messages AS m WHERE m.room = messages.room)",
        ).run(cutoff).changes,
      );
    }
    if (retention.maxMessages > 0) {
      removed += Number(
        this.#db.prepare(
          `DELETE FROM messages WHERE (room, seq) IN (
             SELECT m.room, m.seq FROM messages m
             JOIN (SELECT room, max(seq) AS top FROM messages GROUP BY room) t ON t.room = m.room
             WHERE m.seq <= t.top - ?)`,
        ).run(retention.maxMessages).changes,
      );
    }
    return removed;
  }

  /**
   * The key a name is bound to, if any.
   *
   * @param nameKey The name's comparison key.
   * @returns The key's fingerprint.
   */
  nameOwner(nameKey: string): string | undefined {
    const row = this.#db.prepare("SELECT fingerprint FROM names WHERE name_key = ?").get(nameKey) as
      | { fingerprint: string }
      | undefined;
    return row?.fingerprint;
  }

  /**
   * Binds a name to a key, if it is not bound yet (trust on first use).
   *
   * @param nameKey The name's comparison key.
   * @param name The name as written.
   * @param fingerprint The key's fingerprint.
   */
  claimName(nameKey: string, name: string, fingerprint: string): void {
    this.#db.prepare(
      "INSERT OR IGNORE INTO names (name_key, name, fingerprint, claimed) VALUES (?, ?, ?, ?)",
    )
      .run(nameKey, name, fingerprint, new Date().toISOString());
  }

  /**
   * Adds or replaces a ban or mute.
   *
   * @param ban The ban.
   */
  ban(ban: Ban): void {
    this.#db.prepare(
      "INSERT OR REPLACE INTO bans (kind, value, until, reason, by, created, origin) VALUES (?, ?, ?, ?, ?, ?, ?)",
    ).run(ban.kind, ban.value, ban.until, ban.reason, ban.by, ban.created, ban.origin ?? "");
  }

  /**
   * Lifts a ban or mute, with every ban made by the same order.
   *
   * @param kind What it applies to.
   * @param value The name key, fingerprint or address.
   * @returns Whether there was one.
   */
  unban(kind: BanKind, value: string): boolean {
    const row = this.#db.prepare("SELECT origin FROM bans WHERE kind = ? AND value = ?").get(
      kind,
      value,
    ) as { origin: string } | undefined;
    if (row === undefined) return false;
    this.#db.prepare(
      "DELETE FROM bans WHERE (kind = ? AND value = ?) OR (origin <> '' AND origin = ?)",
    )
      .run(kind, value, row.origin);
    return true;
  }

  /**
   * Every name bound to a key, with the key.
   *
   * @returns The names as written and their keys' fingerprints.
   */
  boundNames(): { name: string; fingerprint: string }[] {
    return this.#db.prepare("SELECT name, fingerprint FROM names").all() as unknown as {
      name: string;
      fingerprint: string;
    }[];
  }

  /**
   * Every ban and mute still in force.
   *
   * @param now The current time.
   * @returns The bans.
   */
  bans(now: Date = new Date()): Ban[] {
    return this.#db.prepare("SELECT * FROM bans WHERE until IS NULL OR until > ?").all(
      now.toISOString(),
    ) as unknown as Ban[];
  }

  /** Closes the database (once). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#db.close();
    } finally {
      this.#lock?.close();
    }
  }
}
