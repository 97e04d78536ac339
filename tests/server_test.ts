import { deepEqual, match, ok, rejects } from "node:assert/strict";
import { type ChatEvent, connect, ConnectionError, ProtocolError, serve } from "../mod.ts";
import { RawPeer } from "./_raw.ts";
import { local, unthrottled } from "./_helpers.ts";

/** Loopback, with the rate limits out of the way of tests that send in bulk. */

Deno.test("server relays a message to everyone else with name, time and sequence", async () => {
  await using server = await serve(unthrottled);
  const { port } = server.addr;
  await using alice = await connect({ port, name: "alice" });
  await using bob = await connect({ port, name: "bob" });
  await using carol = await connect({ port, name: "carol" });
  deepEqual(carol.members, ["alice", "bob", "carol"]);

  const sent = await alice.send("你好, bob 👋");
  deepEqual(sent.room, "#lobby");
  deepEqual(sent.from, "alice");
  deepEqual(sent.seq, 1);
  deepEqual(new Date(sent.ts).toISOString(), sent.ts);
  for (const peer of [bob, carol]) {
    const got = await peer.next("message", { timeout: 2000 });
    deepEqual(got, {
      type: "message",
      room: "#lobby",
      from: "alice",
      text: "你好, bob 👋",
      ts: sent.ts,
      seq: 1,
    });
  }
  const second = await bob.send("hi all");
  deepEqual(second.seq, 2);
  deepEqual((await alice.next("message", { timeout: 2000 })).text, "hi all");
});

Deno.test("server keeps each sender's order and numbers messages one by one", async () => {
  await using server = await serve(unthrottled);
  const { port } = server.addr;
  await using alice = await connect({ port, name: "alice" });
  await using bob = await connect({ port, name: "bob" });
  await using carol = await connect({ port, name: "carol" });
  const count = 200;
  await Promise.all([
    ...Array.from({ length: count }, (_, i) => alice.send(`a${i}`)),
    ...Array.from({ length: count }, (_, i) => bob.send(`b${i}`)),
  ]);
  const received: { from: string; text: string; seq: number }[] = [];
  while (received.length < 2 * count) {
    const message = await carol.next("message", { timeout: 2000 });
    received.push(message);
  }
  deepEqual(received.map((m) => m.seq), Array.from({ length: 2 * count }, (_, i) => i + 1));
  for (const name of ["alice", "bob"]) {
    const texts = received.filter((m) => m.from === name).map((m) => m.text);
    deepEqual(texts, Array.from({ length: count }, (_, i) => `${name[0]}${i}`));
  }
});

Deno.test("server sends a private message only to its recipient", async () => {
  await using server = await serve(unthrottled);
  const { port } = server.addr;
  await using alice = await connect({ port, name: "alice" });
  await using bob = await connect({ port, name: "bob" });
  await using carol = await connect({ port, name: "carol" });
  const sent = await alice.dm("BOB", "psst");
  deepEqual(sent.to, "bob");
  deepEqual(await bob.next("dm", { timeout: 2000 }), {
    type: "dm",
    from: "alice",
    to: "bob",
    text: "psst",
    ts: sent.ts,
  });
  // A room message after the DM: carol must see it and nothing before it but joins.
  await alice.send("public");
  const seen: ChatEvent[] = [];
  while (true) {
    const event = await carol.next(undefined, { timeout: 2000 });
    seen.push(event);
    if (event.type === "message") break;
  }
  ok(seen.every((event) => event.type !== "dm"));
  await rejects(
    () => alice.dm("nobody", "hi"),
    (error: ProtocolError) => error.code === "no_such_user",
  );
});

Deno.test("server refuses a name in use, in any case, and invalid names", async (t) => {
  await using server = await serve(unthrottled);
  const { port } = server.addr;
  await using _alice = await connect({ port, name: "Alice" });
  for (const name of ["alice", "ALICE", "Ａｌｉｃｅ"]) {
    await t.step(name, async () => {
      await rejects(
        () => connect({ port, name }),
        (error: ProtocolError) => error.code === "name_taken" && /taken/.test(error.message),
      );
    });
  }
  for (
    const name of ["", "two words", "a\u202eb", "\u001b[31mred", "x".repeat(33), "#room", "/cmd"]
  ) {
    await t.step(JSON.stringify(name), async () => {
      await rejects(
        () => connect({ port, name }),
        (error: ProtocolError) => error.code === "invalid_name",
      );
    });
  }
  await t.step("unicode names are welcome", async () => {
    await using ming = await connect({ port, name: "小明" });
    await using jose = await connect({ port, name: "José" });
    deepEqual(await jose.who(), ["Alice", "José", "小明"].sort((a, b) => a.localeCompare(b)));
    deepEqual(ming.name, "小明");
  });
});

Deno.test("nick renames, tells the room and frees the old name", async () => {
  await using server = await serve(unthrottled);
  const { port } = server.addr;
  await using alice = await connect({ port, name: "alice" });
  await using bob = await connect({ port, name: "bob" });
  deepEqual(await alice.nick("alicia"), "alicia");
  deepEqual(alice.name, "alicia");
  const event = await bob.next("nick", { timeout: 2000 });
  deepEqual([event.from, event.to], ["alice", "alicia"]);
  await rejects(
    () => alice.nick("bob"),
    (error: ProtocolError) => error.code === "name_taken",
  );
  await rejects(
    () => alice.nick("no good"),
    (error: ProtocolError) => error.code === "invalid_name",
  );
  deepEqual(await alice.nick("Alicia"), "Alicia");
  await using again = await connect({ port, name: "alice" });
  deepEqual(await again.who(), ["alice", "Alicia", "bob"]);
  deepEqual((await alice.send("renamed")).from, "Alicia");
  deepEqual((await bob.next("message", { timeout: 2000 })).from, "Alicia");
});

Deno.test("who lists the room, sorted", async () => {
  await using server = await serve(unthrottled);
  const { port } = server.addr;
  await using bob = await connect({ port, name: "bob" });
  await using alice = await connect({ port, name: "alice" });
  deepEqual(await alice.who(), ["alice", "bob"]);
  deepEqual(await bob.who({ room: "#lobby" }), ["alice", "bob"]);
  await rejects(
    () => bob.who({ room: "#elsewhere" }),
    (error: ProtocolError) => error.code === "not_in_room",
  );
  await rejects(
    () => bob.who({ room: "lobby" }),
    (error: ProtocolError) => error.code === "invalid_room",
  );
});

Deno.test("a clean exit is announced as quit, a vanished peer as lost", async () => {
  await using server = await serve(unthrottled);
  const { port } = server.addr;
  await using alice = await connect({ port, name: "alice" });
  const bob = await connect({ port, name: "bob" });
  await bob.close();
  await bob.close();
  ok(bob.closed);
  const quit = await alice.next("leave", { timeout: 2000 });
  deepEqual([quit.name, quit.reason, quit.room], ["bob", "quit", "#lobby"]);

  await using raw = await RawPeer.connect(port);
  await raw.send({ type: "hello", id: 1, v: 1, name: "carol" });
  await raw.frame("welcome");
  raw.close();
  const lost = await alice.next("leave", { timeout: 2000 });
  deepEqual([lost.name, lost.reason], ["carol", "lost"]);
  deepEqual(await alice.who(), ["alice"]);
  await rejects(
    () => bob.send("after close"),
    (error: unknown) => error instanceof ConnectionError && error.code === "closed",
  );
});

Deno.test("the exit handshake acknowledges, then the server closes", async () => {
  await using server = await serve(unthrottled);
  await using raw = await RawPeer.connect(server.addr.port);
  await raw.send({ type: "hello", id: "h", v: 1, name: "dave" });
  await raw.frame("welcome");
  await raw.send({ type: "quit", id: "q" });
  deepEqual(JSON.parse((await raw.line())!), { type: "ack", id: "q" });
  deepEqual(await raw.line(), null);
});

Deno.test("garbage from one client gets errors while the others keep chatting", async (t) => {
  await using server = await serve({ ...unthrottled, maxFrameBytes: 1024 });
  const { port } = server.addr;
  await using alice = await connect({ port, name: "alice" });
  await using bob = await connect({ port, name: "bob" });
  await using raw = await RawPeer.connect(port);
  await raw.send({ type: "hello", id: 1, v: 1, name: "mallory" });
  await raw.frame("welcome");
  const cases: [string, string | Uint8Array, string, unknown][] = [
    ["not JSON", "{nope\n", "bad_json", undefined],
    ["an array", "[1,2]\n", "bad_json", undefined],
    ["invalid UTF-8", new Uint8Array([0x7b, 0xff, 0xfe, 0x7d, 0x0a]), "bad_utf8", undefined],
    ["too large", "{" + "x".repeat(5000) + "}\n", "frame_too_large", undefined],
    ["unknown type", '{"type":"shout","id":7}\n', "unknown_type", 7],
    ["wrong field type", '{"type":"send","id":8,"room":"#lobby","text":5}\n', "bad_request", 8],
    ["missing id", '{"type":"send","room":"#lobby","text":"x"}\n', "bad_request", undefined],
    ["empty text", '{"type":"send","id":9,"room":"#lobby","text":"  "}\n', "invalid_text", 9],
    ["another room", '{"type":"send","id":10,"room":"#secret","text":"x"}\n', "not_in_room", 10],
    ["second hello", '{"type":"hello","id":11,"v":1,"name":"x"}\n', "already_registered", 11],
    [
      "a NUL byte",
      '{"type":"send","id":12,"room":"#lobby","text":"a\u0000b"\u0000}\n',
      "bad_json",
      undefined,
    ],
  ];
  for (const [name, bytes, code, id] of cases) {
    await t.step(name, async () => {
      await raw.write(bytes);
      const error = await raw.frame("error");
      deepEqual(error.code, code);
      deepEqual(error.id, id);
      deepEqual(typeof error.message, "string");
      const sent = await alice.send(`still here after ${name}`);
      deepEqual((await bob.next("message", { timeout: 2000 })).seq, sent.seq);
    });
  }
  await t.step("text over the limit is refused", async () => {
    await using small = await serve({ ...unthrottled, maxTextLength: 5 });
    await using erin = await connect({ port: small.addr.port, name: "erin" });
    deepEqual((await erin.send("héllo")).text, "héllo");
    await rejects(
      () => erin.send("toolong"),
      (error: ProtocolError) => error.code === "invalid_text",
    );
  });
});

Deno.test("requests before hello are refused; a wrong version is refused", async () => {
  await using server = await serve(unthrottled);
  await using raw = await RawPeer.connect(server.addr.port);
  await raw.send({ type: "send", id: 1, room: "#lobby", text: "hi" });
  deepEqual((await raw.frame("error")).code, "not_registered");
  await raw.send({ type: "hello", id: 2, v: 99, name: "x" });
  deepEqual((await raw.frame("error")).code, "unsupported_version");
  await raw.send({ type: "hello", id: 3, v: 1, name: "x" });
  deepEqual((await raw.frame("welcome")).name, "x");
});

Deno.test("a plain-text nc user chats with a library client both ways", async () => {
  await using server = await serve(unthrottled);
  const { port } = server.addr;
  await using alice = await connect({ port, name: "alice" });
  await using nc = await RawPeer.connect(port);
  match(await nc.until(/name/i), /Type your name/);
  await nc.write("alice\n");
  match(await nc.until(/^!/), /taken/);
  await nc.write("王小明\r\n");
  match(await nc.until(/^\*\*\*/), /You are 王小明 in #lobby with alice/);
  deepEqual((await alice.next("join", { timeout: 2000 })).name, "王小明");

  // A line sent one byte at a time, with a multi-byte character split up.
  for (const byte of new TextEncoder().encode("慢慢来 slowly\n")) {
    await nc.write(new Uint8Array([byte]));
  }
  const slow = await alice.next("message", { timeout: 2000 });
  deepEqual([slow.from, slow.text], ["王小明", "慢慢来 slowly"]);

  await alice.send("hello \u001b[2J从 alice");
  match(await nc.until(/<alice>/), /^\[\d\d:\d\d:\d\d\] <alice> hello \^\[\[2J从 alice$/);
  await alice.send("waves", { action: true });
  match(await nc.until(/alice waves/), /\* alice waves$/);
  await alice.dm("王小明", "just you");
  match(await nc.until(/just you/), /\[private\] <alice> just you/);

  await nc.write("/me nods\n/msg alice 私聊\n/who\n");
  const action = await alice.next("message", { timeout: 2000 });
  deepEqual([action.text, action.action], ["nods", true]);
  deepEqual((await alice.next("dm", { timeout: 2000 })).text, "私聊");
  match(await nc.until(/In #lobby/), /alice, 王小明/);

  await nc.write("/frobnicate\n");
  match(await nc.until(/^!/), /Unknown command "\/frobnicate"/);
  await nc.write("/quit\n");
  await nc.eof();
  deepEqual((await alice.next("leave", { timeout: 2000 })).reason, "quit");
});

Deno.test("closing the server says goodbye to every client", async () => {
  const server = await serve(unthrottled);
  const alice = await connect({ port: server.addr.port, name: "alice" });
  await server.close();
  await server.close();
  const bye = await alice.next("bye", { timeout: 2000 });
  deepEqual(bye.reason, "shutdown");
  await rejects(
    () => alice.next(undefined, { timeout: 2000 }),
    (error: unknown) => error instanceof ConnectionError && error.code === "closed",
  );
  await alice.close();
  await rejects(
    () => connect({ port: server.addr.port, name: "late" }),
    (error: unknown) => error instanceof ConnectionError && error.code === "unreachable",
  );
});

Deno.test("serve rejects an address in use", async () => {
  await using server = await serve(unthrottled);
  await rejects(
    () => serve({ hostname: "127.0.0.1", port: server.addr.port }),
    (error: Error) =>
      error instanceof Deno.errors.AddrInUse && /already in use/.test(error.message),
  );
});

Deno.test("a client that stops reading is disconnected without slowing the others", async () => {
  await using server = await serve({ ...unthrottled, maxSendQueueBytes: 64 * 1024 });
  const { port } = server.addr;
  await using alice = await connect({ port, name: "alice" });
  await using bob = await connect({ port, name: "bob" });
  await using stuck = await RawPeer.connect(port);
  await stuck.send({ type: "hello", id: 1, v: 1, name: "stuck" });
  await stuck.frame("welcome");
  // stuck never reads again. Send until the server gives up on it.
  const text = "x".repeat(7000);
  let sent = 0;
  while (server.users === 3 && sent < 5000) {
    await alice.send(text);
    sent++;
  }
  deepEqual(server.users, 2);
  let received = 0;
  let leave: ChatEvent | undefined;
  while (received < sent || leave === undefined) {
    const event = await bob.next(undefined, { timeout: 2000 });
    if (event.type === "message") received++;
    if (event.type === "leave") leave = event;
  }
  deepEqual(received, sent);
  ok(leave.type === "leave");
  deepEqual([leave.name, leave.reason], ["stuck", "send_queue_exceeded"]);
  deepEqual(await alice.who(), ["alice", "bob"]);
});

Deno.test("next() times out with a clear error, and honours a signal", async () => {
  await using server = await serve(unthrottled);
  await using alice = await connect({ port: server.addr.port, name: "alice" });
  await rejects(
    () => alice.next("dm", { timeout: 50 }),
    (error: unknown) =>
      error instanceof ConnectionError && error.code === "timeout" &&
      /waiting for a "dm" event/.test(error.message),
  );
  const controller = new AbortController();
  const waiting = alice.next("message", { signal: controller.signal });
  controller.abort(new Error("stop"));
  await rejects(() => waiting, /stop/);
});

Deno.test("a refusal by the server is a ProtocolError, a local failure a ConnectionError", async () => {
  await using server = await serve(local);
  const { port } = server.addr;
  await using alice = await connect({ port, name: "alice" });
  await rejects(
    () => connect({ port, name: "alice" }),
    (error: unknown) =>
      error instanceof ProtocolError && !(error instanceof ConnectionError) &&
      error.name === "ProtocolError" && error.code === "name_taken",
  );
  await rejects(
    () => alice.next("dm", { timeout: 10 }),
    (error: unknown) =>
      error instanceof ConnectionError && error instanceof ProtocolError &&
      error.name === "ConnectionError" && error.code === "timeout",
  );
});

Deno.test("connect rejects an unreachable server", async () => {
  const listener = Deno.listen(local);
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  await rejects(
    () => connect({ port, name: "alice" }),
    (error: unknown) =>
      error instanceof ConnectionError && error.code === "unreachable" &&
      error.message === `Cannot connect to "127.0.0.1:${port}": connection refused`,
  );
});

Deno.test("nothing sent after quit in the same packet takes effect", async () => {
  await using server = await serve(unthrottled);
  const { port } = server.addr;
  await using alice = await connect({ port, name: "alice" });
  await using raw = await RawPeer.connect(port);
  await raw.write(
    [
      { type: "hello", id: 1, v: 1, name: "eve" },
      { type: "quit", id: 2 },
      { type: "nick", id: 3, name: "ghost" },
      { type: "dm", id: 4, to: "alice", text: "boo" },
    ].map((frame) => JSON.stringify(frame) + "\n").join(""),
  );
  deepEqual((await raw.frame("ack")).id, 2);
  deepEqual(await raw.line(), null);
  deepEqual((await alice.next("join", { timeout: 2000 })).name, "eve");
  const leave = await alice.next(undefined, { timeout: 2000 });
  deepEqual(leave.type === "leave" && [leave.name, leave.reason], ["eve", "quit"]);
  deepEqual(await alice.who(), ["alice"]);
  await using ghost = await connect({ port, name: "ghost" });
  deepEqual(ghost.name, "ghost");
});

Deno.test("a plain-text user still choosing a name hears that the server is going away", async () => {
  const server = await serve(unthrottled);
  await using nc = await RawPeer.connect(server.addr.port);
  await nc.until(/Type your name/);
  await server.close();
  match(await nc.until(/^\*\*\*/), /shutting down/);
  deepEqual(await nc.line(), null);
});
