import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { connect, ConnectionError, ProtocolError } from "../mod.ts";
import { startChat } from "../testing.ts";

/** A refusal by the server, or for a local failure's code a {@linkcode ConnectionError}. */
function hasCode(code: string): (error: unknown) => boolean {
  const local = ["closed", "timeout"].includes(code);
  return (error) =>
    error instanceof ProtocolError && error.code === code &&
    (error instanceof ConnectionError) === local;
}

Deno.test("startChat connects the clients in order and each has seen the later ones join", async () => {
  await using chat = await startChat({ clients: ["alice", "bob", "carol"] });
  const { alice, bob, carol } = chat.clients;
  deepEqual([alice.name, bob.name, carol.name], ["alice", "bob", "carol"]);
  deepEqual(alice.transcript(), ["#lobby: bob joined", "#lobby: carol joined"]);
  deepEqual(bob.transcript(), ["#lobby: carol joined"]);
  deepEqual(carol.transcript(), []);
  equal(chat.hostname, "127.0.0.1");
  equal(chat.port, chat.server.addr.port);
  equal(chat.server.data, ":memory:");
  equal(chat.tls, undefined);
});

Deno.test("waitFor returns the earliest matching event not returned before", async () => {
  await using chat = await startChat({ clients: ["alice", "bob"] });
  const { alice, bob } = chat.clients;
  for (const text of ["one", "two", "three"]) await alice.send(text);
  equal((await bob.waitFor("message", (message) => message.text === "two")).text, "two");
  equal((await bob.waitFor("message")).text, "one");
  equal((await bob.next("message")).text, "three");
  await alice.dm("bob", "psst", { action: true });
  equal((await bob.next()).type, "dm");
  deepEqual(bob.events.map((event) => event.type), ["message", "message", "message", "dm"]);
  deepEqual(bob.transcript(), [
    "#lobby <alice> one",
    "#lobby <alice> two",
    "#lobby <alice> three",
    "(dm) * alice psst",
  ]);
});

Deno.test("waits made at the same time get different events", async () => {
  await using chat = await startChat({ clients: ["alice", "bob"] });
  const { alice, bob } = chat.clients;
  const waits = [bob.waitFor("message"), bob.waitFor("message"), bob.next("message")];
  for (const text of ["one", "two", "three"]) await alice.send(text);
  deepEqual((await Promise.all(waits)).map((message) => message.text), ["one", "two", "three"]);
});

Deno.test("waitFor times out with what the client saw", async () => {
  await using chat = await startChat({ clients: ["alice", "bob"], timeout: 100 });
  const { alice, bob } = chat.clients;
  await alice.send("hello");
  await bob.waitFor("message");
  await rejects(bob.waitFor("message", (m) => m.text === "bye"), hasCode("timeout"));
  try {
    await alice.waitFor("dm", undefined, { timeout: 50 });
    ok(false, "expected a timeout");
  } catch (error) {
    ok(error instanceof ConnectionError);
    equal(error.code, "timeout");
    equal(
      error.message,
      'Timed out after 50 ms waiting for a "dm" event; "alice" saw:\n  #lobby: bob joined',
    );
  }
});

Deno.test("waitFor ends when the client closes or the signal aborts", async () => {
  await using chat = await startChat({ clients: ["alice", "bob"] });
  const { alice, bob } = chat.clients;
  const controller = new AbortController();
  const aborted = bob.waitFor("message", undefined, { signal: controller.signal });
  controller.abort(new Error("enough"));
  await rejects(aborted, /enough/);

  const waiting = bob.waitFor("message", undefined, { timeout: 60_000 });
  await bob.close();
  await rejects(waiting, hasCode("closed"));
  await rejects(bob.waitFor("dm"), hasCode("closed"));
  // What arrived before the end can still be read.
  equal((await alice.waitFor("leave")).name, "bob");
  await alice.close();
  equal((await alice.waitFor("join")).name, "bob");
});

Deno.test("for await over a test client reads the record, so a bot's events are kept", async () => {
  await using chat = await startChat({ clients: ["alice", "bot"] });
  const { alice, bot } = chat.clients;
  const seen: string[] = [];
  const running = (async () => {
    for await (const event of bot) {
      if (event.type === "message") {
        seen.push(event.text);
        await bot.send(event.text.toUpperCase());
      }
    }
  })();
  await alice.send("hi");
  equal((await alice.waitFor("message", (m) => m.from === "bot")).text, "HI");
  await bot.close();
  await running;
  deepEqual(seen, ["hi"]);
  deepEqual(bot.transcript(), ["#lobby <alice> hi"]);
  ok(bot instanceof Object && "waitFor" in bot && "send" in bot);
});

Deno.test("startChat passes limits and the password to the server, and the password to its clients", async () => {
  await using chat = await startChat({
    clients: ["alice"],
    password: "open sesame",
    maxTextLength: 10,
  });
  await rejects(chat.clients.alice.send("x".repeat(11)), hasCode("invalid_text"));
  await chat.clients.alice.send("x".repeat(10));
  await rejects(connect({ port: chat.port, name: "eve" }), ProtocolError);
  await using bob = await chat.connect("bob");
  equal((await chat.clients.alice.waitFor("join")).name, "bob");
  equal(bob.name, "bob");
});

Deno.test("startChat serves TLS that clients pin, and exposes the certificate", async () => {
  await using chat = await startChat({ clients: ["alice", "bob"], tls: true });
  match(chat.tls!.fingerprint, /^SHA256:([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  await using carol = await connect({
    port: chat.port,
    name: "carol",
    tls: { caCerts: [chat.tls!.cert] },
  });
  await rejects(connect({ port: chat.port, name: "dave" }), ProtocolError);
  await carol.send("secure");
  equal((await chat.clients.bob.waitFor("message")).text, "secure");
});

Deno.test("startChat closes what it started when a client is refused", async () => {
  await rejects(startChat({ clients: ["alice", "alice"] }), hasCode("name_taken"));
  const chat = await startChat({ clients: ["alice"] });
  await chat.close();
  await chat.close();
  await chat[Symbol.asyncDispose]();
  ok(chat.clients.alice.closed);
  await rejects(chat.connect("bob"), hasCode("closed"));
});

Deno.test("the chat transcript lists every client under its name", async () => {
  await using chat = await startChat({ clients: ["alice", "bob"] });
  await chat.clients.bob.send("hey", { action: true });
  await chat.clients.alice.waitFor("message");
  await chat.clients.alice.join("#dev");
  await chat.clients.bob.join("#dev");
  await chat.clients.alice.waitFor("join", (event) => event.room === "#dev");
  equal(
    chat.transcript(),
    "alice:\n  #lobby: bob joined\n  #lobby * bob hey\n  #dev: bob joined\nbob: (nothing)",
  );
});
