import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { connect, type IncomingOffer, type ProtocolError, serve } from "../mod.ts";
import { createIdentity } from "../_common/identity.ts";
import { sha256 } from "../_client/files.ts";
import { RawPeer } from "./_raw.ts";
import { type HostileConn, HostileServer, welcomeFor } from "./_hostile_server.ts";
import { HOME, runChat, spawnChat } from "./_cli.ts";
import { HAS_TMUX, shellQuote, TmuxSession } from "./_tmux.ts";
import { entryFor, flatten, jsonLine, notice } from "../tui/entries.ts";
import { createStyle } from "../tui/style.ts";
import { composeFrame } from "../tui/screen.ts";
import { local } from "./_helpers.ts";

const encoder = new TextEncoder();
/** What a terminal acts on: C0 controls but line feed, DEL and C1 controls. */
// deno-lint-ignore no-control-regex
const TERMINAL_CONTROLS = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;
const OSC52 = "\x1b]52;c;" + btoa("rm -rf ~\n") + "\x07";

function digest(bytes: Uint8Array): string {
  const hash = sha256();
  hash.update(bytes);
  return hash.hex();
}

function offer(fields: Record<string, unknown>): Record<string, unknown> {
  return {
    type: "offer",
    transfer: "3fK2aQ",
    from: "mallory",
    to: "alice",
    name: "notes.txt",
    size: 5,
    mime: "text/plain",
    sha256: digest(encoder.encode("hello")),
    expires: new Date(Date.now() + 60_000).toISOString(),
    ...fields,
  };
}

/** Answers the client's `accept` with a token, then serves the data connection with `bytes`. */
async function serveTransfer(
  server: HostileServer,
  peer: HostileConn,
  bytes: Uint8Array | undefined,
): Promise<HostileConn> {
  const accept = await peer.expect("accept");
  await peer.send({ type: "ack", id: accept.id, transfer: accept.transfer, token: "t0k3n" });
  const data = await server.next();
  await data.expect("data");
  await data.send({ type: "data", ok: true });
  if (bytes !== undefined) {
    await data.send(bytes);
    data.close();
  }
  return data;
}

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "chat_hostile_test_" });
}

async function list(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

Deno.test("a transfer id cannot choose a path: the temporary file is ours, in the folder", async () => {
  const root = await tempDir();
  try {
    const downloads = join(root, "downloads");
    const victim = join(root, "victim");
    await Deno.mkdir(victim);
    await Deno.writeTextFile(join(victim, "important.part"), "keep me");
    await using server = new HostileServer();
    const [client, { peer }] = await Promise.all([
      connect({ port: server.port, name: "alice" }),
      server.joined(),
    ]);
    await using _client = client;
    for (
      const [id, bytes] of [["/../../victim/planted", "hello"], [
        "/../../victim/important",
        "bad!!",
      ]]
    ) {
      await peer.send(offer({ transfer: "3fK2aQ" + id }));
      const incoming = await client.next("offer", { timeout: 5000 }) as IncomingOffer;
      const accepting = incoming.accept({ dir: downloads });
      await serveTransfer(server, peer, encoder.encode(bytes));
      if (bytes === "hello") equal((await accepting).path, join(downloads, "notes.txt"));
      else await rejects(accepting, (error: ProtocolError) => error.code === "transfer_failed");
    }
    deepEqual(await list(victim), ["important.part"]);
    equal(await Deno.readTextFile(join(victim, "important.part")), "keep me");
    deepEqual(await list(downloads), ["notes.txt"]);
    await client.close({ timeout: 100 });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a file offer's size is checked: free space, a stalled sender, closing mid-transfer", async (t) => {
  const dir = await tempDir();
  try {
    await using server = new HostileServer();
    const [client, { peer }] = await Promise.all([
      connect({ port: server.port, name: "alice" }),
      server.joined(),
    ]);
    await t.step("an offer larger than the free space is refused before accepting", async () => {
      await peer.send(offer({ transfer: "big", size: Number.MAX_SAFE_INTEGER }));
      const incoming = await client.next("offer", { timeout: 5000 }) as IncomingOffer;
      await rejects(
        incoming.accept({ dir }),
        (error: ProtocolError) => error.code === "transfer_failed" && /free/.test(error.message),
      );
    });
    await t.step("a sender that stops sending times out and leaves no file", async () => {
      await peer.send(offer({ transfer: "stall" }));
      const incoming = await client.next("offer", { timeout: 5000 }) as IncomingOffer;
      const accepting = incoming.accept({ dir, stallTimeout: 200 });
      const data = await serveTransfer(server, peer, undefined);
      await data.send("he");
      await rejects(
        accepting,
        (error: ProtocolError) =>
          error.code === "transfer_failed" && /nothing arrived/.test(error.message),
      );
      data.close();
      deepEqual(await list(dir), []);
    });
    await t.step("closing the client removes the temporary file", async () => {
      await peer.send(offer({ transfer: "cut" }));
      const incoming = await client.next("offer", { timeout: 5000 }) as IncomingOffer;
      const arrived = Promise.withResolvers<void>();
      const accepting = incoming.accept({ dir, onProgress: () => arrived.resolve() });
      accepting.catch(() => {});
      const data = await serveTransfer(server, peer, undefined);
      await data.send("he");
      await arrived.promise;
      deepEqual((await list(dir)).length, 1);
      peer.close();
      await client.close({ timeout: 100 });
      await rejects(accepting);
      data.close();
      deepEqual(await list(dir), []);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("malformed server frames are dropped, counted and reported, never a crash", async () => {
  await using server = new HostileServer();
  const [client, { peer }] = await Promise.all([
    connect({ port: server.port, name: "alice" }),
    server.joined(),
  ]);
  await using _client = client;
  const message = { type: "message", room: "#lobby", from: "bob", text: "hi", ts: "", seq: 1 };
  await peer.send({ ...message, text: undefined });
  await peer.send({ ...message, from: ["bob"] });
  await peer.send(offer({ transfer: 42 }));
  await peer.send(offer({ size: "big" }));
  await peer.send({ type: "welcome", id: 99 });
  await peer.send(message);
  const reported = await client.next("error", { timeout: 5000 });
  equal(reported.code, "invalid_frame");
  const got = await client.next("message", { timeout: 5000 });
  equal(got.text, "hi");
  equal(client.invalidFrames, 5);
  // An answer without the fields it must carry fails its request instead of crashing.
  const sending = client.send("hello");
  const send = await peer.expect("send");
  await peer.send({ type: "ack", id: send.id, room: "#lobby" });
  await rejects(sending, (error: ProtocolError) => error.code === "invalid_frame");
  const joining = client.join("#dev");
  const request = await peer.expect("join");
  await peer.send({ type: "ack", id: request.id, room: 7 });
  await rejects(joining, (error: ProtocolError) => error.code === "invalid_frame");
  ok(client.connected);
  await client.close({ timeout: 100 });
});

Deno.test("a server that answers hello with an ack instead of a welcome is refused", async () => {
  await using server = new HostileServer();
  const connecting = connect({ port: server.port, name: "alice", timeout: 5000 });
  const peer = await server.next();
  const hello = await peer.expect("hello");
  await peer.send({ type: "ack", id: hello.id });
  await rejects(
    connecting,
    (error: ProtocolError) => error.code === "invalid_frame" && /"hello"/.test(error.message),
  );
  peer.close();
});

Deno.test("the client signs a challenge only during its own handshake", async () => {
  const identity = await createIdentity();
  await using server = new HostileServer();
  const connecting = connect({ port: server.port, name: "alice", identity });
  const peer = await server.next();
  const hello = await peer.expect("hello");
  equal(hello.server, `127.0.0.1:${server.port}`);
  // A challenge for another id is not answered, the one for the hello once.
  await peer.send({ type: "challenge", id: 12345, nonce: "bm9uY2U=" });
  await peer.send({ type: "challenge", id: hello.id, nonce: "bm9uY2U=" });
  await peer.send({ type: "challenge", id: hello.id, nonce: "bm9uY2U=" });
  const auth = await peer.expect("auth");
  equal(auth.id, hello.id);
  equal(typeof auth.nonce, "string");
  await peer.send(welcomeFor(hello));
  await using client = await connecting;
  // After the welcome: a challenge is ignored. The pong proves the client read it.
  await peer.send({ type: "challenge", id: hello.id, nonce: "YWdhaW4=" });
  await peer.send({ type: "ping" });
  equal((await peer.frame())?.type, "pong");
  ok(client.invalidFrames >= 3);
  await client.close({ timeout: 100 });
});

Deno.test("a server cannot pass its challenge on and log in elsewhere as the user", async (t) => {
  const alice = await createIdentity();
  await using real = await serve(local);
  await using fake = new HostileServer();
  for (const rewrite of [false, true]) {
    await t.step(
      rewrite ? "naming the real server" : "naming the server the user dialed",
      async () => {
        const connecting = connect({
          port: fake.port,
          name: "alice",
          identity: alice,
          timeout: 5000,
        });
        connecting.catch(() => {});
        const victim = await fake.next();
        const hello = await victim.expect("hello");
        // The fake server logs in to the real one with the user's key.
        await using relay = await RawPeer.connect(real.addr.port);
        await relay.send({
          ...hello,
          server: rewrite ? `127.0.0.1:${real.addr.port}` : hello.server,
        });
        const answer = JSON.parse((await relay.line())!);
        if (answer.type === "challenge") {
          await victim.send({ type: "challenge", id: hello.id, nonce: answer.nonce });
          const auth = await victim.expect("auth");
          await relay.send(auth);
          const result = JSON.parse((await relay.line())!);
          deepEqual([result.type, result.code], ["error", "auth_failed"]);
        } else {
          deepEqual([answer.type, answer.code], ["error", "auth_failed"]);
        }
        victim.close();
        await rejects(connecting);
      },
    );
  }
  // The real user still gets in.
  await using user = await connect({ port: real.addr.port, name: "alice", identity: alice });
  equal(user.name, "alice");
});

Deno.test("a server that welcomes and drops at once does not reset the backoff", async () => {
  await using server = new HostileServer();
  const drops = (async () => {
    while (true) {
      const { peer } = await server.joined().catch(() => ({ peer: undefined }));
      if (peer === undefined) return;
      peer.close();
    }
  })();
  const client = await connect({
    port: server.port,
    name: "alice",
    reconnect: { minDelay: 5, maxDelay: 20 },
  });
  const attempts: number[] = [];
  while (attempts.length < 4) {
    attempts.push((await client.next("reconnecting", { timeout: 10_000 })).attempt);
  }
  deepEqual(attempts, [1, 2, 3, 4]);
  await client.close({ timeout: 100 });
  await server[Symbol.asyncDispose]();
  await drops;
});

Deno.test("a huge reconnect catch-up fetches only the latest messages and says so", async () => {
  await using server = new HostileServer();
  const [client, first] = await Promise.all([
    connect({ port: server.port, name: "alice", reconnect: { minDelay: 1 } }),
    server.joined(),
  ]);
  first.peer.close();
  const top = 1_000_000;
  const { peer } = await server.joined({
    resumed: true,
    rooms: [{ name: "#lobby", seq: top, topic: "", members: ["alice"] }],
  });
  let pages = 0;
  const answering = (async () => {
    while (true) {
      const frame = await peer.frame();
      if (frame === null || frame.type !== "history") return;
      pages++;
      const after = Number(frame.after);
      const messages = [];
      for (let seq = after + 1; seq <= Math.min(after + Number(frame.limit), top); seq++) {
        messages.push({
          type: "message",
          room: "#lobby",
          from: "bob",
          text: `m${seq}`,
          ts: "",
          seq,
        });
      }
      await peer.send({ type: "ack", id: frame.id, room: "#lobby", messages });
    }
  })();
  const reconnected = await client.next("reconnected", { timeout: 10_000 });
  equal(reconnected.missed, 1000);
  deepEqual(reconnected.skipped, { "#lobby": top - 1000 });
  ok(pages <= 6, `${pages} pages`);
  equal((await client.next("message", { timeout: 5000 })).seq, top - 999);
  const line = flatten(entryFor(reconnected, { self: "alice", style: createStyle(false) })!);
  ok(line.includes("/history #lobby"), line);
  peer.close();
  await client.close({ timeout: 100 });
  await answering;
});

Deno.test("a changed pinned certificate stops the reconnects and says so", async () => {
  const { createSelfSignedCertificate, certificateFingerprint } = await import("../_common/tls.ts");
  const first = await createSelfSignedCertificate(["localhost"]);
  const second = await createSelfSignedCertificate(["localhost"]);
  let listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, ...first });
  const port = (listener.addr as Deno.NetAddr).port;
  let server = new HostileServer(listener);
  const [client, { peer }] = await Promise.all([
    connect({
      port,
      name: "alice",
      tls: { fingerprint: await certificateFingerprint(first.cert) },
      reconnect: { minDelay: 1, maxDelay: 5 },
    }),
    server.joined(),
  ]);
  await server[Symbol.asyncDispose]();
  listener = Deno.listenTls({ hostname: "127.0.0.1", port, ...second });
  server = new HostileServer(listener);
  peer.close();
  try {
    const error = await client.next("error", { timeout: 10_000 });
    equal(error.code, "certificate_changed");
    ok(/no longer matches/.test(error.message), error.message);
    await rejects(client.next("message"), (e: ProtocolError) => e.code === "closed");
    ok(client.closed);
  } finally {
    await client.close();
    await server[Symbol.asyncDispose]();
  }
});

Deno.test("everything from the network is sanitised by the output layer", () => {
  const style = createStyle(true);
  for (
    const text of [
      `Now typing into #x${OSC52}`,
      `Rooms: #a${OSC52} (1)`,
      `alice's key is SHA256:${OSC52}`,
      "\u009b2J",
    ]
  ) {
    // The client's own colours are the only escape sequences left.
    // deno-lint-ignore no-control-regex
    const line = flatten(notice(style, text)).replaceAll(/\x1b\[[0-9;]*m/g, "");
    ok(!TERMINAL_CONTROLS.test(line), line);
  }
  const frame = composeFrame({
    columns: 80,
    rows: 5,
    log: [],
    scroll: 0,
    status: `chat · alice @ x · #lobby${OSC52}`,
    input: { lines: ["> "], cursorRow: 0, cursorColumn: 2 },
    style: createStyle(false),
  });
  ok(frame.lines.every((line) => !TERMINAL_CONTROLS.test(line)), JSON.stringify(frame.lines));
  const json = jsonLine({ text: "\u009b2J\u202e" });
  ok(!TERMINAL_CONTROLS.test(json), json);
  deepEqual(JSON.parse(json), { text: "\u009b2J\u202e" });
});

Deno.test("chat connect in line mode prints no escape sequence a server chose", async () => {
  await using server = new HostileServer();
  await using chat = spawnChat(["connect", `127.0.0.1:${server.port}`, "--name", "alice"], {
    stdin: "piped",
  });
  const peer = await server.next();
  const hello = await peer.expect("hello");
  await peer.send(
    welcomeFor(hello, {
      room: `#lobby${OSC52}`,
      members: ["alice", `bob${OSC52}`],
      rooms: [{ name: `#lobby${OSC52}`, seq: 0, topic: "", members: ["alice"] }],
    }),
  );
  const answers = (async () => {
    while (true) {
      const frame = await peer.frame();
      if (frame === null) return;
      if (frame.type === "rooms") {
        await peer.send({
          type: "ack",
          id: frame.id,
          rooms: [{ name: `#evil${OSC52}`, members: 1, topic: OSC52 }],
        });
      } else if (frame.type === "whois") {
        await peer.send({
          type: "ack",
          id: frame.id,
          name: `bob${OSC52}`,
          online: true,
          op: false,
          fingerprint: `SHA256:${OSC52}`,
        });
      } else if (frame.type === "join") {
        await peer.send({ type: "ack", id: frame.id, room: `#x${OSC52}`, names: [], seq: 0 });
        await peer.send(offer({ transfer: `\x1b]52;c;${btoa("evil")}\x07abc`, to: "alice" }));
      } else if (frame.type === "quit") {
        await peer.send({ type: "ack", id: frame.id });
        peer.close();
        return;
      }
    }
  })();
  await chat.write("/rooms\n/whois bob\n/join #x\n");
  await chat.stdout.readUntil(/offers/);
  await chat.write("/quit\n");
  const result = await chat.exit();
  await answers;
  const output = result.stdout + result.stderr;
  ok(!TERMINAL_CONTROLS.test(output), JSON.stringify(output));
  ok(output.includes("SHA256:"), output);
});

Deno.test("chat send gives up on a server that welcomes and never answers", async () => {
  await using server = new HostileServer();
  await using chat = spawnChat([
    "send",
    `127.0.0.1:${server.port}`,
    "--name",
    "alice",
    "--no-key",
    "--timeout",
    "1",
    "hello",
  ]);
  const exited = chat.exit();
  const joined = await Promise.race([exited.then(() => undefined), server.joined()]);
  // It keeps the connection alive, but never answers a request.
  const pinging = (async () => {
    if (joined === undefined) return;
    while ((await joined.peer.frame()) !== null) await joined.peer.send({ type: "ping" });
  })();
  const result = await exited;
  joined?.peer.close();
  await pinging;
  equal(result.code, 3, result.stderr);
  ok(/no answer from the server within 1 s/.test(result.stderr), result.stderr);
  ok(HOME !== "");
});

Deno.test("chat send gives up on a server that never welcomes, with the timeout's exit code", async () => {
  // A server that takes the connection and never says a word.
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for await (const conn of listener) held.push(conn);
    } catch {
      // Closed at the end.
    }
  })();
  try {
    const result = await runChat([
      "send",
      `127.0.0.1:${listener.addr.port}`,
      "--name",
      "alice",
      "--no-key",
      "--timeout",
      "1",
      "hello",
    ]);
    equal(result.code, 3, result.stderr);
    match(result.stderr, /no welcome from the server in time/);
  } finally {
    for (const conn of held) conn.close();
    listener.close();
    await accepting;
  }
});

Deno.test({
  name: "the terminal client lets no clipboard write from the server reach the terminal",
  ignore: !HAS_TMUX,
  async fn() {
    await using server = new HostileServer();
    const root = new URL("..", import.meta.url).pathname;
    const chat = [Deno.execPath(), "run", "-q", "-P=chat", "--no-prompt", "main.ts", "connect"]
      .concat([`127.0.0.1:${server.port}`, "--name", "alice", "--no-key", "--no-color"])
      .map(shellQuote).join(" ");
    const script = `cd ${shellQuote(root)}; XDG_CONFIG_HOME=${HOME}/config ` +
      `XDG_DATA_HOME=${HOME}/data ${chat}; exec sleep 60`;
    await using pane = await TmuxSession.start(`sh -c ${shellQuote(script)}`, {
      columns: 100,
      rows: 20,
    });
    // Any clipboard write that reaches tmux would become a paste buffer.
    await pane.run("set-option", "-s", "set-clipboard", "on");
    const peer = await server.next();
    const hello = await peer.expect("hello");
    await peer.send(
      welcomeFor(hello, {
        room: `#lobby${OSC52}`,
        members: ["alice", `bob${OSC52}`],
        rooms: [{ name: `#lobby${OSC52}`, seq: 0, topic: OSC52, members: ["alice"] }],
      }),
    );
    await peer.send({
      type: "message",
      room: `#lobby${OSC52}`,
      from: `bob${OSC52}`,
      text: `hi${OSC52}`,
      ts: new Date().toISOString(),
      seq: 1,
    });
    await peer.send(offer({ transfer: `${OSC52}abc`, from: `bob${OSC52}` }));
    await pane.waitFor(/offers/);
    await pane.type("/rooms");
    await pane.press("Enter");
    const rooms = await peer.expect("rooms");
    await peer.send({
      type: "ack",
      id: rooms.id,
      rooms: [{ name: `#evil${OSC52}`, members: 1, topic: OSC52 }],
    });
    await pane.waitFor(/#evil/);
    equal((await pane.run("list-buffers")).trim(), "");
    // The sequences are shown as visible placeholders instead.
    ok((await pane.screen()).join("\n").includes("]52;c;"));
    peer.close();
  },
});

Deno.test("key proofs over TLS name the certificate, and the server checks it", async (t) => {
  const { createSelfSignedCertificate } = await import("../_common/tls.ts");
  const certificate = await createSelfSignedCertificate(["localhost", "127.0.0.1"]);
  const alice = await createIdentity();
  await using server = await serve({
    hostname: "127.0.0.1",
    port: 0,
    tls: certificate,
    plainPort: 0,
    publicPorts: [65000],
  });
  const { port } = server.addr;
  await t.step("a client trusting a CA or a pin logs in with its key", async () => {
    for (const tls of [{ caCerts: [certificate.cert] }, { fingerprint: certificate.fingerprint }]) {
      await using client = await connect({ port, name: "alice", identity: alice, tls });
      equal(client.name, "alice");
    }
  });
  await t.step(
    "a proof naming another certificate, a host the certificate is not valid for, or a foreign port, is refused",
    async () => {
      const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
      await using peer = await RawPeer.over(
        await Deno.startTls(tcp, { hostname: "localhost", caCerts: [certificate.cert] }),
      );
      const hello = { type: "hello", v: 1, name: "alice", key: alice.publicKey };
      for (
        const [id, fields] of [
          [1, { server: `192.0.2.1:${port}` }],
          [2, { server: `127.0.0.1:${port}`, tls: "SHA256:" + "AB:".repeat(31) + "AB" }],
          [3, { server: `127.0.0.1:1`, tls: certificate.fingerprint }],
        ] as const
      ) {
        await peer.send({ ...hello, id, ...fields });
        const error = await peer.frame("error");
        deepEqual([error.id, error.code], [id, "auth_failed"]);
      }
      await peer.send({ ...hello, id: 4, server: "[::1]:65000", tls: certificate.fingerprint });
      equal((await peer.frame("challenge")).id, 4);
    },
  );
  await t.step("on the plain port, a proof naming a certificate is refused", async () => {
    await using peer = await RawPeer.connect(server.plainAddr!.port);
    await peer.send({
      type: "hello",
      id: 1,
      v: 1,
      name: "alice",
      key: alice.publicKey,
      server: `127.0.0.1:${server.plainAddr!.port}`,
      tls: certificate.fingerprint,
    });
    deepEqual((await peer.frame("error")).code, "auth_failed");
  });
});
