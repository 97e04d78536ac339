import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import {
  type ChatClient,
  type ChatEvent,
  connect,
  type MessageEvent,
  type ProtocolError,
  serve,
} from "../mod.ts";
import { startServer } from "./_cli.ts";
import { Proxy } from "./_proxy.ts";
import { local, unthrottled } from "./_helpers.ts";

/** Loopback, with the rate limits out of the way of tests that send in bulk. */

/** Every stored message of a room, paging forwards. */
async function wholeHistory(client: ChatClient, room = "#lobby"): Promise<MessageEvent[]> {
  const all: MessageEvent[] = [];
  while (true) {
    const page = await client.history(room, { after: all.at(-1)?.seq ?? 0, limit: 200 });
    if (page.length === 0) return all;
    all.push(...page);
  }
}

Deno.test("every acknowledged message survives a SIGKILL of the server, exactly once, in order", async () => {
  const dir = await Deno.makeTempDir();
  const data = `${dir}/chat.db`;
  try {
    const first = await startServer(
      "--data",
      data,
      "--rate-limit",
      "100000",
      "--rate-burst",
      "100000",
    );
    const acked: { seq: number; text: string }[] = [];
    const enough = Promise.withResolvers<void>();
    const clients = await Promise.all(
      ["ann", "ben", "cat"].map((name) => connect({ port: first.port, name, history: 0 })),
    );
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < 3000; i++) {
      for (const client of clients) {
        const text = `${client.name}-${i}`;
        sends.push(
          client.send(text).then((sent) => {
            acked.push({ seq: sent.seq, text });
            if (acked.length === 300) enough.resolve();
          }),
        );
      }
    }
    await enough.promise;
    first.server.kill("SIGKILL");
    await Promise.allSettled(sends);
    await first.server.exit();
    for (const client of clients) await client.close();
    ok(acked.length >= 300 && acked.length < 9000, `${acked.length} acknowledged before the kill`);

    // The same database file, on a new port; a later --data wins over startServer's own.
    const restarted = await startServer("--data", data, "--rate-burst", "1000");
    await using second = restarted.server;
    const port = restarted.port;
    await using reader = await connect({ port, name: "reader", history: 0 });
    const history = await wholeHistory(reader);
    deepEqual(
      history.map((m) => m.seq),
      Array.from({ length: history.length }, (_, i) => i + 1),
      "no gaps",
    );
    equal(new Set(history.map((m) => m.text)).size, history.length, "no message stored twice");
    const stored = new Map(history.map((m) => [m.seq, m.text]));
    for (const { seq, text } of acked) {
      equal(stored.get(seq), text, `acknowledged message ${seq} is stored`);
    }
    equal((await reader.send("after the restart")).seq, history.length + 1);
    second.kill("SIGTERM");
    await second.exit();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a client whose socket is cut reconnects and receives every message exactly once", async () => {
  await using server = await serve(unthrottled);
  await using proxy = new Proxy(server.addr.port);
  await using alice = await connect({
    port: proxy.port,
    name: "alice",
    reconnect: { minDelay: 10, maxDelay: 50 },
  });
  await using bob = await connect({ port: server.addr.port, name: "bob" });
  const received: number[] = [];
  const events: ChatEvent[] = [];
  const reached = new Map<number, PromiseWithResolvers<void>>([[100, Promise.withResolvers()], [
    300,
    Promise.withResolvers(),
  ]]);
  (async () => {
    for await (const event of alice) {
      events.push(event);
      if (event.type === "message") received.push(event.seq);
      reached.get(received.length)?.resolve();
    }
  })();
  for (let i = 0; i < 100; i++) await bob.send(`before ${i}`);
  await reached.get(100)!.promise;
  // Cut, and keep alice out while bob sends 100 more.
  proxy.refusing = true;
  await proxy.cut();
  for (let i = 0; i < 100; i++) await bob.send(`during ${i}`);
  proxy.refusing = false;
  for (let i = 0; i < 100; i++) await bob.send(`after ${i}`);
  await reached.get(300)!.promise;
  const reconnected = events.find((event) => event.type === "reconnected");
  // Everything bob sent while alice was out came through the catch-up, not live.
  ok(
    reconnected?.type === "reconnected" && reconnected.resumed && reconnected.missed >= 100,
    JSON.stringify(reconnected),
  );
  deepEqual(received, Array.from({ length: 300 }, (_, i) => i + 1));
  ok(events.some((event) => event.type === "reconnecting"));
  ok(!events.some((event) => event.type === "leave"), "nobody left");
  deepEqual((await wholeHistory(bob)).map((m) => m.seq), received);
  ok(proxy.forwarded >= 2);
  deepEqual(await bob.who(), ["alice", "bob"]);
});

Deno.test("messages sent while disconnected go out after the reconnect, once", async () => {
  await using server = await serve(unthrottled);
  await using proxy = new Proxy(server.addr.port);
  await using alice = await connect({
    port: proxy.port,
    name: "alice",
    reconnect: { minDelay: 10, maxDelay: 40 },
  });
  await using bob = await connect({ port: server.addr.port, name: "bob" });
  proxy.refusing = true;
  await proxy.cut();
  await alice.next("reconnecting", { timeout: 5000 });
  ok(!alice.connected);
  const queued = alice.send("written while offline");
  const dm = alice.dm("bob", "offline dm");
  await alice.next("reconnecting", { timeout: 5000 });
  proxy.refusing = false;
  const sent = await queued;
  equal(sent.text, "written while offline");
  equal((await dm).to, "bob");
  const got = await bob.next("message", { timeout: 5000 });
  deepEqual([got.from, got.text, got.seq], ["alice", "written while offline", sent.seq]);
  equal((await bob.next("dm", { timeout: 5000 })).text, "offline dm");
  deepEqual((await wholeHistory(bob)).map((m) => m.text), ["written while offline"]);
});

/** Connects alice through a proxy, then cuts her off for good (the proxy refuses her again). */
async function loseAlice(proxy: Proxy): Promise<Awaited<ReturnType<typeof connect>>> {
  const alice = await connect({
    port: proxy.port,
    name: "alice",
    reconnect: { minDelay: 1000, maxDelay: 1000 },
  });
  proxy.refusing = true;
  await proxy.cut();
  await alice.next("reconnecting", { timeout: 5000 });
  return alice;
}

Deno.test("a lost name is held for its owner during the grace period", async () => {
  // A grace far longer than the test: nothing here races its end.
  await using server = await serve({ ...unthrottled, resumeGrace: 600_000 });
  await using proxy = new Proxy(server.addr.port);
  await using bob = await connect({ port: server.addr.port, name: "bob" });
  const alice = await loseAlice(proxy);
  try {
    await rejects(
      () => connect({ port: server.addr.port, name: "alice" }),
      (error: ProtocolError) => error.code === "name_taken" && /reconnecting/.test(error.message),
    );
    // Held, not gone: nobody was told alice left.
    deepEqual(await bob.who(), ["alice", "bob"]);
  } finally {
    await alice.close();
  }
});

Deno.test("a lost name is released when the grace period ends", async () => {
  await using server = await serve({ ...unthrottled, resumeGrace: 100 });
  await using proxy = new Proxy(server.addr.port);
  await using bob = await connect({ port: server.addr.port, name: "bob" });
  const alice = await loseAlice(proxy);
  try {
    const leave = await bob.next("leave", { timeout: 5000 });
    deepEqual([leave.name, leave.reason], ["alice", "lost"]);
    await using again = await connect({ port: server.addr.port, name: "alice" });
    equal(again.name, "alice");
  } finally {
    await alice.close();
  }
});

Deno.test("a resumed session retires the old connection and keeps its rooms", async () => {
  await using server = await serve(unthrottled);
  const { port } = server.addr;
  const first = await connect({ port, name: "alice", reconnect: true });
  await first.join("#dev");
  await using bob = await connect({ port, name: "bob" });
  await bob.join("#dev");
  // A second connection resumes the first's session while it is still open.
  const raw = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const hello = { type: "hello", id: 1, v: 1, name: "x", resume: first.session };
    await raw.write(new TextEncoder().encode(JSON.stringify(hello) + "\n"));
    const welcome = await readFrame(raw, "welcome");
    deepEqual([
      welcome.name,
      welcome.resumed,
      (welcome.rooms as { name: string }[]).map((r) => r.name).sort(),
    ], [
      "alice",
      true,
      ["#dev", "#lobby"],
    ]);
    const bye = await first.next("bye", { timeout: 5000 });
    equal(bye.reason, "replaced");
  } finally {
    raw.close();
    await first.close();
  }
  const leave = await bob.next("leave", { timeout: 5000 });
  equal(leave.name, "alice");
});

async function readFrame(conn: Deno.Conn, type: string): Promise<Record<string, unknown>> {
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(65536);
  let text = "";
  while (true) {
    const read = await conn.read(buffer);
    if (read === null) throw new Error(`Closed before a "${type}" frame`);
    text += decoder.decode(buffer.subarray(0, read), { stream: true });
    const lines = text.split("\n");
    text = lines.pop()!;
    for (const line of lines) {
      const frame = JSON.parse(line);
      if (frame.type === type) return frame;
    }
  }
}

Deno.test("after a restart a client in many rooms rejoins them all in one go, paced by the server", async () => {
  const limits = { ...local, rateLimit: 20, rateBurst: 5, data: ":memory:" };
  const first = await serve(limits);
  const port = first.addr.port;
  const rooms = ["#one", "#two", "#three", "#four"];
  await using alice = await connect({
    port,
    name: "alice",
    reconnect: { minDelay: 20, maxDelay: 50 },
  });
  for (const room of rooms) {
    // A join costs five requests, the whole burst: wait as the server says.
    while (true) {
      try {
        await alice.join(room, { history: 0 });
        break;
      } catch (error) {
        if ((error as { code?: string }).code !== "rate_limited") throw error;
        await alice.ping();
      }
    }
  }
  await first.close();
  await alice.next("reconnecting", { timeout: 5000 });
  const logins: string[] = [];
  await using second = await serve({
    ...limits,
    port,
    onLog: (line) => void (/^alice (joined|reconnected)/.test(line) && logins.push(line)),
  });
  const back = await alice.next("reconnected", { timeout: 10_000 });
  equal(back.resumed, false);
  deepEqual(alice.joined.toSorted(), ["#lobby", ...rooms].toSorted());
  // One login: the rejoins waited out the rate limit instead of failing the reconnect.
  equal(logins.length, 1, logins.join("\n"));
  equal(second.users, 1);
});
