/**
 * The fan-out path: shared bytes written without copies, the server-wide
 * budget for queued bytes, backpressure on senders, and readers that stop.
 *
 * @module
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import { QueueBudget, SendQueue } from "../_common/send_queue.ts";
import { Arenas, Outbound, OutboundRun } from "../_server/outbound.ts";
import { connect, serve } from "../mod.ts";
import { unthrottled } from "./_helpers.ts";
import { RawPeer } from "./_raw.ts";

/** A connection whose writes are recorded, and held until released when `hold` is set. */
class FakeConn {
  writes: Uint8Array[] = [];
  hold = false;
  #held: (() => void)[] = [];
  closed = false;

  write(bytes: Uint8Array): Promise<number> {
    this.writes.push(bytes);
    if (!this.hold) return Promise.resolve(bytes.length);
    return new Promise((resolve) => this.#held.push(() => resolve(bytes.length)));
  }

  /** Lets the writes held so far finish. */
  release(): void {
    this.hold = false;
    for (const finish of this.#held.splice(0)) finish();
  }

  close(): void {
    this.closed = true;
  }

  get conn(): Deno.Conn {
    return this as unknown as Deno.Conn;
  }
}

/** Lets queued microtasks and resolved writes run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

Deno.test("adjacent stretches of one buffer go out as one write, without a copy", async () => {
  const conn = new FakeConn();
  const queue = new SendQueue(conn.conn, { maxBytes: 1 << 20 });
  const base = new Uint8Array(64 * 1024).fill(7);
  queue.pushView(base, 0, 20_000);
  queue.pushView(base, 20_000, 50_000);
  await settle();
  equal(conn.writes.length, 1);
  equal(conn.writes[0]!.buffer, base.buffer);
  deepEqual([conn.writes[0]!.byteOffset, conn.writes[0]!.length], [0, 50_000]);
  queue.destroy();
});

Deno.test("small pieces are joined into one write; large ones go as they are", async () => {
  const conn = new FakeConn();
  const queue = new SendQueue(conn.conn, { maxBytes: 1 << 20 });
  const large = new Uint8Array(40_000).fill(3);
  queue.push(new Uint8Array([1, 2]));
  queue.push(new Uint8Array([3]));
  queue.push(large);
  queue.push(new Uint8Array([4]));
  await settle();
  deepEqual(conn.writes.map((bytes) => bytes.length), [3, 40_000, 1]);
  deepEqual([...conn.writes[0]!], [1, 2, 3]);
  equal(conn.writes[1]!.buffer, large.buffer);
  queue.destroy();
});

Deno.test("bytes many queues share count once, and are let go once written or dropped", async () => {
  const budget = new QueueBudget(1 << 20);
  const a = new FakeConn();
  const b = new FakeConn();
  b.hold = true;
  const first = new SendQueue(a.conn, { maxBytes: 1 << 20, budget });
  const second = new SendQueue(b.conn, { maxBytes: 1 << 20, budget });
  const shared = new Uint8Array(1000);
  first.pushView(shared, 0, 500);
  second.pushView(shared, 0, 500);
  second.push(new Uint8Array(10));
  equal(budget.bytes, 1010);
  await settle();
  // The first queue wrote its part; the second still holds the shared buffer.
  equal(budget.bytes, 1010);
  second.pushView(shared, 500, 1000);
  second.destroy();
  equal(budget.bytes, 0);
  first.destroy();
});

Deno.test("past a quarter of the budget reading stops, and starts again under an eighth", async () => {
  const budget = new QueueBudget(8000);
  const conn = new FakeConn();
  conn.hold = true;
  const queue = new SendQueue(conn.conn, { maxBytes: 1 << 20, budget });
  queue.push(new Uint8Array(1500));
  equal(budget.paused, false);
  queue.push(new Uint8Array(1500));
  equal(budget.paused, true);
  let resumed = false;
  const waiting = budget.resumed().then(() => resumed = true);
  await settle();
  equal(resumed, false);
  conn.release();
  await waiting;
  equal(budget.paused, false);
  equal(budget.bytes, 0);
  queue.destroy();
  budget.close();
});

Deno.test("past the whole budget, the reader furthest behind is cut off first", async () => {
  const budget = new QueueBudget(10_000);
  const cut: string[] = [];
  const queues = new Map<string, SendQueue>();
  for (const name of ["far", "near"]) {
    const conn = new FakeConn();
    conn.hold = true;
    queues.set(
      name,
      new SendQueue(conn.conn, {
        maxBytes: 1 << 20,
        budget,
        onOverflow: () => cut.push(name),
      }),
    );
  }
  queues.get("far")!.push(new Uint8Array(7000));
  queues.get("near")!.push(new Uint8Array(4000));
  await settle();
  deepEqual(cut, ["far"]);
  for (const queue of queues.values()) queue.destroy();
  equal(budget.bytes, 0);
  budget.close();
});

Deno.test("past the whole budget, idle readers are passed over, and stuck ones go first", async () => {
  const budget = new QueueBudget(10_000);
  const cut: string[] = [];
  const now = Date.now();
  // Not real queues: what the budget sees of them.
  const reader = (name: string, bytes: number, idleMs: number) => ({
    bytes,
    progress: now - idleMs,
    overflow: () => cut.push(name),
  });
  budget.add(reader("idle", 0, 60_000));
  budget.add(reader("big", 6000, 0));
  budget.add(reader("stuck", 3000, 5000));
  budget.add(reader("small", 2000, 0));
  const held = new Uint8Array(14_000);
  budget.hold(held);
  await settle();
  // Stuck first, then the largest, until what they hold covers the excess (4,000 bytes past).
  deepEqual(cut, ["stuck", "big"]);
  budget.release(held);
  budget.close();
});

Deno.test("a run is laid out once and handed out as adjacent stretches", () => {
  const arenas = new Arenas();
  const items = ["a", "b", "c"].map((text, seq) =>
    new Outbound({ type: "message", room: "#lobby", from: "x", text, ts: "t", seq })
  );
  const run = new OutboundRun(items, arenas);
  const whole: [Uint8Array, number, number][] = [];
  run.json(0, 3, { pushView: (base, from, to) => whole.push([base, from, to]) });
  equal(whole.length, 1);
  const [base, from, to] = whole[0]!;
  deepEqual(
    new TextDecoder().decode(base.subarray(from, to)),
    items.map((item) => JSON.stringify(item.frame) + "\n").join(""),
  );
  // A sender hears the others around its own message: two stretches of the same buffer.
  const around: [number, number][] = [];
  run.json(0, 1, { pushView: (_, from, to) => around.push([from, to]) });
  run.json(2, 3, { pushView: (_, from, to) => around.push([from, to]) });
  equal(around[0]![0], from);
  equal(around[1]![1], to);
  ok(around[0]![1] < around[1]![0]);
});

Deno.test("every stretch of a run is the bytes its events have one by one", () => {
  const arenas = new Arenas();
  const decoder = new TextDecoder();
  const mixed = ["你好", "two\nlines", "👍🏽 e\u0301", "x".repeat(3000), "plain"];
  const ascii = ["plain", "two\nlines", "x".repeat(3000)];
  // Small runs go into the shared buffers, large ones into their own; ASCII or not.
  const cases: [number, string[], string][] = [];
  for (const count of [5, 40]) {
    for (const texts of [mixed, ascii]) cases.push([count, texts, "小明"], [count, texts, "bob"]);
  }
  for (const [count, texts, sender] of cases) {
    const items = Array.from({ length: count }, (_, seq) =>
      new Outbound({
        type: "message",
        room: "#lobby",
        from: sender,
        text: texts[seq % texts.length]!,
        ts: "2026-01-01T00:00:00.000Z",
        seq,
        ...(seq % 3 === 0 ? { action: true } : {}),
      }));
    const run = new OutboundRun(items, arenas);
    const read = (
      hand: (sink: { pushView: (b: Uint8Array, f: number, t: number) => void }) => void,
    ) => {
      const parts: string[] = [];
      hand({ pushView: (base, from, to) => parts.push(decoder.decode(base.subarray(from, to))) });
      return parts.join("");
    };
    const each = (bytes: (item: Outbound) => Uint8Array | null, from: number, to: number) =>
      items.slice(from, to).map((item) => decoder.decode(bytes(item) ?? new Uint8Array())).join("");
    for (const [from, to] of [[0, count], [0, 1], [1, count - 1], [count - 1, count]] as const) {
      equal(read((sink) => run.json(from, to, sink)), each((item) => item.json, from, to));
      equal(
        read((sink) => run.text("#lobby", from, to, sink)),
        each((item) => item.text("#lobby"), from, to),
      );
      equal(
        read((sink) => run.text("#other", from, to, sink)),
        each((item) => item.text("#other"), from, to),
      );
      for (const variant of [0, 1, 2, 3]) {
        equal(
          read((sink) => run.irc(variant, from, to, sink)),
          each((item) => item.irc(variant), from, to),
        );
      }
    }
  }
});

Deno.test("a sender waits while its readers catch up, and nothing is lost", async () => {
  await using server = await serve({
    ...unthrottled,
    maxQueuedBytes: 256 * 1024,
    maxSendQueueBytes: 256 * 1024 * 1024,
  });
  const { port } = server.addr;
  await using reader = await RawPeer.connect(port);
  await reader.send({ type: "hello", id: 1, v: 1, name: "reader" });
  await reader.frame("welcome");
  await using sender = await RawPeer.connect(port);
  await sender.send({ type: "hello", id: 1, v: 1, name: "sender" });
  await sender.frame("welcome");
  // The reader reads nothing until the server has stopped reading the sender.
  const count = 4000;
  const text = "m".repeat(4000);
  const lines = Array.from(
    { length: count },
    (_, i) => JSON.stringify({ type: "send", id: i + 2, room: "#lobby", text: `${i} ${text}` }),
  ).join("\n") + "\n";
  const writing = sender.write(lines);
  let acks = 0;
  const counting = (async () => {
    while (acks < count) {
      const line = await sender.line();
      if (line === null) return;
      if (line.startsWith('{"type":"ack"')) acks++;
    }
  })();
  const deadline = Date.now() + 20_000;
  while (!server.queued.paused) {
    ok(Date.now() < deadline, "the server never stopped reading");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const ackedWhilePaused = acks;
  ok(ackedWhilePaused < count, "the server stopped reading before the last request");
  // Now the reader catches up: everything arrives, in order, and every send is answered.
  let next = 0;
  while (next < count) {
    const line = await reader.line();
    if (line === null) throw new Error("reader disconnected");
    if (!line.startsWith('{"type":"message"')) continue;
    const frame = JSON.parse(line);
    equal(frame.text.slice(0, frame.text.indexOf(" ")), String(next));
    next++;
  }
  await writing;
  await counting;
  equal(acks, count);
  equal(server.users, 2);
});

Deno.test("a reader that stops cannot hold a room back while reading is stopped", async () => {
  await using server = await serve({
    ...unthrottled,
    maxQueuedBytes: 256 * 1024,
    maxSendQueueBytes: 256 * 1024 * 1024,
  });
  const { port } = server.addr;
  await using bob = await connect({ port, name: "bob" });
  await using stuck = await RawPeer.connect(port);
  await stuck.send({ type: "hello", id: 1, v: 1, name: "stuck" });
  await stuck.frame("welcome");
  await using alice = await connect({ port, name: "alice" });
  // stuck never reads again; the others go on, and the server gives up on it.
  const text = "y".repeat(7000);
  let sent = 0;
  while (server.users === 3 && sent < 5000) {
    await alice.send(text);
    sent++;
  }
  equal(server.users, 2);
  let received = 0;
  let leave: string | undefined;
  while (received < sent || leave === undefined) {
    const event = await bob.next(undefined, { timeout: 5000 });
    if (event.type === "message") received++;
    if (event.type === "leave") leave = `${event.name} ${event.reason}`;
  }
  equal(received, sent);
  equal(leave, "stuck send_queue_exceeded");
});
