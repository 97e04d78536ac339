import { deepEqual, equal, throws } from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import {
  migrate,
  SCHEMA_VERSION,
  StorageError,
  Store,
  type StoredMessage,
} from "../_server/store.ts";

function message(room: string, seq: number, ts: string, key?: string): StoredMessage {
  return { room, seq, from: "alice", text: `m${seq}`, ts, action: false, key };
}

Deno.test("store keeps messages in order and finds them by key", () => {
  const store = new Store(":memory:");
  try {
    store.append([
      message("#a", 1, "2026-01-01T00:00:00.000Z", "alice:k1"),
      message("#a", 2, "2026-01-01T00:00:01.000Z"),
    ]);
    store.append([message("#b", 1, "2026-01-01T00:00:02.000Z")]);
    equal(store.lastSeq("#a"), 2);
    equal(store.lastSeq("#b"), 1);
    equal(store.lastSeq("#none"), 0);
    deepEqual(store.findKey("#a", "alice:k1"), { seq: 1, ts: "2026-01-01T00:00:00.000Z" });
    equal(store.findKey("#b", "alice:k1"), undefined);
    deepEqual(store.recent("#a", 10).map((m) => [m.seq, m.text, m.history]), [[1, "m1", true], [
      2,
      "m2",
      true,
    ]]);
    deepEqual(store.after("#a", 1, 10, false).map((m) => [m.seq, m.history]), [[2, undefined]]);
  } finally {
    store.close();
  }
});

Deno.test("a large batch is stored whole, in order, with every field", () => {
  const store = new Store(":memory:");
  try {
    // 32 + 8 + 3 rows: every size of insert the store uses.
    const batch = Array.from({ length: 43 }, (_, i) => ({
      ...message(i % 2 === 0 ? "#a" : "#b", Math.floor(i / 2) + 1, "2026-01-01T00:00:00.000Z"),
      text: `第 ${i} 条`,
      action: i % 3 === 0,
      notice: i % 5 === 0 ? true : undefined,
      key: i % 7 === 0 ? `alice:k${i}` : undefined,
    }));
    store.append(batch);
    const stored = [...store.after("#a", 0, 100, false), ...store.after("#b", 0, 100, false)];
    equal(stored.length, 43);
    const expected = [...batch.filter((_, i) => i % 2 === 0), ...batch.filter((_, i) => i % 2)];
    deepEqual(
      stored.map((m) => [m.room, m.seq, m.text, m.action === true, m.notice === true]),
      expected.map((m) => [m.room, m.seq, m.text, m.action, m.notice === true]),
    );
    deepEqual(store.findKey("#a", "alice:k14"), { seq: 8, ts: "2026-01-01T00:00:00.000Z" });
  } finally {
    store.close();
  }
});

Deno.test("a notice is kept as a notice, after reopening too", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/history.db`;
  try {
    const store = new Store(path);
    try {
      store.append([
        { ...message("#a", 1, "2026-01-01T00:00:00.000Z"), notice: true },
        message("#a", 2, "2026-01-01T00:00:01.000Z"),
      ]);
    } finally {
      store.close();
    }
    const again = new Store(path);
    try {
      deepEqual(again.recent("#a", 10).map((m) => [m.seq, m.notice]), [[1, true], [2, undefined]]);
      deepEqual(again.after("#a", 0, 10, false).map((m) => m.notice), [true, undefined]);
    } finally {
      again.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a failed batch stores nothing", () => {
  const store = new Store(":memory:");
  try {
    store.append([message("#a", 1, "2026-01-01T00:00:00.000Z")]);
    throws(() =>
      store.append([
        message("#a", 2, "2026-01-01T00:00:00.000Z"),
        message("#a", 1, "2026-01-01T00:00:00.000Z"),
      ])
    );
    equal(store.lastSeq("#a"), 1);
  } finally {
    store.close();
  }
});

Deno.test("retention removes old messages by count and by age, never a room's newest", () => {
  const store = new Store(":memory:");
  try {
    const now = new Date("2026-06-01T00:00:00.000Z");
    const day = 86_400_000;
    store.append(
      Array.from(
        { length: 10 },
        (_, i) => message("#a", i + 1, new Date(now.getTime() - (10 - i) * day).toISOString()),
      ),
    );
    store.append([
      message("#old", 1, "2020-01-01T00:00:00.000Z"),
      message("#old", 2, "2020-01-02T00:00:00.000Z"),
    ]);
    equal(store.prune({ maxMessages: 0, maxAgeDays: 5 }, now), 5 + 1);
    deepEqual(store.recent("#a", 100).map((m) => m.seq), [6, 7, 8, 9, 10]);
    deepEqual(store.recent("#old", 100).map((m) => m.seq), [2]);
    equal(store.lastSeq("#old"), 2);
    equal(store.prune({ maxMessages: 2, maxAgeDays: 0 }, now), 3);
    deepEqual(store.recent("#a", 100).map((m) => m.seq), [9, 10]);
    equal(store.prune({ maxMessages: 0, maxAgeDays: 0 }, now), 0);
  } finally {
    store.close();
  }
});

Deno.test("a version 1 database is migrated and keeps its messages", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/old.db`;
  try {
    const old = new DatabaseSync(path);
    migrate(old, 1);
    old.prepare(
      "INSERT INTO messages (room, seq, sender, text, ts, action) VALUES (?, ?, ?, ?, ?, ?)",
    )
      .run("#lobby", 1, "alice", "from the old days", "2025-01-01T00:00:00.000Z", 1);
    equal((old.prepare("PRAGMA user_version").get() as { user_version: number }).user_version, 1);
    old.close();

    const store = new Store(path);
    try {
      equal(store.lastSeq("#lobby"), 1);
      deepEqual(store.recent("#lobby", 5).map((m) => [m.text, m.from, m.action]), [[
        "from the old days",
        "alice",
        true,
      ]]);
      store.append([message("#lobby", 2, "2026-01-01T00:00:00.000Z", "alice:k")]);
      equal(store.findKey("#lobby", "alice:k")?.seq, 2);
      store.setTopic("#lobby", { topic: "migrated", by: "alice", ts: "2026-01-01T00:00:00.000Z" });
      equal(store.topic("#lobby")?.topic, "migrated");
    } finally {
      store.close();
    }
    const check = new DatabaseSync(path);
    equal(
      (check.prepare("PRAGMA user_version").get() as { user_version: number }).user_version,
      SCHEMA_VERSION,
    );
    check.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a database from a newer chat is refused with a clear error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const db = new DatabaseSync(`${dir}/new.db`);
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 5}`);
    db.close();
    throws(
      () => new Store(`${dir}/new.db`),
      (error: Error) => error instanceof StorageError && /newer/.test(error.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a second store on the same file is refused and told who holds it", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/chat.db`;
  try {
    const first = new Store(path);
    try {
      throws(
        () => new Store(path),
        (error: Error) =>
          error instanceof StorageError &&
          error.message ===
            `Cannot use "${path}": another chat server (pid ${Deno.pid} on ${Deno.hostname()}) is using it`,
      );
      // The refused store changed nothing: the first one still writes.
      first.append([message("#a", 1, "2026-01-01T00:00:00.000Z", "alice:k")]);
    } finally {
      first.close();
    }
    // Closing releases the file.
    const second = new Store(path);
    try {
      equal(second.lastSeq("#a"), 1);
    } finally {
      second.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "a read-only database is refused when opened, not at the first write",
  // The superuser may write to any file.
  ignore: Deno.build.os === "windows" || Deno.uid() === 0,
  async fn() {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/chat.db`;
    try {
      // A copy taken while the server ran: its last messages are still in the WAL file.
      const running = new Store(`${dir}/running.db`);
      try {
        running.append([message("#a", 1, "2026-01-01T00:00:00.000Z")]);
        await Deno.copyFile(`${dir}/running.db`, path);
        await Deno.copyFile(`${dir}/running.db-wal`, `${path}-wal`);
      } finally {
        running.close();
      }
      await Deno.chmod(path, 0o444);
      await Deno.chmod(`${path}-wal`, 0o444);
      throws(
        () => new Store(path),
        (error: Error) => error instanceof StorageError && /read-only/.test(error.message),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
