import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { connect, ProtocolError, serve } from "../mod.ts";
import { Store, type StoredMessage } from "../_server/store.ts";
import { local } from "./_helpers.ts";

const PAGE = 4096;

/** A database of `count` messages in #lobby, with pages in the middle of it overwritten. */
async function damagedDatabase(path: string, count: number): Promise<void> {
  const store = new Store(path);
  try {
    for (let first = 1; first <= count; first += 500) {
      store.append(Array.from({ length: 500 }, (_, i): StoredMessage => ({
        room: "#lobby",
        seq: first + i,
        from: "alice",
        text: `message ${first + i} ${"x".repeat(100)}`,
        ts: new Date(Date.UTC(2026, 0, 1, 0, 0, first + i)).toISOString(),
        action: false,
        key: undefined,
      })));
    }
  } finally {
    store.close();
  }
  const pages = (await Deno.stat(path)).size / PAGE;
  using file = await Deno.open(path, { write: true });
  await file.seek(Math.floor(pages / 2) * PAGE, Deno.SeekMode.Start);
  const garbage = new Uint8Array(3 * PAGE).fill(0x55);
  for (let written = 0; written < garbage.length;) {
    written += await file.write(garbage.subarray(written));
  }
}

Deno.test("a damaged part of the history is logged for the operator and answered storage_failed", async () => {
  const dir = await Deno.makeTempDir();
  const data = `${dir}/chat.db`;
  try {
    await damagedDatabase(data, 5000);
    const log: string[] = [];
    // Retention off, so starting does not read every page.
    await using server = await serve({
      hostname: "127.0.0.1",
      port: 0,
      data,
      keepMessages: 0,
      keepDays: 0,
      onLog: (line) => log.push(line),
    });
    await using bob = await connect({
      hostname: "127.0.0.1",
      port: server.addr.port,
      name: "bob",
      history: 0,
    });
    const failed: number[] = [];
    for (let before = 5001; before > 1; before -= 200) {
      try {
        const page = await bob.history("#lobby", { before, limit: 200 });
        equal(page.at(-1)?.seq, before - 1);
      } catch (error) {
        ok(error instanceof ProtocolError, String(error));
        equal(error.code, "storage_failed");
        failed.push(before);
      }
    }
    ok(failed.length > 0, "no part of the history was damaged");
    ok(failed.length < 25, "every part of the history failed");
    const lines = log.filter((line) => line.startsWith("Cannot read the history"));
    equal(lines.length, failed.length, log.join("\n"));
    match(
      lines[0]!,
      /^Cannot read the history of #lobby \(200 before \d+ messages\) from ".*": .*malformed/,
    );
    ok(lines.every((line) => !line.includes("\n")), "a multi-line log entry");
    // The connection goes on.
    equal((await bob.send("still here")).seq, 5001);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a damaged database is refused at start with one clear error", async () => {
  const dir = await Deno.makeTempDir();
  const data = `${dir}/chat.db`;
  try {
    await damagedDatabase(data, 5000);
    await rejects(
      serve({ ...local, data }),
      (error: Error) =>
        error.name === "StorageError" &&
        /^Cannot open the history database ".*": database disk image is malformed; restore it from a backup/
          .test(error.message),
    );
    // Nothing is left open: a server with a good database starts on the same port range.
    await using server = await serve({ ...local, data: `${dir}/new.db` });
    ok(server.addr.port > 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a failure to remove old history while serving is logged and serving goes on", async () => {
  const prune = Store.prototype.prune;
  let calls = 0;
  // The first run, at start, succeeds; the next, after a batch of stored messages, fails.
  Store.prototype.prune = function (this: Store, ...args: Parameters<Store["prune"]>) {
    if (calls++ > 0) throw new Error("disk I/O error");
    return prune.apply(this, args);
  };
  try {
    const log: string[] = [];
    await using server = await serve({
      hostname: "127.0.0.1",
      port: 0,
      rateLimit: 1e6,
      rateBurst: 1e6,
      onLog: (line) => log.push(line),
    });
    await using alice = await connect({
      hostname: "127.0.0.1",
      port: server.addr.port,
      name: "alice",
    });
    // Retention runs after every 10,000 stored messages.
    for (let sent = 0; sent < 10_000; sent += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, i) => alice.send(`m${sent + i}`)));
    }
    equal(calls, 2);
    deepEqual(log.filter((line) => line.startsWith("Cannot remove")), [
      'Cannot remove old history from ":memory:": disk I/O error',
    ]);
    equal((await alice.send("still here")).seq, 10_001);
  } finally {
    Store.prototype.prune = prune;
  }
});
