import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { connect, type ProtocolError, serve } from "../mod.ts";
import { createIdentity } from "../_identity.ts";
import { createSelfSignedCertificate } from "../_tls.ts";
import { RawPeer } from "./_raw.ts";
import { runChat, startServer, stopServer } from "./_cli.ts";

const local = { hostname: "127.0.0.1", port: 0 };

Deno.test("TLS: a verified, a pinned and a refused certificate", async (t) => {
  const certificate = await createSelfSignedCertificate(["localhost", "127.0.0.1"]);
  const other = await createSelfSignedCertificate(["localhost", "127.0.0.1"]);
  await using server = await serve({ ...local, tls: certificate, plainPort: 0 });
  const { port } = server.addr;
  await t.step("verified against the certificate as a trusted authority", async () => {
    await using alice = await connect({
      port,
      name: "alice",
      tls: { caCerts: [certificate.cert] },
    });
    equal((await alice.send("over TLS")).seq, 1);
  });
  await t.step(
    "pinned by fingerprint, even when the address is not in the certificate",
    async () => {
      await using bob = await connect({
        hostname: "127.0.0.1",
        port,
        name: "bob",
        tls: { fingerprint: certificate.fingerprint },
      });
      deepEqual(await bob.who(), ["bob"]);
    },
  );
  await t.step("refused when nothing vouches for it, with a hint", async () => {
    await rejects(
      () => connect({ port, name: "eve", tls: true }),
      (error: ProtocolError) =>
        error.code === "unreachable" && /--ca CERT\.pem.*--fingerprint/.test(error.message),
    );
  });
  await t.step("refused when the fingerprint is another certificate's", async () => {
    await rejects(
      () => connect({ port, name: "eve", tls: { fingerprint: other.fingerprint } }),
      (error: ProtocolError) => /fingerprint is .* not the/.test(error.message),
    );
    await rejects(
      () => connect({ port, name: "eve", tls: { caCerts: [other.cert] } }),
      /Cannot verify the TLS certificate/,
    );
  });
  await t.step("a plain port for nc users next to the TLS one", async () => {
    await using tlsUser = await connect({
      port,
      name: "carol",
      history: 0,
      tls: { caCerts: [certificate.cert] },
    });
    await using nc = await RawPeer.connect(server.plainAddr!.port);
    await nc.write("dave\n");
    await nc.until(/You are dave/);
    await nc.write("hello in the clear\n");
    equal((await tlsUser.next("message", { timeout: 5000 })).text, "hello in the clear");
  });
});

Deno.test("names belong to the first key that claims them", async () => {
  await using server = await serve(local);
  const { port } = server.addr;
  const aliceKey = await createIdentity();
  const eveKey = await createIdentity();
  const first = await connect({ port, name: "alice", identity: aliceKey });
  await first.close();
  await rejects(
    () => connect({ port, name: "Alice", identity: eveKey }),
    (error: ProtocolError) =>
      error.code === "name_claimed" && error.message.includes(aliceKey.fingerprint),
  );
  await rejects(
    () => connect({ port, name: "alice" }),
    (error: ProtocolError) => error.code === "name_claimed",
  );
  await using nc = await RawPeer.connect(port);
  await nc.write("alice\n");
  match(await nc.until(/^!/), /belongs to another key/);
  await using alice = await connect({ port, name: "alice", identity: aliceKey });
  deepEqual(await alice.whois("ALICE"), {
    name: "alice",
    online: true,
    op: false,
    fingerprint: aliceKey.fingerprint,
  });
  await using eve = await connect({ port, name: "eve", identity: eveKey });
  await rejects(() => eve.nick("alice"), (error: ProtocolError) => error.code === "name_claimed");
  await alice.close();
  deepEqual(await eve.whois("alice"), {
    name: "alice",
    online: false,
    op: false,
    fingerprint: aliceKey.fingerprint,
  });
  await rejects(() => eve.whois("nobody"), (error: ProtocolError) => error.code === "no_such_user");
});

Deno.test("a key must be proven: a bad signature is refused", async () => {
  await using server = await serve(local);
  const identity = await createIdentity();
  await using raw = await RawPeer.connect(server.addr.port);
  await raw.send({
    type: "hello",
    id: 1,
    v: 1,
    name: "mallory",
    key: identity.publicKey,
    server: `127.0.0.1:${server.addr.port}`,
  });
  const challenge = await raw.frame("challenge");
  equal(typeof challenge.nonce, "string");
  await raw.send({
    type: "auth",
    id: 1,
    nonce: "mine",
    signature: await identity.sign(new TextEncoder().encode("something else")),
  });
  const error = await raw.frame("error");
  deepEqual([error.id, error.code], [1, "auth_failed"]);
});

Deno.test("a server password is required and checked", async (t) => {
  await using server = await serve({ ...local, password: "correct horse" });
  const { port } = server.addr;
  await t.step("missing or wrong", async () => {
    await rejects(
      () => connect({ port, name: "a" }),
      (e: ProtocolError) => e.code === "unauthorized" && /needs a password/.test(e.message),
    );
    await rejects(
      () => connect({ port, name: "a", password: "wrong" }),
      (e: ProtocolError) => e.code === "unauthorized",
    );
  });
  await t.step("right", async () => {
    await using a = await connect({ port, name: "a", password: "correct horse" });
    equal(a.name, "a");
  });
  await t.step("plain-text users are asked first", async () => {
    await using nc = await RawPeer.connect(port);
    await nc.until(/password/);
    await nc.write("correct horse\r\nbob\r\n");
    await nc.until(/You are bob/);
  });
});

Deno.test("operators kick, mute and ban; bans survive a restart", async () => {
  const dir = await Deno.makeTempDir();
  const op = await createIdentity();
  const options = { ...local, data: `${dir}/chat.db`, operators: [op.fingerprint] };
  try {
    {
      await using server = await serve(options);
      const { port } = server.addr;
      await using boss = await connect({ port, name: "boss", identity: op });
      await using bob = await connect({ port, name: "bob" });
      await using carol = await connect({ port, name: "carol" });
      await rejects(() => bob.kick("carol"), (e: ProtocolError) => e.code === "not_operator");
      equal((await bob.whois("boss")).op, true);

      await boss.mute("bob", { reason: "calm down" });
      await rejects(
        () => bob.send("hey"),
        (e: ProtocolError) => e.code === "muted" && /calm down/.test(e.message),
      );
      await rejects(() => bob.dm("carol", "hey"), (e: ProtocolError) => e.code === "muted");
      await boss.mute("bob", { duration: 0 });
      equal((await bob.send("thanks")).text, "thanks");

      await boss.kick("carol", "spam");
      const bye = await carol.next("bye", { timeout: 5000 });
      deepEqual([bye.reason, bye.message], ["kicked", "Kicked by boss: spam"]);
      const kicked = await bob.next("leave", { timeout: 5000 });
      deepEqual([kicked.name, kicked.reason], ["carol", "kicked"]);

      await boss.ban("bob", { duration: 3600, reason: "enough" });
      equal((await bob.next("bye", { timeout: 5000 })).reason, "banned");
      await rejects(
        () => connect({ port, name: "bob" }),
        (e: ProtocolError) => e.code === "banned" && /enough/.test(e.message),
      );
    }
    {
      await using server = await serve(options);
      const { port } = server.addr;
      await rejects(
        () => connect({ port, name: "BOB" }),
        (e: ProtocolError) => e.code === "banned",
      );
      await using boss = await connect({ port, name: "boss", identity: op });
      await boss.unban("bob");
      await using bob = await connect({ port, name: "bob" });
      equal(bob.name, "bob");
      await boss.ban("ip:127.0.0.1");
    }
    {
      await using server = await serve(options);
      await using raw = await RawPeer.connect(server.addr.port);
      match((await raw.line())!, /^! You are banned/);
      await rejects(() => connect({ port: server.addr.port, name: "x" }), /banned/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chat serve --tls prints a fingerprint that chat connect --fingerprint trusts", async () => {
  const data = await Deno.makeTempDir();
  try {
    const started = await startServer("--data", `${data}/chat.db`, "--tls");
    await using server = started.server;
    const port = started.port;
    const [, fingerprint] = await server.stdout.readUntil(
      /TLS certificate fingerprint: (SHA256:\S+)/,
    );
    ok(await Deno.stat(`${data}/tls-cert.pem`));
    const pinned = await runChat([
      "send",
      `127.0.0.1:${port}`,
      "--name",
      "ci",
      "--fingerprint",
      fingerprint!,
      "over TLS",
    ]);
    equal(pinned.code, 0, pinned.stderr);
    const refused = await runChat(["send", `127.0.0.1:${port}`, "--name", "ci", "--tls", "no"]);
    equal(refused.code, 1);
    match(refused.stderr, /Cannot verify the TLS certificate.*--fingerprint/);
    await stopServer(server);
  } finally {
    await Deno.remove(data, { recursive: true });
  }
});

Deno.test("bans and mutes cannot be dodged by renaming", async () => {
  const op = await createIdentity();
  const loud = await createIdentity();
  await using server = await serve({ ...local, operators: [op.fingerprint] });
  const { port } = server.addr;
  await using chief = await connect({ port, name: "chief", identity: op });
  await using noisy = await connect({ port, name: "noisy", identity: loud });
  await chief.mute("noisy");
  await noisy.nick("quiet");
  await rejects(() => noisy.send("renamed, still muted"), (e: ProtocolError) => e.code === "muted");
  await rejects(() => noisy.topic("#lobby", "mine"), (e: ProtocolError) => e.code === "muted");
  await chief.ban("spammer");
  await rejects(() => noisy.nick("spammer"), (e: ProtocolError) => e.code === "banned");
  await rejects(
    () => chief.ban("quiet", { duration: 0 }),
    (e: ProtocolError) => e.code === "bad_request",
  );
  await chief.mute("quiet", { duration: 0 });
  equal((await noisy.send("heard again")).text, "heard again");
});

Deno.test("a client with a key comes back after the server restarts, proving its key again", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const identity = await createIdentity();
    const first = await serve({ ...local, data: `${dir}/chat.db` });
    const port = first.addr.port;
    await using alice = await connect({
      port,
      name: "alice",
      identity,
      reconnect: { minDelay: 20, maxDelay: 50 },
    });
    await first.close();
    await alice.next("reconnecting", { timeout: 5000 });
    await using second = await serve({ ...local, port, data: `${dir}/chat.db` });
    const back = await alice.next("reconnected", { timeout: 10_000 });
    equal(back.resumed, false);
    equal(alice.name, "alice");
    equal((await alice.whois("alice")).fingerprint, identity.fingerprint);
    equal(second.users, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
