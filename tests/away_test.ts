import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { connect, serve } from "../mod.ts";
import { local } from "./_helpers.ts";
import { Proxy } from "./_proxy.ts";
import { RawPeer } from "./_raw.ts";
import { parseClientFrame, parseServerFrame } from "../protocol/frames.ts";
import { parseCommand } from "../protocol/commands.ts";

Deno.test("away shows in whois, who and the answer to a private message, until back", async () => {
  await using server = await serve(local);
  const port = server.addr.port;
  await using alice = await connect({ port, name: "alice" });
  await using bob = await connect({ port, name: "bob" });
  equal(await alice.away("  lunch, back at 2  "), "lunch, back at 2");
  equal((await bob.whois("alice")).away, "lunch, back at 2");
  deepEqual(await bob.roster(), {
    room: "#lobby",
    names: ["alice", "bob"],
    away: { alice: "lunch, back at 2" },
    ops: [],
  });
  const sent = await bob.dm("alice", "are you there?");
  equal(sent.away, "lunch, back at 2");
  // Delivered all the same.
  equal((await alice.next("dm", { timeout: 5000 })).text, "are you there?");
  equal((await alice.dm("bob", "hi")).away, undefined);

  equal(await alice.away(""), "");
  equal((await bob.whois("alice")).away, undefined);
  deepEqual((await bob.roster()).away, {});
  equal((await bob.dm("alice", "now?")).away, undefined);
});

Deno.test("away refuses a message over 300 characters and keeps the old one", async () => {
  await using server = await serve(local);
  await using alice = await connect({ port: server.addr.port, name: "alice" });
  await alice.away("out");
  await rejects(alice.away("x".repeat(301)), /Away message is longer than 300 characters/);
  equal((await alice.whois("alice")).away, "out");
});

Deno.test("away on the wire: the request, its answer and the who answer", async () => {
  await using server = await serve(local);
  const port = server.addr.port;
  await using raw = await RawPeer.connect(port);
  await raw.send({ type: "hello", id: 1, v: 1, name: "carol" });
  await raw.frame("welcome");
  await raw.send({ type: "away", id: 2, message: "afk" });
  deepEqual(await raw.frame("ack"), { type: "ack", id: 2, away: "afk" });
  await raw.send({ type: "who", id: 3 });
  deepEqual(await raw.frame("ack"), {
    type: "ack",
    id: 3,
    room: "#lobby",
    names: ["carol"],
    awayMessages: { carol: "afk" },
  });
  await raw.send({ type: "away", id: 4 });
  deepEqual(await raw.frame("ack"), { type: "ack", id: 4, away: "" });
  await raw.send({ type: "away", id: 5, message: 7 });
  deepEqual(await raw.frame("error"), {
    type: "error",
    id: 5,
    code: "bad_request",
    message: 'Field "message" must be a string',
  });
  deepEqual(parseClientFrame('{"type":"away","id":1}'), { type: "away", id: 1 });
  equal(
    parseServerFrame('{"type":"ack","id":1,"awayMessages":{"a":"x"}}').type,
    "ack",
  );
  let refused = false;
  try {
    parseServerFrame('{"type":"ack","id":1,"awayMessages":{"a":1}}');
  } catch {
    refused = true;
  }
  equal(refused, true, "an away list that is not strings is refused");
});

Deno.test("plain-text users go away and come back with /away and /back", async () => {
  await using server = await serve(local);
  const port = server.addr.port;
  deepEqual(parseCommand("/away"), { kind: "away", message: "away" });
  deepEqual(parseCommand("/away at lunch"), { kind: "away", message: "at lunch" });
  deepEqual(parseCommand("/back"), { kind: "away", message: "" });
  await using alice = await connect({ port, name: "alice" });
  await using nc = await RawPeer.connect(port);
  await nc.write("tom\n");
  await nc.until(/You are tom/);
  await nc.write("/away at lunch\n");
  await nc.until(/^\*\*\* You are away: at lunch\r?$/m);
  equal((await alice.whois("tom")).away, "at lunch");
  await alice.away("gone fishing");
  await nc.write("/msg alice hello\n");
  await nc.until(/^\*\*\* alice is away: gone fishing\r?$/m);
  await nc.write("/who\n");
  await nc.until(/^\*\*\* In #lobby: alice \(away: gone fishing\), tom \(away: at lunch\)\r?$/m);
  await nc.write("/whois alice\n");
  await nc.until(/^\*\*\* alice is online, away: gone fishing; /m);
  await nc.write("/back\n");
  await nc.until(/^\*\*\* You are back\r?$/m);
  equal((await alice.whois("tom")).away, undefined);
});

Deno.test("a client that comes back as a new session is away again", async () => {
  await using server = await serve({ ...local, resumeGrace: 0 });
  await using proxy = new Proxy(server.addr.port);
  await using alice = await connect({
    port: proxy.port,
    name: "alice",
    reconnect: { minDelay: 10, maxDelay: 40 },
  });
  await using bob = await connect({ port: server.addr.port, name: "bob" });
  await alice.away("on a train");
  await proxy.cut();
  const back = await alice.next("reconnected", { timeout: 5000 });
  equal(back.resumed, false);
  equal((await bob.whois("alice")).away, "on a train");
});

Deno.test("away events go only to clients that listed them in hello.caps", async () => {
  await using server = await serve(local);
  const port = server.addr.port;
  await using old = await RawPeer.connect(port);
  await old.send({ type: "hello", id: 1, v: 1, name: "old" });
  await old.frame("welcome");
  await using asked = await RawPeer.connect(port);
  await asked.send({ type: "hello", id: 1, v: 1, name: "asked", caps: ["away", "later"] });
  await asked.frame("welcome");
  await using alice = await connect({ port, name: "alice" });
  await alice.away("lunch");
  const away = await asked.frame("away");
  deepEqual([away.name, away.message], ["alice", "lunch"]);
  // The client that did not ask gets nothing it would not know, up to the answer of a ping.
  await old.send({ type: "ping", id: 2 });
  for (let line = await old.line(); !line?.includes('"ack"'); line = await old.line()) {
    const frame = parseServerFrame(line!);
    ok(frame.type === "join" || frame.type === "message", line!);
  }
  await using bad = await RawPeer.connect(port);
  await bad.send({ type: "hello", id: 1, v: 1, name: "bad", caps: "away" });
  equal((await bad.frame("error")).code, "bad_request");
});
