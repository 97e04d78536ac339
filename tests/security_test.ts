import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { connect, type ProtocolError, serve } from "../mod.ts";
import { createIdentity, proofBytes } from "../_common/identity.ts";
import { LoginGuard } from "../_server/login_guard.ts";
import { createSelfSignedCertificate } from "../_common/tls.ts";
import { RawPeer } from "./_raw.ts";
import { runChat, startServer, stopServer } from "./_cli.ts";
import { local } from "./_helpers.ts";

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
  await rejects(() => noisy.nick("quiet"), (e: ProtocolError) => e.code === "muted");
  await rejects(() => noisy.send("still muted"), (e: ProtocolError) => e.code === "muted");
  await rejects(() => noisy.topic("#lobby", "mine"), (e: ProtocolError) => e.code === "muted");
  await chief.mute("noisy", { duration: 0 });
  await chief.ban("spammer");
  await rejects(() => noisy.nick("spammer"), (e: ProtocolError) => e.code === "banned");
  await noisy.nick("quiet");
  await rejects(
    () => chief.ban("quiet", { duration: 0 }),
    (e: ProtocolError) => e.code === "bad_request",
  );
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

Deno.test("failed passwords make an address wait", async () => {
  // A budget of one failure for the whole server, then one every 10 s.
  await using server = await serve({ ...local, password: "right", loginFailureRate: 0.1 });
  const { port } = server.addr;
  // A client without a password is told so; that is not a guess.
  for (let i = 0; i < 3; i++) {
    await rejects(
      () => connect({ port, name: "probe" }),
      (e: ProtocolError) => e.code === "unauthorized" && /needs a password/.test(e.message),
    );
  }
  await rejects(
    () => connect({ port, name: "eve", password: "guess" }),
    (e: ProtocolError) => e.code === "unauthorized" && /Wrong password/.test(e.message),
  );
  // Now the address waits, whatever it tries: the password is not even checked.
  await rejects(
    () => connect({ port, name: "eve", password: "right" }),
    (e: ProtocolError) =>
      e.code === "rate_limited" && /Too many failed logins.*try again in \d+ s/.test(e.message),
  );
});

Deno.test("failed key proofs make an address wait", async () => {
  await using server = await serve({ ...local, loginFailureRate: 0.1 });
  const { port } = server.addr;
  const identity = await createIdentity();
  const other = await createIdentity();
  await using raw = await RawPeer.connect(port);
  const prove = async (id: number, signer: typeof identity) => {
    const server = `127.0.0.1:${port}`;
    await raw.send({ type: "hello", id, v: 1, name: "eve", key: identity.publicKey, server });
    const challenge = await raw.frame("challenge");
    const signature = await signer.sign(
      proofBytes({
        server,
        tls: "",
        name: "eve",
        serverNonce: challenge.nonce as string,
        clientNonce: "mine",
      }),
    );
    await raw.send({ type: "auth", id, nonce: "mine", signature });
    return JSON.parse((await raw.line())!);
  };
  const answer = await prove(1, other);
  deepEqual([answer.type, answer.code], ["error", "auth_failed"]);
  const refused = await prove(2, identity);
  deepEqual([refused.type, refused.code, refused.id], ["error", "rate_limited", 2]);
  match(refused.message, /Too many failed logins/);
});

Deno.test("the login guard: per address, per IPv6 network, and for the whole server", async (t) => {
  await t.step("three free failures, then 1 s, doubling, up to the limit", () => {
    const guard = new LoginGuard(1000, 5000, 0);
    const waits: number[] = [];
    for (let i = 0; i < 7; i++) {
      guard.failed("192.0.2.1", 0);
      waits.push(guard.wait("192.0.2.1", 0));
    }
    deepEqual(waits, [0, 0, 0, 1000, 2000, 4000, 5000]);
    equal(guard.wait("192.0.2.1", 5000), 0);
    // The right password forgets the failures.
    guard.failed("192.0.2.1", 5000);
    equal(guard.wait("192.0.2.1", 5000), 5000);
    guard.succeeded("192.0.2.1");
    equal(guard.wait("192.0.2.1", 5000), 0);
    equal(guard.wait("192.0.2.2", 0), 0);
  });
  await t.step("one IPv6 /64 is one address", () => {
    const guard = new LoginGuard(1000, 60_000, 0);
    for (let i = 1; i <= 4; i++) guard.failed(`2001:db8:1:2::${i}`, 0);
    equal(guard.wait("2001:db8:1:2:ffff::9", 0), 1000);
    equal(guard.wait("2001:db8:1:3::1", 0), 0);
  });
  await t.step("many addresses share the server's budget", () => {
    const guard = new LoginGuard(2, 60_000, 0);
    // A burst of 20 failures from 20 addresses spends the budget...
    for (let i = 0; i < 20; i++) guard.failed(`198.51.100.${i}`, 0);
    // ...so an address that failed once now waits, though its own backoff has not started.
    equal(guard.wait("198.51.100.3", 0), 500);
    // One that never failed may still try.
    equal(guard.wait("203.0.113.9", 0), 0);
    equal(guard.wait("198.51.100.3", 500), 0);
  });
  await t.step("records are forgotten after quiet minutes", () => {
    const guard = new LoginGuard(1000, 60_000, 0);
    for (let i = 0; i < 5; i++) guard.failed("192.0.2.7", 0);
    guard.sweep(16 * 60_000);
    guard.failed("192.0.2.7", 16 * 60_000);
    equal(guard.wait("192.0.2.7", 16 * 60_000), 0);
  });
});

Deno.test("a ban covers the name, its key and the address of a keyless user", async () => {
  const op = await createIdentity();
  const spammerKey = await createIdentity();
  const friendKey = await createIdentity();
  await using server = await serve({ ...local, operators: [op.fingerprint] });
  const { port } = server.addr;
  await using chief = await connect({ port, name: "chief", identity: op });

  // A name ban: the same key under another name is refused.
  {
    await using spam = await connect({ port, name: "spam", identity: spammerKey });
    await chief.ban("spam", { reason: "spam" });
    equal((await spam.next("bye", { timeout: 5000 })).reason, "banned");
  }
  await rejects(
    () => connect({ port, name: "fresh", identity: spammerKey }),
    (e: ProtocolError) => e.code === "banned" && /spam/.test(e.message),
  );
  // Lifting the ban of the name lifts what came with it.
  await chief.unban("spam");
  {
    await using back = await connect({ port, name: "fresh", identity: spammerKey });
    equal(back.name, "fresh");
  }

  // A key ban: the same person without a key is refused, someone with a key of their own is not.
  await using keyed = await connect({ port, name: "keyed", identity: spammerKey });
  await chief.ban(`key:${spammerKey.fingerprint}`, { duration: 3600 });
  equal((await keyed.next("bye", { timeout: 5000 })).reason, "banned");
  await rejects(
    () => connect({ port, name: "nokey" }),
    (e: ProtocolError) => e.code === "banned",
  );
  await using friend = await connect({ port, name: "friend", identity: friendKey });
  equal(friend.name, "friend");
  await chief.unban(`key:${spammerKey.fingerprint}`);
  await using nokey = await connect({ port, name: "nokey" });
  equal(nokey.name, "nokey");

  // A rename to a banned name is refused, and the connection stays.
  await chief.ban("villain");
  await rejects(() => nokey.nick("Villain"), (e: ProtocolError) => e.code === "banned");
  equal((await nokey.send("still here")).text, "still here");
});

Deno.test("a muted user cannot shed the mute with a new name, nor leave it on the old one", async () => {
  const op = await createIdentity();
  await using server = await serve({ ...local, operators: [op.fingerprint] });
  const { port } = server.addr;
  await using chief = await connect({ port, name: "chief", identity: op });
  await using loud = await connect({ port, name: "loud" });
  await chief.mute("loud", { reason: "calm down" });
  await rejects(
    () => loud.nick("calm"),
    (e: ProtocolError) => e.code === "muted" && /calm down/.test(e.message),
  );
  equal(loud.name, "loud");
  await rejects(() => loud.send("still loud"), (e: ProtocolError) => e.code === "muted");
  // Nobody else is muted by a name the muted user passed through.
  await using other = await connect({ port, name: "calm" });
  equal((await other.send("I was never muted")).text, "I was never muted");
  await chief.mute("loud", { duration: 0 });
  await loud.nick("quiet");
  equal((await loud.send("heard")).text, "heard");
});

Deno.test("address bans take prefixes, and malformed ones are refused", async () => {
  const op = await createIdentity();
  await using server = await serve({ ...local, operators: [op.fingerprint] });
  const { port } = server.addr;
  await using chief = await connect({ port, name: "chief", identity: op });
  for (
    const bad of ["ip:127.0.0.1/8", "ip:127.0.0", "ip:1.2.3.4/33", "ip:::1/129", "ip:fe80::1%lo"]
  ) {
    await rejects(
      () => chief.ban(bad),
      (e: ProtocolError) => e.code === "bad_request",
      bad,
    );
  }
  await rejects(
    () => chief.ban("ip:127.0.0.1/8"),
    (e: ProtocolError) => /did you mean "127\.0\.0\.0\/8"/.test(e.message),
  );
  await chief.ban("ip:127.0.0.0/8", { reason: "loopback" });
  await using raw = await RawPeer.connect(port);
  match((await raw.line())!, /^! You are banned: loopback/);
  await chief.unban("ip:127.0.0.0/8");
  await using bob = await connect({ port, name: "bob" });
  equal(bob.name, "bob");
  await chief.ban("ip:2001:db8::/32");
  await chief.unban("ip:2001:DB8:0::/32");
});

Deno.test("a key proof over TLS verified by an authority must name a host the certificate is valid for", async (t) => {
  const certificate = await createSelfSignedCertificate(["127.0.0.1"]);
  await using server = await serve({ ...local, tls: certificate });
  const { port } = server.addr;
  const identity = await createIdentity();
  // What a server passing our challenge on would send: the hello of a user who dialed it.
  const helloOver = async (host: string) => {
    using conn = await Deno.connectTls({
      hostname: "127.0.0.1",
      port,
      caCerts: [certificate.cert],
    });
    const hello = { type: "hello", id: 1, v: 1, name: "alice", key: identity.publicKey };
    await conn.write(
      new TextEncoder().encode(JSON.stringify({ ...hello, server: `${host}:${port}`, tls: "" })),
    );
    await conn.write(new TextEncoder().encode("\n"));
    const buffer = new Uint8Array(4096);
    let text = "";
    while (!text.includes("\n")) {
      const read = await conn.read(buffer);
      if (read === null) break;
      text += new TextDecoder().decode(buffer.subarray(0, read));
    }
    return JSON.parse(text.slice(0, text.indexOf("\n")));
  };
  await t.step("a host the certificate does not name is refused before any challenge", async () => {
    const answer = await helloOver("127.0.0.2");
    deepEqual([answer.type, answer.code], ["error", "auth_failed"]);
    match(answer.message, /certificate is not valid for/);
  });
  await t.step("a host it names is challenged", async () => {
    equal((await helloOver("127.0.0.1")).type, "challenge");
  });
  await t.step("a client verifying by authority logs in with its key", async () => {
    await using alice = await connect({
      port,
      name: "alice",
      identity,
      tls: { caCerts: [certificate.cert] },
    });
    equal(alice.name, "alice");
  });
});

Deno.test("a key binds at most ten names, so it cannot squat every name it passes through", async () => {
  await using server = await serve({ ...local, rateLimit: 1000, rateBurst: 1000 });
  const { port } = server.addr;
  const identity = await createIdentity();
  await using squatter = await connect({ port, name: "s0", identity });
  for (let i = 1; i <= 12; i++) await squatter.nick(`s${i}`);
  await squatter.nick("settled");
  // The first ten names are its own for good; the ones after stay free for anyone.
  await rejects(
    () => connect({ port, name: "s9" }),
    (e: ProtocolError) => e.code === "name_claimed",
  );
  await using other = await connect({ port, name: "s11" });
  equal(other.name, "s11");
});
