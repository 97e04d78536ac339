import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { type ChatEvent, connect, type ProtocolError, serve } from "../mod.ts";
import { RawPeer } from "./_raw.ts";
import { unthrottled } from "./_helpers.ts";

/** Loopback, with the rate limits out of the way of tests that send in bulk. */

async function nextIn(
  client: Awaited<ReturnType<typeof connect>>,
  type: ChatEvent["type"],
  room: string,
) {
  while (true) {
    const event = await client.next(type, { timeout: 5000 });
    if ("room" in event && event.room === room) return event;
  }
}

Deno.test("rooms keep their messages to their members", async () => {
  await using server = await serve(unthrottled);
  const { port } = server.addr;
  await using alice = await connect({ port, name: "alice" });
  await using bob = await connect({ port, name: "bob" });
  await using carol = await connect({ port, name: "carol" });

  const joined = await alice.join("#dev");
  deepEqual([joined.room, joined.members, joined.seq, joined.topic], ["#dev", ["alice"], 0, ""]);
  await bob.join("#dev");
  const bobJoined = await nextIn(alice, "join", "#dev");
  deepEqual(bobJoined.type === "join" && [bobJoined.name, bobJoined.room], ["bob", "#dev"]);
  deepEqual(alice.joined, ["#lobby", "#dev"]);

  const sent = await alice.send("dev only", { room: "#dev" });
  deepEqual([sent.room, sent.seq], ["#dev", 1]);
  const got = await bob.next("message", { timeout: 5000 });
  deepEqual([got.room, got.text], ["#dev", "dev only"]);
  // carol is not in #dev: the next message she sees is the lobby one.
  await alice.send("lobby for all");
  deepEqual((await carol.next("message", { timeout: 5000 })).text, "lobby for all");
  await rejects(
    () => carol.send("x", { room: "#dev" }),
    (e: ProtocolError) => e.code === "not_in_room",
  );
  await rejects(() => carol.who({ room: "#dev" }), (e: ProtocolError) => e.code === "not_in_room");
  await rejects(() => carol.join("no-hash"), (e: ProtocolError) => e.code === "invalid_room");

  deepEqual(await alice.rooms(), [
    { name: "#dev", members: 2, topic: "" },
    { name: "#lobby", members: 3, topic: "" },
  ]);
  equal(await alice.topic("#dev", "shipping 1.0"), "shipping 1.0");
  const topic = await nextIn(bob, "topic", "#dev");
  deepEqual(topic.type === "topic" && [topic.topic, topic.from], ["shipping 1.0", "alice"]);
  equal(await bob.topic("#dev"), "shipping 1.0");

  await bob.leave("#dev");
  const part = await nextIn(alice, "leave", "#dev");
  deepEqual(part.type === "leave" && [part.name, part.reason], ["bob", "part"]);
  deepEqual(await alice.who({ room: "#dev" }), ["alice"]);
  deepEqual(bob.joined, ["#lobby"]);
});

Deno.test("joining a room replays its latest messages, marked as history", async () => {
  await using server = await serve({ ...unthrottled, historyOnJoin: 3 });
  const { port } = server.addr;
  await using alice = await connect({ port, name: "alice" });
  for (let i = 1; i <= 5; i++) await alice.send(`m${i}`);
  await using bob = await connect({ port, name: "bob" });
  const replayed = [];
  for (let i = 0; i < 3; i++) replayed.push(await bob.next("message", { timeout: 5000 }));
  deepEqual(replayed.map((m) => [m.text, m.seq, m.history]), [["m3", 3, true], ["m4", 4, true], [
    "m5",
    5,
    true,
  ]]);
  await alice.send("live");
  const live = await bob.next("message", { timeout: 5000 });
  deepEqual([live.text, live.seq, live.history], ["live", 6, undefined]);

  await using quiet = await connect({ port, name: "quiet", history: 0 });
  await alice.send("only this");
  deepEqual((await quiet.next("message", { timeout: 5000 })).text, "only this");
});

Deno.test("history pages backwards and forwards", async () => {
  await using server = await serve(unthrottled);
  await using alice = await connect({ port: server.addr.port, name: "alice" });
  for (let i = 1; i <= 30; i++) await alice.send(`m${i}`, { action: i === 7 });
  const latest = await alice.history("#lobby", { limit: 10 });
  deepEqual(latest.map((m) => m.seq), [21, 22, 23, 24, 25, 26, 27, 28, 29, 30]);
  ok(latest.every((m) => m.history === true && m.from === "alice"));
  const older = await alice.history("#lobby", { before: 21, limit: 10 });
  deepEqual(older.map((m) => m.seq), [11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
  const after = await alice.history("#lobby", { after: 5, limit: 3 });
  deepEqual(after.map((m) => [m.seq, m.action]), [[6, undefined], [7, true], [8, undefined]]);
  await rejects(() => alice.history("#nowhere"), (e: ProtocolError) => e.code === "not_in_room");
});

Deno.test("a message sent twice with the same key is stored once", async () => {
  await using server = await serve(unthrottled);
  const { port } = server.addr;
  await using bob = await connect({ port, name: "bob" });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const frames = [
      { type: "hello", id: 1, v: 1, name: "alice", history: 0 },
      { type: "send", id: 2, room: "#lobby", text: "once", key: "k-1" },
      { type: "send", id: 3, room: "#lobby", text: "once", key: "k-1" },
      { type: "send", id: 4, room: "#lobby", text: "twice?", key: "k-2" },
      { type: "send", id: 5, room: "#lobby", text: "once", key: "k-1" },
    ];
    await conn.write(
      new TextEncoder().encode(frames.map((f) => JSON.stringify(f) + "\n").join("")),
    );
    const acks = new Map<number, Record<string, unknown>>();
    const decoder = new TextDecoder();
    let text = "";
    const buffer = new Uint8Array(4096);
    while (acks.size < 4) {
      const read = await conn.read(buffer);
      if (read === null) break;
      text += decoder.decode(buffer.subarray(0, read), { stream: true });
      for (const line of text.split("\n").slice(0, -1)) {
        const frame = JSON.parse(line);
        if (frame.type === "ack") acks.set(frame.id, frame);
      }
      text = text.slice(text.lastIndexOf("\n") + 1);
    }
    deepEqual([acks.get(2)!.seq, acks.get(3)!.seq, acks.get(4)!.seq, acks.get(5)!.seq], [
      1,
      1,
      2,
      1,
    ]);
    deepEqual([acks.get(3)!.duplicate, acks.get(5)!.duplicate, acks.get(2)!.duplicate], [
      true,
      true,
      undefined,
    ]);
  } finally {
    conn.close();
  }
  const history = await bob.history("#lobby");
  deepEqual(history.map((m) => [m.seq, m.text]), [[1, "once"], [2, "twice?"]]);
});

Deno.test("a plain-text user joins, switches and leaves rooms", async () => {
  await using server = await serve(unthrottled);
  const { port } = server.addr;
  await using alice = await connect({ port, name: "alice" });
  await alice.join("#dev");
  await using nc = await RawPeer.connect(port);
  await nc.write("bob\n");
  await nc.until(/You are bob/);
  await nc.write("/join dev\n");
  // alice created #dev: its operator.
  match(await nc.until(/You are in #dev/), /with @alice, bob/);
  await nc.write("hello devs\n");
  const dev = await nextIn(alice, "message", "#dev");
  deepEqual(dev.type === "message" && [dev.from, dev.text], ["bob", "hello devs"]);
  await alice.send("welcome", { room: "#dev" });
  // bob types into #dev now: its lines are plain, the lobby's are tagged.
  match(await nc.until(/welcome/), /^\[\d\d:\d\d:\d\d\] <alice> welcome$/);
  await nc.write("/topic ship it\n");
  match(await nc.until(/Topic of/), /Topic of #dev: ship it/);
  await nc.write("/room #lobby\nin the lobby\n");
  const lobby = await nextIn(alice, "message", "#lobby");
  deepEqual(lobby.type === "message" && lobby.text, "in the lobby");
  await nc.write("/rooms\n");
  match(await nc.until(/Rooms:/), /#dev \(2\) ship it, #lobby \(2\)/);
  await nc.write("/leave #dev\n");
  match(await nc.until(/You left/), /You left #dev/);
  const part = await nextIn(alice, "leave", "#dev");
  deepEqual(part.type === "leave" && [part.name, part.reason], ["bob", "part"]);
});

Deno.test("a plain-text user sees every line from a room other than the one typed into tagged with its room", async () => {
  await using server = await serve(unthrottled);
  const { port } = server.addr;
  await using alice = await connect({ port, name: "alice" });
  await alice.join("#dev");
  await alice.send("old news", { room: "#dev" });
  await using nc = await RawPeer.connect(port);
  await nc.write("bob\n");
  await nc.until(/You are bob/);
  await alice.send("in the lobby");
  match(await nc.until(/in the lobby/), /^\[\d\d:\d\d:\d\d\] <alice> in the lobby$/);

  // The history of the room joined is the room typed into: not tagged.
  await nc.write("/join #dev\n");
  match(await nc.until(/old news/), /^\[\d\d:\d\d:\d\d\] \(history\) <alice> old news$/);
  await nc.until(/You are in #dev/);
  // One broadcast reaches a reader in #dev and one in #lobby, each tagged for its reader.
  await using carol = await RawPeer.connect(port);
  await carol.write("carol\n");
  await carol.until(/You are carol/);
  await carol.write("/join #dev\n/room #lobby\n");
  await carol.until(/You are in #lobby/);
  await alice.send("from dev", { room: "#dev" });
  await alice.send("from lobby", { room: "#lobby" });
  match(await nc.until(/from dev/), /^\[\d\d:\d\d:\d\d\] <alice> from dev$/);
  match(await nc.until(/from lobby/), /^\[\d\d:\d\d:\d\d\] #lobby <alice> from lobby$/);
  match(await carol.until(/from dev/), /^\[\d\d:\d\d:\d\d\] #dev <alice> from dev$/);
  match(await carol.until(/from lobby/), /^\[\d\d:\d\d:\d\d\] <alice> from lobby$/);
  await alice.send("a wave", { room: "#lobby", action: true });
  match(await nc.until(/a wave/), /^\[\d\d:\d\d:\d\d\] #lobby \* alice a wave$/);

  // Leaving #dev makes #lobby the room typed into again.
  await nc.write("/leave\n");
  await nc.until(/You left #dev/);
  await alice.send("back home");
  match(await nc.until(/back home/), /^\[\d\d:\d\d:\d\d\] <alice> back home$/);
});

Deno.test("entering a crowded room lists only yourself and says how many are there", async () => {
  await using server = await serve({ ...unthrottled, maxPresence: 2 });
  const { port } = server.addr;
  await using ann = await connect({ port, name: "ann" });
  await using bob = await connect({ port, name: "bob" });
  // Two others: still listed.
  await using cat = await connect({ port, name: "cat" });
  deepEqual([...cat.members], ["ann", "bob", "cat"]);
  equal(cat.memberCount, 3);
  // Three others: more than maxPresence, so only the newcomer and a count.
  await using dan = await connect({ port, name: "dan" });
  deepEqual([...dan.members], ["dan"]);
  equal(dan.memberCount, 4);
  // who still lists maxPresence names.
  equal((await dan.who()).length, 2);
  for (const client of [ann, bob, cat]) await client.join("#big");
  const joined = await dan.join("#big");
  deepEqual([joined.members, joined.count], [["dan"], 4]);
  const small = await ann.join("#small");
  deepEqual([small.members, small.count], [["ann"], 1]);
});
