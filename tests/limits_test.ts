import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { connect, type ProtocolError, serve } from "../mod.ts";
import { RawPeer } from "./_raw.ts";
import { local } from "./_helpers.ts";

Deno.test("a connection that never finishes the handshake is closed with a reason", async (t) => {
  // Long enough that alice's own handshake never races it, even on a busy machine.
  await using server = await serve({ ...local, handshakeTimeout: 1000 });
  const { port } = server.addr;
  await using alice = await connect({ port, name: "alice" });
  await t.step("half a JSON hello, then silence", async () => {
    await using raw = await RawPeer.connect(port);
    await raw.write('{"type":"hello","id":1,');
    const bye = JSON.parse(await raw.until(/"bye"/));
    deepEqual([bye.reason, /No name/.test(bye.message)], ["timeout", true]);
    equal(await raw.line(), null);
  });
  await t.step("a plain-text user who never types a name", async () => {
    await using raw = await RawPeer.connect(port);
    match(await raw.until(/disconnecting/), /No name was given within 1 s/);
    equal(await raw.line(), null);
  });
  deepEqual(await alice.who(), ["alice"]);
});

Deno.test("idle JSON clients are pinged; the silent ones are dropped", async () => {
  await using server = await serve({ ...local, idleTimeout: 300 });
  const { port } = server.addr;
  await using alice = await connect({ port, name: "alice" });
  await using raw = await RawPeer.connect(port);
  await raw.send({ type: "hello", id: 1, v: 1, name: "mute" });
  await raw.frame("welcome");
  deepEqual(JSON.parse(await raw.until(/"ping"/)), { type: "ping" });
  await raw.send({ type: "pong" });
  // Answered once, then silent: dropped after the idle timeout.
  const bye = await raw.frame("bye");
  equal(bye.reason, "timeout");
  const leave = await alice.next("leave", { timeout: 5000 });
  deepEqual([leave.name, leave.reason], ["mute", "timeout"]);
  // The library answers pings by itself, so alice is still here.
  await alice.ping();
  deepEqual(await alice.who(), ["alice"]);
});

Deno.test("connections are capped per address and in total, with a reason the client reports", async (t) => {
  await t.step("per address", async () => {
    await using server = await serve({ ...local, maxConnectionsPerIp: 2 });
    const { port } = server.addr;
    await using a = await connect({ port, name: "a" });
    await using b = await connect({ port, name: "b" });
    await using raw = await RawPeer.connect(port);
    match((await raw.line())!, /^! Too many connections from 127\.0\.0\.1 \(at most 2\)$/);
    equal(await raw.line(), null);
    await rejects(
      () => connect({ port, name: "c" }),
      (error: ProtocolError) => /Too many connections/.test(error.message),
    );
    await a.close();
    await b.next("leave", { timeout: 5000 });
    await using c = await connect({ port, name: "c" });
    equal(c.name, "c");
  });
  await t.step("in total", async () => {
    await using server = await serve({ ...local, maxConnections: 1 });
    await using a = await connect({ port: server.addr.port, name: "a" });
    await rejects(() => connect({ port: server.addr.port, name: "b" }), /server is full/);
    equal(a.name, "a");
  });
  await t.step("new connections per second from one address", async () => {
    await using server = await serve({ ...local, connectRate: 1 });
    const peers = await Promise.all([0, 1, 2].map(() => RawPeer.connect(server.addr.port)));
    try {
      await peers[2]!.write("x\n");
      match((await peers[2]!.line())!, /Too many new connections/);
    } finally {
      for (const peer of peers) peer.close();
    }
  });
});

Deno.test("a flood is paced, a paste is one message, costly requests are refused, others keep chatting", async () => {
  await using server = await serve({ ...local, rateLimit: 20, rateBurst: 5 });
  const { port } = server.addr;
  await using flood = await connect({ port, name: "flood" });
  await using bob = await connect({ port, name: "bob" });
  const paste = Array.from({ length: 200 }, (_, i) => `line ${i} of a long paste`).join("\n");
  equal((await flood.send(paste)).text, paste);
  // More sends at once than the burst: read as the budget refills, every one accepted, in order.
  const sent = await Promise.all(
    Array.from({ length: 15 }, (_, i) => flood.send(`spam ${i}`)),
  );
  deepEqual(sent.map((message) => message.text), sent.map((_, i) => `spam ${i}`));
  ok(sent.every((message, i) => i === 0 || message.seq === sent[i - 1]!.seq + 1));
  // A join costs five requests: two at once overdraw the burst, and the second is refused.
  const joins = await Promise.allSettled([flood.join("#a"), flood.join("#b")]);
  const refused = joins.find((r) => r.status === "rejected") as PromiseRejectedResult;
  ok(refused, "both joins were accepted");
  equal(refused.reason.code, "rate_limited");
  match(refused.reason.message, /Slow down: too many requests; try again in \d+\.\d s/);
  equal((await bob.send("I am not limited")).text, "I am not limited");
  equal((await bob.next("message", { timeout: 5000 })).text, paste);
});

Deno.test("joining rooms is limited per user and costs more than a message", async () => {
  await using server = await serve({ ...local, maxRoomsPerUser: 3 });
  await using alice = await connect({ port: server.addr.port, name: "alice" });
  await alice.join("#one");
  await alice.join("#two");
  await rejects(
    () => alice.join("#three"),
    (error: ProtocolError) => error.code === "too_many_rooms",
  );
  await alice.leave("#one");
  await alice.join("#three");
  deepEqual(alice.joined.toSorted(), ["#lobby", "#three", "#two"]);
});
