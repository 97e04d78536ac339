import { deepEqual, equal, match, ok } from "node:assert/strict";
import { createHash } from "node:crypto";
import { connect, serve } from "../mod.ts";
import { renderAssets } from "../tools/build_web.ts";
import { ASSETS_MODULE } from "../tools/build_web.ts";
import { DATA_WINDOW_BYTES } from "../_server/doors/websocket.ts";
import { createSelfSignedCertificate } from "../_common/tls.ts";
import { assertOneErrorLine, runChat, spawnChat, startServer, stopServer } from "./_cli.ts";
import { local, unthrottled } from "./_helpers.ts";
import { RawPeer } from "./_raw.ts";
import { rawUpgrade, textFrame, writeAll, WsPeer } from "./_websocket.ts";

const web = { ...local, webPort: 0 };

Deno.test("the embedded page is up to date with its files", async () => {
  equal(
    await Deno.readTextFile(ASSETS_MODULE),
    await renderAssets(),
    'run "deno task web" after changing the page',
  );
});

Deno.test("the web port serves the page with a strict policy and nothing else", async () => {
  await using server = await serve(web);
  const base = `http://127.0.0.1:${server.webAddr!.port}`;
  const page = await fetch(`${base}/`);
  equal(page.status, 200);
  match(page.headers.get("content-type")!, /^text\/html/);
  const policy = page.headers.get("content-security-policy")!;
  match(policy, /default-src 'self'/);
  match(policy, /script-src 'self'(;|$)/);
  ok(!policy.includes("unsafe-inline") && !policy.includes("unsafe-eval"));
  match(policy, /connect-src 'self' ws:\/\/127\.0\.0\.1:\d+ wss:\/\/127\.0\.0\.1:\d+/);
  equal(page.headers.get("x-content-type-options"), "nosniff");
  const html = await page.text();
  // No inline script: every script comes from the server's own files.
  ok(!/<script(?![^>]*\bsrc=)[^>]*>/.test(html));
  const script = await fetch(`${base}/app.js`);
  match(script.headers.get("content-type")!, /^text\/javascript/);
  await script.body?.cancel();
  const missing = await fetch(`${base}/../deno.json`);
  equal(missing.status, 404);
  await missing.body?.cancel();
  const post = await fetch(`${base}/`, { method: "POST", body: "x" });
  equal(post.status, 405);
  await post.body?.cancel();
});

Deno.test("a WebSocket asked for by another site's page is refused with 403", async (t) => {
  await using server = await serve(web);
  const port = server.webAddr!.port;
  const cases: [string, Record<string, string>, number][] = [
    ["another site", { Origin: "http://evil.example" }, 403],
    ["the same host on another port", { Origin: "http://127.0.0.1:1" }, 403],
    ["a page not served over http", { Origin: "null" }, 403],
    ["the page itself", { Origin: `http://127.0.0.1:${port}` }, 101],
    ["a program that sends no Origin", {}, 101],
  ];
  for (const [name, headers, status] of cases) {
    await t.step(name, async () => {
      const upgrade = await rawUpgrade(port, headers);
      equal(upgrade.status, status);
      upgrade.conn.close();
    });
  }
});

Deno.test("with TLS, the page and its WebSocket are served over TLS", async () => {
  const { cert, key } = await createSelfSignedCertificate(["127.0.0.1"]);
  await using server = await serve({ ...web, tls: { cert, key } });
  const port = server.webAddr!.port;
  const client = Deno.createHttpClient({ caCerts: [cert] });
  try {
    const page = await fetch(`https://127.0.0.1:${port}/`, { client });
    equal(page.status, 200);
    await page.body?.cancel();
  } finally {
    client.close();
  }
  const conn = await Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [cert] });
  const upgrade = await rawUpgrade(port, { Origin: `https://127.0.0.1:${port}` }, conn);
  equal(upgrade.status, 101);
  await writeAll(conn, textFrame(JSON.stringify({ type: "hello", id: 1, v: 1, name: "tls" })));
  // The welcome comes back inside TLS.
  const head = new Uint8Array(2);
  equal(await conn.read(head), 2);
  equal(head[0], 0x81);
  conn.close();
});

Deno.test("a WebSocket user and a TCP user chat in Chinese and English", async () => {
  await using server = await serve({ ...web });
  await using browser = await WsPeer.join(server.webAddr!.port, "小明");
  await using bob = await connect({ hostname: "127.0.0.1", port: server.addr.port, name: "bob" });
  await bob.send("你好, 小明! hello");
  const heard = await browser.until((frame) => frame.type === "message");
  equal(heard.text, "你好, 小明! hello");
  browser.send({ type: "send", id: 2, room: "#lobby", text: "你好 bob 👋", key: "k1" });
  const ack = await browser.until((frame) => frame.type === "ack" && frame.id === 2);
  equal(ack.seq, 2);
  const message = await bob.next("message", { timeout: 10_000 });
  deepEqual([message.from, message.text], ["小明", "你好 bob 👋"]);
});

Deno.test("a WebSocket frame over the limit, or a binary one, is refused and the socket stays", async () => {
  await using server = await serve({ ...web, maxFrameBytes: 1000 });
  await using peer = await WsPeer.join(server.webAddr!.port, "alice");
  peer.send(JSON.stringify({ type: "send", id: 2, room: "#lobby", text: "字".repeat(400) }));
  const tooLarge = await peer.until((frame) => frame.type === "error");
  equal(tooLarge.code, "frame_too_large");
  peer.socket.send(new Uint8Array([1, 2, 3]));
  const binary = await peer.until((frame) => frame.code === "bad_request");
  equal(binary.id, undefined);
  peer.send({ type: "ping", id: 3 });
  await peer.until((frame) => frame.type === "ack" && frame.id === 3);
});

Deno.test("a WebSocket that keeps sending past its line budget is cut off as a flood", async () => {
  await using server = await serve({ ...web, rateLimit: 1, rateBurst: 1, floodTimeout: 300 });
  await using watcher = await connect({ hostname: "127.0.0.1", port: server.addr.port, name: "w" });
  await using peer = await WsPeer.join(server.webAddr!.port, "flooder");
  const padding = "x".repeat(200);
  // 80 KiB of requests at once, far past one a second.
  for (let id = 2; id < 400; id++) peer.send({ type: "ping", id, padding });
  const bye = await peer.until((frame) => frame.type === "bye");
  equal(bye.reason, "flood");
  await peer.closed();
  const leave = await watcher.next("leave", { timeout: 10_000 });
  deepEqual([leave.name, leave.reason], ["flooder", "flood"]);
});

Deno.test("a WebSocket reader that stops reading is disconnected, and others are not held up", async () => {
  await using server = await serve({ ...unthrottled, webPort: 0, maxSendQueueBytes: 64 * 1024 });
  const slow = await rawUpgrade(server.webAddr!.port);
  equal(slow.status, 101);
  try {
    await writeAll(
      slow.conn,
      textFrame(JSON.stringify({ type: "hello", id: 1, v: 1, name: "slow" })),
    );
    await using alice = await connect({
      hostname: "127.0.0.1",
      port: server.addr.port,
      name: "alice",
    });
    await using watcher = await WsPeer.join(server.webAddr!.port, "watcher");
    // Wait until slow is in, then fill its socket: it never reads.
    while (!(await alice.who()).includes("slow")) await alice.ping();
    const text = "满".repeat(7000);
    let leave: Record<string, unknown> | undefined;
    for (let round = 0; round < 200 && leave === undefined; round++) {
      await Promise.all(Array.from({ length: 10 }, () => alice.send(text)));
      leave = watcher.frames.find((frame) => frame.type === "leave" && frame.name === "slow");
    }
    leave ??= await watcher.until((frame) => frame.type === "leave" && frame.name === "slow");
    equal(leave.reason, "send_queue_exceeded");
    // The watcher kept up: it has every message alice sent before and after.
    await alice.send("still here");
    await watcher.until((frame) => frame.type === "message" && frame.text === "still here");
  } finally {
    slow.conn.close();
  }
});

Deno.test("what waits for WebSocket readers counts against the server's queue budget", async () => {
  // Each reader may fall far behind (16 MiB), but all of them together only 256 KiB: readers
  // that stopped are cut off long before their own limit.
  await using server = await serve({
    ...unthrottled,
    webPort: 0,
    maxSendQueueBytes: 16 * 1024 * 1024,
    maxQueuedBytes: 256 * 1024,
  });
  const port = server.webAddr!.port;
  const readers = await Promise.all(["slow1", "slow2", "slow3"].map(async (name) => {
    const reader = await rawUpgrade(port);
    equal(reader.status, 101);
    await writeAll(reader.conn, textFrame(JSON.stringify({ type: "hello", id: 1, v: 1, name })));
    return reader;
  }));
  try {
    await using alice = await connect({
      hostname: "127.0.0.1",
      port: server.addr.port,
      name: "alice",
    });
    await using watcher = await WsPeer.join(port, "watcher");
    for (const name of ["slow1", "slow2", "slow3"]) {
      while (!(await alice.who()).includes(name)) await alice.ping();
    }
    const text = "满".repeat(7000);
    const left = () =>
      watcher.frames.filter((frame) =>
        frame.type === "leave" && String(frame.name).startsWith("slow")
      );
    let sent = 0;
    while (left().length < 3 && sent < 8 * 1024 * 1024) {
      await Promise.all(Array.from({ length: 10 }, () => alice.send(text)));
      sent += 10 * 21_000;
    }
    deepEqual(left().map((frame) => frame.reason), Array(3).fill("send_queue_exceeded"));
    await alice.send("still here");
    await watcher.until((frame) => frame.type === "message" && frame.text === "still here");
  } finally {
    for (const reader of readers) reader.conn.close();
  }
});

Deno.test("a file goes from a TCP client to a WebSocket and back, with matching hashes", async () => {
  await using server = await serve({ ...unthrottled, webPort: 0 });
  const port = server.webAddr!.port;
  await using browser = await WsPeer.join(port, "web");
  await using bob = await connect({ hostname: "127.0.0.1", port: server.addr.port, name: "bob" });
  const bytes = new Uint8Array(3 * DATA_WINDOW_BYTES / 2);
  for (let i = 0; i < bytes.length; i += 65536) {
    crypto.getRandomValues(bytes.subarray(i, i + 65536));
  }
  const sha256 = createHash("sha256").update(bytes).digest("hex");

  // bob → web
  const sending = bob.sendFile("web", bytes, { name: "photo.png", mime: "image/png" });
  const offer = await browser.until((frame) => frame.type === "offer");
  browser.send({ type: "accept", id: 2, transfer: offer.transfer });
  const accepted = await browser.until((frame) => frame.type === "ack" && frame.id === 2);
  await using data = await WsPeer.open(port);
  data.send({ type: "data", token: accepted.token });
  await data.closed();
  equal(data.frames[0]?.ok, true);
  const received = new Uint8Array(data.binary.reduce((sum, chunk) => sum + chunk.length, 0));
  let offset = 0;
  for (const chunk of data.binary) {
    received.set(chunk, offset);
    offset += chunk.length;
  }
  equal(createHash("sha256").update(received).digest("hex"), sha256);
  browser.send({ type: "received", id: 3, transfer: offer.transfer, ok: true });
  await sending;

  // web → bob, within the window the server grants
  browser.send({
    type: "offer",
    id: 4,
    to: "bob",
    name: "back.png",
    size: bytes.length,
    mime: "image/png",
    sha256,
  });
  const incoming = await bob.next("offer", { timeout: 10_000 });
  const dir = await Deno.makeTempDir();
  try {
    const saving = incoming.accept({ dir });
    const go = await browser.until((frame) =>
      frame.type === "transfer" && frame.state === "accepted"
    );
    await using upload = await WsPeer.open(port);
    upload.send({ type: "data", token: go.token });
    await upload.until((frame) => frame.ok === true);
    for (let at = 0; at < bytes.length; at += 64 * 1024) {
      // Keep no more than the window in flight.
      await upload.until((frame) =>
        at === 0 || at - Number(frame.taken ?? 0) <= DATA_WINDOW_BYTES - 64 * 1024
      );
      upload.socket.send(bytes.subarray(at, at + 64 * 1024));
    }
    const saved = await saving;
    equal(saved.sha256, sha256);
    equal(createHash("sha256").update(await Deno.readFile(saved.path)).digest("hex"), sha256);
    await upload.closed();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chat serve prints the page's address and serves it there; --no-web serves none", async () => {
  const { server } = await startServer();
  try {
    const [, port] = await server.stdout.readUntil(
      /^ {2}Open http:\/\/127\.0\.0\.1:(\d+)\/ in a browser$/m,
    );
    const page = await fetch(`http://127.0.0.1:${port}/`);
    equal(page.status, 200);
    match(await page.text(), /<script type="module" src="\/app\.js"><\/script>/);
  } finally {
    await stopServer(server);
  }
  const quiet = await startServer("--no-web");
  try {
    await quiet.server.stdout.readUntil(/Press Ctrl-C to stop\./);
    ok(!quiet.server.stdout.text.includes("in a browser"));
    await using peer = await RawPeer.connect(quiet.port);
    match((await peer.line()) ?? "", /^Welcome to chat/);
  } finally {
    await stopServer(quiet.server);
  }
  assertOneErrorLine(
    await runChat(["serve", "--no-web", "--web-port", "9000"]),
    /^chat: Give --web-port or --no-web, not both/,
    2,
  );
});

Deno.test("chat serve without --web-port goes on without the page when the next port is taken", async () => {
  // A free port whose next one can be held.
  let held: Deno.Listener | undefined;
  let port = 0;
  for (let attempt = 0; attempt < 20 && held === undefined; attempt++) {
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    port = probe.addr.port;
    probe.close();
    try {
      held = Deno.listen({ hostname: "127.0.0.1", port: port + 1 });
    } catch {
      // Taken: try another.
    }
  }
  ok(held !== undefined, "no pair of free ports found");
  try {
    const server = spawnChat(["serve", "--host", "127.0.0.1", "--port", String(port)]);
    try {
      await server.stdout.readUntil(
        /Cannot serve the web page on "127\.0\.0\.1:\d+": address already in use; serving no web page/,
      );
      await server.stdout.readUntil(/listening on 127\.0\.0\.1:\d+/);
      await server.stdout.readUntil(/Press Ctrl-C to stop\./);
      ok(!server.stdout.text.includes("in a browser"));
      // The chat itself is served.
      await using peer = await RawPeer.connect(port);
      match((await peer.line()) ?? "", /^Welcome to chat/);
    } finally {
      await stopServer(server);
    }
  } finally {
    held.close();
  }
});
