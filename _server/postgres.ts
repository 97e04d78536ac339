/**
 * Storage in PostgreSQL, shared by several servers (nodes): history, topics,
 * names bound to keys, bans, and what the nodes tell each other. A batch of
 * messages is one transaction: each room's counter row is locked, the next
 * sequence numbers are taken, the messages are inserted under a unique
 * (room, idempotency key), and `pg_notify` wakes the other nodes on commit.
 * A notification only wakes a node: it reads `seq > last` from the table, so
 * a notification that is missed never makes a gap.
 *
 * @module
 */

import type { DmEvent, MessageEvent } from "../protocol/frames.ts";
import { postgres, type Sql } from "./_deps_postgres.ts";
import type {
  Ban,
  BanKind,
  BusHandlers,
  ClusterBus,
  ClusterEvent,
  Committed,
  PresenceRow,
  Retention,
  Storage,
  StoredMessage,
  Topic,
} from "./storage.ts";
import { StorageError } from "./store.ts";

/** The schema version this code writes. */
export const PG_SCHEMA_VERSION = 4;

/**
 * The migrations, in order: entry `n` takes a database from version `n` to
 * `n + 1`. Never edit one that has shipped; add a new one.
 */
export const PG_MIGRATIONS: readonly string[] = [
  // 0 → 1: rooms (with their counter), messages, names, bans.
  `CREATE TABLE chat_rooms (
     name text PRIMARY KEY,
     seq bigint NOT NULL DEFAULT 0,
     topic text NOT NULL DEFAULT '',
     topic_by text NOT NULL DEFAULT '',
     topic_ts text NOT NULL DEFAULT ''
   );
   CREATE TABLE chat_messages (
     room text NOT NULL,
     seq bigint NOT NULL,
     sender text NOT NULL,
     text text NOT NULL,
     ts text NOT NULL,
     action boolean NOT NULL DEFAULT false,
     key text,
     PRIMARY KEY (room, seq)
   );
   CREATE UNIQUE INDEX chat_messages_key ON chat_messages (room, key) WHERE key IS NOT NULL;
   CREATE INDEX chat_messages_ts ON chat_messages (ts);
   CREATE TABLE chat_names (
     name_key text PRIMARY KEY,
     name text NOT NULL,
     fingerprint text NOT NULL,
     claimed text NOT NULL
   );
   CREATE TABLE chat_bans (
     kind text NOT NULL,
     value text NOT NULL,
     until text,
     reason text NOT NULL DEFAULT '',
     by text NOT NULL DEFAULT '',
     created text NOT NULL,
     origin text NOT NULL DEFAULT '',
     PRIMARY KEY (kind, value)
   );
   CREATE INDEX chat_bans_origin ON chat_bans (origin) WHERE origin <> '';`,
  // 1 → 2: the nodes and who is on which.
  `CREATE TABLE chat_nodes (
     id text PRIMARY KEY,
     heartbeat timestamptz NOT NULL DEFAULT now()
   );
   CREATE TABLE chat_presence (
     name_key text PRIMARY KEY,
     look text NOT NULL,
     name text NOT NULL,
     node text NOT NULL,
     token text NOT NULL,
     fingerprint text,
     rooms text[] NOT NULL DEFAULT '{}',
     held_until timestamptz
   );
   CREATE UNIQUE INDEX chat_presence_look ON chat_presence (look);
   CREATE INDEX chat_presence_node ON chat_presence (node);
   CREATE UNIQUE INDEX chat_presence_token ON chat_presence (token);`,
  // 2 → 3: files on their way between nodes, and private messages kept for a reconnect.
  `CREATE TABLE chat_transfer_chunks (
     leg text NOT NULL,
     n integer NOT NULL,
     data bytea NOT NULL,
     created timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (leg, n)
   );
   CREATE TABLE chat_held_dms (
     id bigserial PRIMARY KEY,
     name_key text NOT NULL,
     dm text NOT NULL
   );
   CREATE INDEX chat_held_dms_name ON chat_held_dms (name_key, id);
   ALTER TABLE chat_nodes ADD COLUMN operators text NOT NULL DEFAULT '';`,
  // 3 → 4: notices are kept as notices; who is away, and the rooms each session is an operator of.
  `ALTER TABLE chat_messages ADD COLUMN notice boolean NOT NULL DEFAULT false;
   ALTER TABLE chat_presence ADD COLUMN away text NOT NULL DEFAULT '';
   ALTER TABLE chat_presence ADD COLUMN ops text[] NOT NULL DEFAULT '{}';`,
];

/** The channel a node is woken on when a room has new messages ("ROOM SEQ"). */
const MESSAGES_CHANNEL = "chat_messages";
/** The channel of the other events (JSON). */
const EVENTS_CHANNEL = "chat_events";
/** Serializes migrations between nodes starting at once. */
const MIGRATION_LOCK = 7_777_001;

/** Options for {@linkcode PostgresStorage.open}. */
export interface PostgresOptions {
  /** The password, when the URL has none. */
  password?: string;
  /** This node's id. */
  node: string;
  /** Receives a line for the operator. */
  log?: (line: string) => void;
  /**
   * How long this node's sessions stay held after it stops, in ms, so that
   * their clients take them over on another node.
   *
   * @default {30000}
   */
  grace?: number;
  /**
   * The fingerprints of this node's operators: a node whose list differs
   * from that of a node alive is told so in the log.
   */
  operators?: readonly string[];
}

/**
 * A database URL without its password, for messages.
 *
 * @param url The URL.
 * @returns The URL as `postgres://USER@HOST:PORT/DB`.
 */
export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.password = "";
    parsed.search = "";
    return parsed.href;
  } catch {
    return "postgres://…";
  }
}

/**
 * Whether a `--data` value names a PostgreSQL database.
 *
 * @param data The value.
 * @returns Whether it is a `postgres://` or `postgresql://` URL.
 */
export function isPostgresUrl(data: string): boolean {
  return /^postgres(?:ql)?:\/\//i.test(data);
}

/**
 * The client's settings: every one the URL does not give is given here, so
 * that the client reads no environment variable beyond those the program may
 * read (`PGPASSWORD` and the connection's defaults).
 */
function settings(
  url: string,
  password: string | undefined,
  own: Record<string, unknown>,
): Parameters<typeof postgres>[1] {
  const query = new URL(url).searchParams;
  const defaults: Record<string, unknown> = {
    max: 10,
    ssl: false,
    idle_timeout: null,
    connect_timeout: 5,
    max_lifetime: null,
    max_pipeline: 100,
    backoff: (retries: number) => (0.5 + Math.random() / 2) * Math.min(3 ** retries / 100, 20),
    keep_alive: 30,
    prepare: true,
    debug: false,
    fetch_types: true,
    publications: "alltables",
    target_session_attrs: null,
    ...own,
  };
  const given: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(defaults)) {
    const inQuery = query.has(key) || (key === "ssl" && query.has("sslmode"));
    if (!inQuery || key === "connection") given[key] = value;
  }
  const settings: Record<string, unknown> = { ...given, onnotice: () => {} };
  if (password !== undefined && password !== "" && new URL(url).password === "") {
    settings.password = password;
  }
  return settings as Parameters<typeof postgres>[1];
}

interface MessageRow {
  room: string;
  seq: string | number;
  sender: string;
  text: string;
  ts: string;
  action: boolean;
  notice: boolean;
}

function toEvent(row: MessageRow, history: boolean): MessageEvent {
  const event: MessageEvent = {
    type: "message",
    room: row.room,
    from: row.sender,
    text: row.text,
    ts: row.ts,
    seq: Number(row.seq),
  };
  if (row.action) event.action = true;
  if (row.notice) event.notice = true;
  if (history) event.history = true;
  return event;
}

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** History and the rest in PostgreSQL, shared by every node that uses the same database. */
export class PostgresStorage implements Storage, ClusterBus {
  readonly path: string;
  readonly node: string;
  #sql: Sql;
  #urlText: string;
  #password: string | undefined;
  #grace: number;
  #listener: Sql | undefined;
  #listening = false;
  #handlers: BusHandlers | undefined;
  #relisten: ReturnType<typeof setInterval> | undefined;
  #closed = false;
  #log: (line: string) => void;

  private constructor(url: string, sql: Sql, options: PostgresOptions) {
    this.path = redact(url);
    this.#urlText = url;
    this.#password = options.password;
    this.#grace = options.grace ?? 30_000;
    this.#sql = sql;
    this.node = options.node;
    this.#log = options.log ?? (() => {});
  }

  /**
   * Connects, then creates or migrates the schema.
   *
   * @param url `postgres://USER[:PASSWORD]@HOST:PORT/DB`.
   * @param options The password and this node's id.
   * @returns The storage.
   * @throws {StorageError} When the database cannot be reached or migrated.
   */
  static async open(url: string, options: PostgresOptions): Promise<PostgresStorage> {
    const settings = PostgresStorage.#settings(url, options);
    const sql = postgres(url, settings);
    const storage = new PostgresStorage(url, sql, options);
    try {
      await storage.#migrate();
      const operators = [...new Set(options.operators ?? [])].sort().join(" ");
      await sql`INSERT INTO chat_nodes (id, operators) VALUES (${options.node}, ${operators})
                ON CONFLICT (id) DO UPDATE SET heartbeat = now(), operators = excluded.operators`;
      const others = await sql<{ id: string }[]>`
        SELECT id FROM chat_nodes WHERE id <> ${options.node} AND operators <> ${operators}
          AND heartbeat >= now() - interval '5 seconds' ORDER BY id`;
      if (others.length > 0) {
        storage.#log(
          `The operators of node ${
            others.map((row) => `"${row.id}"`).join(", ")
          } differ from this node's: give every node the same --op list`,
        );
      }
    } catch (error) {
      await sql.end({ timeout: 0 }).catch(() => {});
      if (error instanceof StorageError) throw error;
      throw new StorageError(
        `Cannot use the database "${storage.path}": ${reason(error)}`,
        { cause: error },
      );
    }
    return storage;
  }

  static #settings(url: string, options: PostgresOptions): Parameters<typeof postgres>[1] {
    return settings(url, options.password, {
      max: 8,
      idle_timeout: 60,
      connection: { application_name: `chat ${options.node}`, statement_timeout: 10_000 },
    });
  }

  async #migrate(): Promise<void> {
    await this.#sql.begin(async (sql) => {
      await sql`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`;
      await sql`CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)`;
      const rows = await sql<{ version: number }[]>`SELECT version FROM schema_version`;
      if (rows.length === 0) await sql`INSERT INTO schema_version (version) VALUES (0)`;
      const current = rows[0]?.version ?? 0;
      if (current > PG_MIGRATIONS.length) {
        throw new StorageError(
          `Cannot use the database "${this.path}": its schema version ${current} is newer than this chat (${PG_SCHEMA_VERSION}); upgrade chat`,
        );
      }
      for (let version = current; version < PG_SCHEMA_VERSION; version++) {
        await sql.unsafe(PG_MIGRATIONS[version]!);
        await sql`UPDATE schema_version SET version = ${version + 1}`;
      }
    });
  }

  async lastSeq(room: string): Promise<number> {
    const rows = await this.#sql<{ seq: string }[]>`
      SELECT seq FROM chat_rooms WHERE name = ${room}`;
    return Number(rows[0]?.seq ?? 0);
  }

  async findKey(room: string, key: string): Promise<{ seq: number; ts: string } | undefined> {
    const rows = await this.#sql<{ seq: string; ts: string }[]>`
      SELECT seq, ts FROM chat_messages WHERE room = ${room} AND key = ${key}`;
    const row = rows[0];
    return row === undefined ? undefined : { seq: Number(row.seq), ts: row.ts };
  }

  /**
   * Stores messages in one transaction, numbering them: each room's counter
   * is locked (rooms in name order, so two nodes never wait for each other),
   * a message whose key is stored already is answered as a duplicate, and
   * the other nodes are notified on commit.
   */
  async append(messages: readonly StoredMessage[]): Promise<Committed[]> {
    const byRoom = new Map<string, StoredMessage[]>();
    for (const message of messages) {
      let list = byRoom.get(message.room);
      if (list === undefined) byRoom.set(message.room, list = []);
      list.push(message);
    }
    const results = new Map<StoredMessage, Committed>();
    await this.#sql.begin(async (sql) => {
      results.clear();
      for (const room of [...byRoom.keys()].sort()) {
        const list = byRoom.get(room)!;
        const [counter] = await sql<{ seq: string }[]>`
          INSERT INTO chat_rooms (name) VALUES (${room})
          ON CONFLICT (name) DO UPDATE SET seq = chat_rooms.seq RETURNING seq`;
        let seq = Number(counter!.seq);
        const keys = list.flatMap((m) => m.key === undefined ? [] : [m.key]);
        const stored = new Map<string, Committed>();
        if (keys.length > 0) {
          const found = await sql<{ key: string; seq: string; ts: string }[]>`
            SELECT key, seq, ts FROM chat_messages WHERE room = ${room} AND key = ANY(${
            sql.array(keys)
          }::text[])`;
          for (const row of found) {
            stored.set(row.key, { seq: Number(row.seq), ts: row.ts, duplicate: true });
          }
        }
        const rows = [];
        for (const m of list) {
          const before = m.key === undefined ? undefined : stored.get(m.key);
          if (before !== undefined) {
            results.set(m, { ...before, duplicate: true });
            continue;
          }
          seq++;
          rows.push({
            room,
            seq,
            sender: m.from,
            text: m.text,
            ts: m.ts,
            action: m.action,
            notice: m.notice === true,
            key: m.key ?? null,
          });
          const committed = { seq, ts: m.ts };
          if (m.key !== undefined) stored.set(m.key, committed);
          results.set(m, committed);
        }
        if (rows.length === 0) continue;
        await sql`INSERT INTO chat_messages ${
          sql(rows, "room", "seq", "sender", "text", "ts", "action", "notice", "key")
        }`;
        await sql`UPDATE chat_rooms SET seq = ${seq} WHERE name = ${room}`;
        await sql`SELECT pg_notify(${MESSAGES_CHANNEL}, ${`${room} ${seq}`})`;
      }
    });
    return messages.map((m) => results.get(m)!);
  }

  async recent(room: string, limit: number, before?: number): Promise<MessageEvent[]> {
    if (limit <= 0) return [];
    const rows = await this.#sql<MessageRow[]>`
      SELECT * FROM (
        SELECT room, seq, sender, text, ts, action, notice FROM chat_messages
        WHERE room = ${room} AND seq < ${before ?? Number.MAX_SAFE_INTEGER}
        ORDER BY seq DESC LIMIT ${limit}
      ) AS latest ORDER BY seq`;
    return rows.map((row) => toEvent(row, true));
  }

  async after(
    room: string,
    after: number,
    limit: number,
    history: boolean,
  ): Promise<MessageEvent[]> {
    const rows = await this.#sql<MessageRow[]>`
      SELECT room, seq, sender, text, ts, action, notice FROM chat_messages
      WHERE room = ${room} AND seq > ${after} ORDER BY seq LIMIT ${limit}`;
    return rows.map((row) => toEvent(row, history));
  }

  async search(
    room: string,
    text: string,
    range: { from: number; before: number },
    limit: number,
  ): Promise<MessageEvent[]> {
    if (limit <= 0 || text === "") return [];
    // The text is a literal: LIKE's wildcards and its escape character in it match themselves.
    const pattern = `%${text.replace(/[\\%_]/g, "\\$&")}%`;
    const rows = await this.#sql<MessageRow[]>`
      SELECT * FROM (
        SELECT room, seq, sender, text, ts, action, notice FROM chat_messages
        WHERE room = ${room} AND seq > ${range.from} AND seq < ${range.before}
          AND text LIKE ${pattern} ESCAPE '\\'
        ORDER BY seq DESC LIMIT ${limit}
      ) AS found ORDER BY seq`;
    return rows.map((row) => toEvent(row, true));
  }

  async topic(room: string): Promise<Topic | undefined> {
    const rows = await this.#sql<(Topic & { set: boolean })[]>`
      SELECT topic, topic_by AS by, topic_ts AS ts FROM chat_rooms
      WHERE name = ${room} AND topic_ts <> ''`;
    const row = rows[0];
    return row === undefined ? undefined : { topic: row.topic, by: row.by, ts: row.ts };
  }

  async setTopic(room: string, topic: Topic): Promise<void> {
    await this.#sql`
      INSERT INTO chat_rooms (name, topic, topic_by, topic_ts)
      VALUES (${room}, ${topic.topic}, ${topic.by}, ${topic.ts})
      ON CONFLICT (name) DO UPDATE SET topic = excluded.topic, topic_by = excluded.topic_by,
        topic_ts = excluded.topic_ts`;
  }

  async prune(retention: Retention): Promise<number> {
    let removed = 0;
    if (retention.maxAgeDays > 0) {
      const cutoff = new Date(Date.now() - retention.maxAgeDays * 86_400_000).toISOString();
      // The newest message of each room stays (its counter keeps the numbering anyway).
      const result = await this.#sql`
        DELETE FROM chat_messages m USING chat_rooms r
        WHERE r.name = m.room AND m.ts < ${cutoff} AND m.seq < r.seq`;
      removed += result.count;
    }
    if (retention.maxMessages > 0) {
      const result = await this.#sql`
        DELETE FROM chat_messages m USING chat_rooms r
        WHERE r.name = m.room AND m.seq <= r.seq - ${retention.maxMessages}`;
      removed += result.count;
    }
    return removed;
  }

  async nameOwner(nameKey: string): Promise<string | undefined> {
    const rows = await this.#sql<{ fingerprint: string }[]>`
      SELECT fingerprint FROM chat_names WHERE name_key = ${nameKey}`;
    return rows[0]?.fingerprint;
  }

  async claimName(nameKey: string, name: string, fingerprint: string): Promise<void> {
    await this.#sql`
      INSERT INTO chat_names (name_key, name, fingerprint, claimed)
      VALUES (${nameKey}, ${name}, ${fingerprint}, ${new Date().toISOString()})
      ON CONFLICT (name_key) DO NOTHING`;
  }

  async boundNames(): Promise<{ name: string; fingerprint: string }[]> {
    return [
      ...await this.#sql<{ name: string; fingerprint: string }[]>`
      SELECT name, fingerprint FROM chat_names`,
    ];
  }

  async ban(ban: Ban): Promise<void> {
    await this.#sql`
      INSERT INTO chat_bans (kind, value, until, reason, by, created, origin)
      VALUES (${ban.kind}, ${ban.value}, ${ban.until}, ${ban.reason}, ${ban.by}, ${ban.created},
        ${ban.origin ?? ""})
      ON CONFLICT (kind, value) DO UPDATE SET until = excluded.until, reason = excluded.reason,
        by = excluded.by, created = excluded.created, origin = excluded.origin`;
  }

  async unban(kind: BanKind, value: string): Promise<boolean> {
    return await this.#sql.begin(async (sql) => {
      const rows = await sql<{ origin: string }[]>`
        SELECT origin FROM chat_bans WHERE kind = ${kind} AND value = ${value} FOR UPDATE`;
      const row = rows[0];
      if (row === undefined) return false;
      await sql`DELETE FROM chat_bans
        WHERE (kind = ${kind} AND value = ${value}) OR (origin <> '' AND origin = ${row.origin})`;
      return true;
    });
  }

  async bans(): Promise<Ban[]> {
    const rows = await this.#sql<Required<Ban>[]>`
      SELECT kind, value, until, reason, by, created, origin FROM chat_bans
      WHERE until IS NULL OR until > ${new Date().toISOString()}`;
    return rows.map((row) => ({ ...row }));
  }

  // The nodes' bus.

  subscribe(handlers: BusHandlers): void {
    this.#handlers = handlers;
    this.#listener = postgres(
      this.#urlText,
      {
        ...this.#listenSettings(),
        onnotify: (channel: string, payload: string) => this.#notified(channel, payload),
        onclose: () => {
          if (this.#listening && !this.#closed) {
            this.#log("Lost the database's notifications; listening again");
          }
          this.#listening = false;
        },
      } as Parameters<typeof postgres>[1],
    );
    void this.#listen();
    // The connection that listens may break (the database restarting): listen again.
    this.#relisten = setInterval(() => {
      if (!this.#listening) void this.#listen();
    }, 1000);
  }

  #listenSettings(): Parameters<typeof postgres>[1] {
    return settings(this.#urlText, this.#password, {
      max: 1,
      idle_timeout: 0,
      max_lifetime: 0,
      fetch_types: false,
      connection: { application_name: `chat ${this.node} listen` },
    });
  }

  #listenBusy = false;

  async #listen(): Promise<void> {
    const listener = this.#listener;
    if (listener === undefined || this.#listenBusy || this.#closed) return;
    this.#listenBusy = true;
    try {
      await listener.unsafe(`LISTEN ${MESSAGES_CHANNEL}; LISTEN ${EVENTS_CHANNEL}`);
      this.#listening = true;
      this.#handlers?.ready();
    } catch {
      // Not reachable yet: the next tick tries again.
    } finally {
      this.#listenBusy = false;
    }
  }

  #notified(channel: string, payload: string): void {
    const handlers = this.#handlers;
    if (handlers === undefined) return;
    if (channel === MESSAGES_CHANNEL) {
      const space = payload.lastIndexOf(" ");
      handlers.message(payload.slice(0, space), Number(payload.slice(space + 1)));
    } else if (channel === EVENTS_CHANNEL) {
      let event: ClusterEvent;
      try {
        event = JSON.parse(payload) as ClusterEvent;
      } catch {
        return;
      }
      handlers.event(event);
    }
  }

  /** Whether notifications are arriving (the listening connection is up). */
  get listening(): boolean {
    return this.#listening;
  }

  async tops(rooms: readonly string[]): Promise<Map<string, number>> {
    if (rooms.length === 0) return new Map();
    const rows = await this.#sql<{ name: string; seq: string }[]>`
      SELECT name, seq FROM chat_rooms WHERE name = ANY(${this.#sql.array([...rooms])}::text[])`;
    return new Map(rows.map((row) => [row.name, Number(row.seq)]));
  }

  async publish(event: ClusterEvent): Promise<void> {
    await this.#sql`SELECT pg_notify(${EVENTS_CHANNEL}, ${JSON.stringify(event)})`;
  }

  async heartbeat(): Promise<string[]> {
    await this.#sql`INSERT INTO chat_nodes (id) VALUES (${this.node})
                    ON CONFLICT (id) DO UPDATE SET heartbeat = now()`;
    const rows = await this.#sql<{ id: string }[]>`SELECT id FROM chat_nodes`;
    return rows.map((row) => row.id);
  }

  async claimPresence(row: PresenceRow, takeover?: string): Promise<PresenceRow | undefined> {
    return await this.#sql.begin(async (sql) => {
      if (takeover !== undefined) {
        await sql`DELETE FROM chat_presence WHERE token = ${takeover}`;
      }
      const inserted = await sql`
        INSERT INTO chat_presence (name_key, look, name, node, token, fingerprint, rooms)
        VALUES (${row.nameKey}, ${row.look}, ${row.name}, ${this.node}, ${row.token},
          ${row.fingerprint ?? null}, ${sql.array([...row.rooms])}::text[])
        ON CONFLICT DO NOTHING`;
      if (inserted.count === 1) return undefined;
      const holders = await sql<PresenceDbRow[]>`
        SELECT * FROM chat_presence WHERE name_key = ${row.nameKey} OR look = ${row.look}
        LIMIT 1`;
      return holders[0] === undefined ? row : fromDb(holders[0]);
    });
  }

  async updatePresence(
    nameKey: string,
    change: {
      rooms?: readonly string[];
      token?: string;
      held?: number | null;
      away?: string;
      ops?: readonly string[];
    },
  ): Promise<void> {
    const sql = this.#sql;
    const { rooms, token, away, ops } = change;
    if (rooms !== undefined || token !== undefined || away !== undefined || ops !== undefined) {
      // One statement, so a join's row is written (and its event told) without extra round trips.
      await sql`UPDATE chat_presence SET
                  rooms = CASE WHEN ${rooms !== undefined} THEN ${
        sql.array([...rooms ?? []])
      }::text[]
                          ELSE rooms END,
                  ops = CASE WHEN ${ops !== undefined} THEN ${sql.array([...ops ?? []])}::text[]
                        ELSE ops END,
                  token = COALESCE(${token ?? null}, token),
                  away = COALESCE(${away ?? null}, away)
                WHERE name_key = ${nameKey} AND node = ${this.node}`;
    }
    if (change.held !== undefined) {
      const until = change.held === null ? null : new Date(Date.now() + change.held);
      await sql`UPDATE chat_presence SET held_until = ${until}
                WHERE name_key = ${nameKey} AND node = ${this.node}`;
    }
  }

  async renamePresence(oldKey: string, row: PresenceRow): Promise<boolean> {
    return await this.#sql.begin(async (sql) => {
      const taken = await sql`
        SELECT 1 FROM chat_presence
        WHERE (name_key = ${row.nameKey} OR look = ${row.look}) AND name_key <> ${oldKey}`;
      if (taken.length > 0) return false;
      await sql`UPDATE chat_presence SET name_key = ${row.nameKey}, look = ${row.look},
                  name = ${row.name} WHERE name_key = ${oldKey} AND node = ${this.node}`;
      return true;
    });
  }

  async dropPresence(nameKey: string): Promise<void> {
    await this.#sql`DELETE FROM chat_presence WHERE name_key = ${nameKey} AND node = ${this.node}`;
  }

  async presence(): Promise<PresenceRow[]> {
    const rows = await this.#sql<PresenceDbRow[]>`SELECT * FROM chat_presence`;
    return rows.map(fromDb);
  }

  async byToken(token: string): Promise<PresenceRow | undefined> {
    const rows = await this.#sql<PresenceDbRow[]>`
      SELECT * FROM chat_presence WHERE token = ${token}`;
    return rows[0] === undefined ? undefined : fromDb(rows[0]);
  }

  async reap(staleMs: number, grace: number): Promise<PresenceRow[]> {
    return await this.#sql.begin(async (sql) => {
      // A node silent for longer than staleMs is dead: its sessions are held for the grace,
      // counted from its last heartbeat, then removed.
      await sql`UPDATE chat_presence p SET held_until = n.heartbeat + ${grace} * interval '1 millisecond'
        FROM chat_nodes n
        WHERE n.id = p.node AND p.held_until IS NULL
          AND n.heartbeat < now() - ${staleMs} * interval '1 millisecond'`;
      await sql`UPDATE chat_presence p SET held_until = now() + ${grace} * interval '1 millisecond'
        WHERE p.held_until IS NULL AND NOT EXISTS (SELECT 1 FROM chat_nodes n WHERE n.id = p.node)`;
      const gone = await sql<PresenceDbRow[]>`
        DELETE FROM chat_presence WHERE held_until < now() AND node NOT IN (
          SELECT id FROM chat_nodes WHERE heartbeat >= now() - ${staleMs} * interval '1 millisecond'
        ) RETURNING *`;
      if (gone.length > 0) {
        await sql`DELETE FROM chat_held_dms WHERE name_key = ANY(${
          sql.array(gone.map((row) => row.name_key))
        }::text[])`;
      }
      await sql`DELETE FROM chat_nodes n
        WHERE n.heartbeat < now() - ${staleMs} * interval '1 millisecond'
          AND NOT EXISTS (SELECT 1 FROM chat_presence p WHERE p.node = n.id)`;
      // Chunks of a transfer whose nodes died with it: no transfer waits this long.
      await sql`DELETE FROM chat_transfer_chunks WHERE created < now() - interval '10 minutes'`;
      return gone.map(fromDb);
    });
  }

  async keepDm(nameKey: string, dm: DmEvent, max: number): Promise<void> {
    await this.#sql.begin(async (sql) => {
      await sql`INSERT INTO chat_held_dms (name_key, dm) VALUES (${nameKey}, ${
        JSON.stringify(dm)
      })`;
      await sql`DELETE FROM chat_held_dms WHERE name_key = ${nameKey} AND id NOT IN (
        SELECT id FROM chat_held_dms WHERE name_key = ${nameKey} ORDER BY id DESC LIMIT ${max})`;
    });
  }

  async keepDmIfOrphaned(
    nameKey: string,
    dm: DmEvent,
    max: number,
    staleMs: number,
  ): Promise<boolean> {
    const rows = await this.#sql<{ node: string }[]>`
      SELECT p.node FROM chat_presence p WHERE p.name_key = ${nameKey} AND NOT EXISTS (
        SELECT 1 FROM chat_nodes n WHERE n.id = p.node
          AND n.heartbeat >= now() - ${staleMs} * interval '1 millisecond')`;
    if (rows.length === 0) return false;
    await this.keepDm(nameKey, dm, max);
    return true;
  }

  async takeDms(nameKey: string): Promise<DmEvent[]> {
    const rows = await this.#sql<{ id: string; dm: string }[]>`
      DELETE FROM chat_held_dms WHERE name_key = ${nameKey} RETURNING id, dm`;
    return rows.sort((a, b) => Number(a.id) - Number(b.id)).map((row) => JSON.parse(row.dm));
  }

  async putChunk(leg: string, n: number, data: Uint8Array): Promise<void> {
    const event: ClusterEvent = { kind: "pipe", node: this.node, leg, state: "chunk", n };
    // One statement: the nodes are told once the chunk is committed.
    await this.#sql`
      WITH stored AS (
        INSERT INTO chat_transfer_chunks (leg, n, data) VALUES (${leg}, ${n}, ${data})
        RETURNING 1
      ) SELECT pg_notify(${EVENTS_CHANNEL}, ${JSON.stringify(event)}) FROM stored`;
  }

  async takeChunk(leg: string, n: number): Promise<Uint8Array | undefined> {
    const rows = await this.#sql<{ data: Uint8Array }[]>`
      DELETE FROM chat_transfer_chunks WHERE leg = ${leg} AND n = ${n} RETURNING data`;
    return rows[0]?.data;
  }

  async dropChunks(leg: string): Promise<void> {
    await this.#sql`DELETE FROM chat_transfer_chunks WHERE leg = ${leg}`;
  }

  async alive(nodes: readonly string[], staleMs: number): Promise<Set<string>> {
    if (nodes.length === 0) return new Set();
    const rows = await this.#sql<{ id: string }[]>`
      SELECT id FROM chat_nodes WHERE id = ANY(${this.#sql.array([...nodes])}::text[])
        AND heartbeat >= now() - ${staleMs} * interval '1 millisecond'`;
    return new Set(rows.map((row) => row.id));
  }

  /**
   * Stops listening and closes the connections (once). This node's sessions
   * stay held for the grace, for their clients to take over on another node;
   * after it, the other nodes announce them as lost.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#relisten);
    try {
      await this.#sql`UPDATE chat_presence
        SET held_until = now() + ${this.#grace} * interval '1 millisecond'
        WHERE node = ${this.node}`;
      await this.#sql`DELETE FROM chat_nodes WHERE id = ${this.node}`;
    } catch {
      // The database is away: the other nodes reap this one's rows.
    }
    await Promise.all([
      this.#listener?.end({ timeout: 0 }),
      this.#sql.end({ timeout: 1 }),
    ]);
  }
}

interface PresenceDbRow {
  name_key: string;
  look: string;
  name: string;
  node: string;
  token: string;
  fingerprint: string | null;
  rooms: string[];
  held_until: Date | null;
  away: string;
  ops: string[];
}

function fromDb(row: PresenceDbRow): PresenceRow {
  return {
    nameKey: row.name_key,
    look: row.look,
    name: row.name,
    node: row.node,
    token: row.token,
    fingerprint: row.fingerprint ?? undefined,
    rooms: row.rooms,
    held: row.held_until !== null,
    away: row.away,
    ops: row.ops,
  };
}
