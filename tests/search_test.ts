import { deepEqual, equal, rejects } from "node:assert/strict";
import { connect, serve } from "../mod.ts";
import { local, unthrottled, withTempDir } from "./_helpers.ts";
import { Store, type StoredMessage } from "../_server/store.ts";
import { MAX_SEARCH_PAGE, SEARCH_SCAN_MESSAGES } from "../protocol/limits.ts";
import { RawPeer } from "./_raw.ts";

const ts = "2026-11-25T12:00:00.000Z";

function stored(seq: number, text: string): StoredMessage {
  return { room: "#lobby", seq, from: "bob", text, ts, action: false, key: undefined };
}

Deno.test("store search matches text literally, ignoring the case of ASCII letters", () => {
  const store = new Store(":memory:");
  try {
    const texts = [
      "Build is GREEN",
      "100% done",
      "50 percent",
      "a_b",
      "axb",
      "你好世界",
      "back\\slash",
    ];
    store.append(texts.map((text, i) => stored(i + 1, text)));
    const find = (text: string) =>
      store.search("#lobby", text, { from: 0, before: 100 }, 10).map((m) => m.text);
    deepEqual(find("green"), ["Build is GREEN"]);
    deepEqual(find("%"), ["100% done"]);
    deepEqual(find("a_b"), ["a_b"]);
    deepEqual(find("好世"), ["你好世界"]);
    deepEqual(find("\\s"), ["back\\slash"]);
    deepEqual(find(""), []);
    // Only within the range, newest first, returned oldest first.
    deepEqual(
      store.search("#lobby", "0", { from: 1, before: 3 }, 10).map((m) => m.seq),
      [2],
    );
    deepEqual(store.search("#lobby", "e", { from: 0, before: 100 }, 2).map((m) => m.seq), [2, 3]);
    equal(store.search("#lobby", "green", { from: 0, before: 100 }, 1)[0]!.history, true);
  } finally {
    store.close();
  }
});

Deno.test("search pages back through a room's history, newest first", async () => {
  await using server = await serve(unthrottled);
  await using alice = await connect({ port: server.addr.port, name: "alice" });
  for (let i = 1; i <= 120; i++) await alice.send(i % 2 === 0 ? `match ${i}` : `other ${i}`);
  const first = await alice.search("MATCH");
  equal(first.messages.length, MAX_SEARCH_PAGE);
  equal(first.messages.at(-1)!.text, "match 120");
  equal(first.messages[0]!.text, "match 22");
  const second = await alice.search("match", { before: first.next });
  deepEqual(second.messages.map((m) => m.text), [
    "match 2",
    "match 4",
    "match 6",
    "match 8",
    "match 10",
    "match 12",
    "match 14",
    "match 16",
    "match 18",
    "match 20",
  ]);
  equal(second.next, undefined);
  const small = await alice.search("match", { limit: 3 });
  deepEqual(small.messages.map((m) => m.seq), [116, 118, 120]);
  equal(small.next, 116);
});

Deno.test("search reads a bounded stretch of history per request and says where to go on", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/chat.db`;
    const total = SEARCH_SCAN_MESSAGES + 100;
    const store = new Store(path);
    try {
      const messages = Array.from({ length: total }, (_, i) => stored(i + 1, `filler ${i + 1}`));
      messages[4] = stored(5, "the needle");
      store.append(messages);
    } finally {
      store.close();
    }
    await using server = await serve({ ...local, data: path });
    await using alice = await connect({ port: server.addr.port, name: "alice", history: 0 });
    const first = await alice.search("needle");
    deepEqual(first.messages, []);
    equal(first.next, total + 1 - SEARCH_SCAN_MESSAGES);
    const second = await alice.search("needle", { before: first.next });
    deepEqual(second.messages.map((m) => [m.seq, m.text]), [[5, "the needle"]]);
    equal(second.next, undefined);
  });
});

Deno.test("search refuses rooms the user is not in, and empty or overlong text", async () => {
  await using server = await serve(local);
  const port = server.addr.port;
  await using alice = await connect({ port, name: "alice" });
  await rejects(alice.search("x", { room: "#elsewhere" }), /You are not in "#elsewhere"/);
  await rejects(alice.search("   "), /Search text is empty/);
  await rejects(alice.search("x".repeat(101)), /Search text is longer than 100 characters/);
  await using raw = await RawPeer.connect(port);
  await raw.send({ type: "hello", id: 1, v: 1, name: "carol" });
  await raw.frame("welcome");
  await raw.send({ type: "search", id: 2, room: "#lobby", text: "hi", before: -1 });
  deepEqual(await raw.frame("error"), {
    type: "error",
    id: 2,
    code: "bad_request",
    message: 'Field "before" must be a non-negative integer',
  });
  await raw.send({ type: "search", id: 3, room: "lobby", text: "hi" });
  equal((await raw.frame("error")).code, "invalid_room");
  await raw.send({ type: "search", id: 4, room: "#lobby", text: "hi" });
  deepEqual(await raw.frame("ack"), { type: "ack", id: 4, room: "#lobby", messages: [] });
});
