/**
 * Several servers sharing one PostgreSQL: a real database, started once for
 * this file, and nodes in this process.
 *
 * @module
 */

import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import {
  type ChatClient,
  type ChatEvent,
  type ChatServer,
  connect,
  createIdentity,
  serve,
} from "../mod.ts";
import { unthrottled } from "./_helpers.ts";
import { runChat } from "./_cli.ts";
import { RawPeer } from "./_raw.ts";
import { PG_SCHEMA_VERSION, PostgresStorage } from "../_server/postgres.ts";
import { postgres } from "../_server/_deps_postgres.ts";
import { PG_BIN, PG_MISSING, startPostgres } from "./_postgres.ts";

/** Waits for the first event that matches, within a generous bound. */
async function until<T extends ChatEvent>(
  client: ChatClient,
  test: (event: ChatEvent) => event is T,
  what: string,
): Promise<T> {
  const signal = AbortSignal.timeout(20_000);
  for (;;) {
    const event = await client.next(undefined, { signal }).catch(() => undefined);
    if (event === undefined) throw new Error(`No ${what} for ${client.name}`);
    if (test(event)) return event;
  }
}

/** Collects `count` room messages for a client, in arrival order. */
async function messages(client: ChatClient, count: number, room = "#lobby") {
  const seen: { seq: number; text: string; from: string }[] = [];
  while (seen.length < count) {
    const event = await until(
      client,
      (e): e is Extract<ChatEvent, { type: "message" }> => e.type === "message" && e.room === room,
      `message ${seen.length + 1} of ${count}`,
    );
    seen.push({ seq: event.seq, text: event.text, from: event.from });
  }
  return seen;
}

/** Matches the join of someone to a room. */
function isJoin(name: string, room: string) {
  return (e: ChatEvent): e is Extract<ChatEvent, { type: "join" }> =>
    e.type === "join" && e.name === name && e.room === room;
}

function node(url: string, extra: Record<string, unknown> = {}): Promise<ChatServer> {
  return serve({ ...unthrottled, data: url, historyOnJoin: 0, ...extra });
}

Deno.test({
  name: `several servers share one PostgreSQL${PG_MISSING}`,
  ignore: PG_BIN === undefined,
  async fn(t) {
    await using pg = await startPostgres();

    await t.step("the schema is created, versioned, and a key is stored once", async () => {
      const url = await pg.database("schema");
      const one = await PostgresStorage.open(url, { node: "one" });
      const two = await PostgresStorage.open(url, { node: "two" });
      try {
        const message = {
          room: "#lobby",
          seq: 0,
          from: "ann",
          text: "hi",
          ts: new Date().toISOString(),
          action: false,
          key: "ann:k1",
        };
        const first = await one.append([message, { ...message, key: undefined, text: "two" }]);
        deepEqual(first.map((c) => c.seq), [1, 2]);
        const again = await two.append([message]);
        deepEqual(again, [{ seq: 1, ts: message.ts, duplicate: true }]);
        equal(await two.lastSeq("#lobby"), 2);
        deepEqual((await one.after("#lobby", 0, 10, false)).map((m) => m.text), ["hi", "two"]);
        // Search, with LIKE's wildcards taken literally.
        await one.append([
          { ...message, key: undefined, text: "50% off_now" },
          { ...message, key: undefined, text: "500 offers" },
        ]);
        const range = { from: 0, before: Number.MAX_SAFE_INTEGER };
        deepEqual((await two.search("#lobby", "0% off_", range, 10)).map((m) => m.text), [
          "50% off_now",
        ]);
        deepEqual((await two.search("#lobby", "o", range, 2)).map((m) => m.seq), [3, 4]);
      } finally {
        await one.close();
        await two.close();
      }
      const sql = postgres(url, { onnotice: () => {} });
      try {
        const [row] = await sql<{ version: number }[]>`SELECT version FROM schema_version`;
        equal(row?.version, PG_SCHEMA_VERSION);
      } finally {
        await sql.end();
      }
    });

    await t.step("messages sent on either node reach both, in seq order", async () => {
      const url = await pg.database("both_ways");
      await using a = await node(url);
      await using b = await node(url);
      await using ann = await connect({ port: a.addr.port, name: "ann", history: 0 });
      await using bob = await connect({ port: b.addr.port, name: "bob", history: 0 });
      const annSees = messages(ann, 100);
      const bobSees = messages(bob, 100);
      const sends: Promise<{ seq: number }>[] = [];
      for (let i = 0; i < 100; i++) {
        sends.push(ann.send(`a${i}`), bob.send(`b${i}`));
      }
      const acks = await Promise.all(sends);
      deepEqual(acks.map((ack) => ack.seq).sort((x, y) => x - y), range(200), "one number each");
      const byAnn = await annSees;
      const byBob = await bobSees;
      deepEqual(byAnn.map((m) => m.text), Array.from({ length: 100 }, (_, i) => `b${i}`));
      deepEqual(byBob.map((m) => m.text), Array.from({ length: 100 }, (_, i) => `a${i}`));
      ok(byAnn.every((m, i) => i === 0 || m.seq > byAnn[i - 1]!.seq), "in seq order on a");
      ok(byBob.every((m, i) => i === 0 || m.seq > byBob[i - 1]!.seq), "in seq order on b");
      deepEqual(
        [...byAnn.map((m) => m.seq), ...acks.filter((_, i) => i % 2 === 0).map((a) => a.seq)]
          .sort((x, y) => x - y),
        range(200),
        "ann saw every number once",
      );
    });

    await t.step("a notice reaches the other node, and history, as a notice", async () => {
      const url = await pg.database("notices");
      await using a = await node(url);
      await using b = await node(url);
      await using ann = await connect({ port: a.addr.port, name: "ann", history: 0 });
      await using bob = await connect({ port: b.addr.port, name: "bob", history: 0 });
      const isMessage = (e: ChatEvent): e is Extract<ChatEvent, { type: "message" }> =>
        e.type === "message";
      const bobSees = until(bob, isMessage, "notice");
      await ann.send("build passed", { notice: true });
      const seen = await bobSees;
      equal(seen.text, "build passed");
      equal(seen.notice, true);
      const bobSeesPlain = until(bob, isMessage, "message");
      await ann.send("plain");
      equal((await bobSeesPlain).notice, undefined);
      for (const client of [ann, bob]) {
        deepEqual((await client.history("#lobby")).map((m) => [m.text, m.notice]), [
          ["build passed", true],
          ["plain", undefined],
        ]);
      }
    });

    await t.step("who, joins, leaves, names, topics and DMs span the nodes", async () => {
      const url = await pg.database("presence");
      await using a = await node(url);
      await using b = await node(url);
      await using ann = await connect({ port: a.addr.port, name: "ann", history: 0 });
      const bobJoins = until(
        ann,
        (e): e is Extract<ChatEvent, { type: "join" }> => e.type === "join" && e.name === "bob",
        "join of bob",
      );
      await using bob = await connect({ port: b.addr.port, name: "bob", history: 0 });
      await bobJoins;
      // A word from ann reaching bob shows node b has heard all that node a told before it.
      const sync = until(
        bob,
        (e): e is Extract<ChatEvent, { type: "dm" }> => e.type === "dm" && e.text === "sync",
        "dm",
      );
      await ann.dm("bob", "sync");
      await sync;
      deepEqual(await ann.who(), ["ann", "bob"]);
      deepEqual(await bob.who(), ["ann", "bob"]);
      // A name taken on one node is taken on the other, and so is one that looks like it.
      await rejects(connect({ port: a.addr.port, name: "bob", history: 0 }), /taken/);
      await rejects(connect({ port: b.addr.port, name: "Ann", history: 0 }), /taken/);
      // Joins, topics and leaves of another room.
      await ann.join("#dev");
      const bobSeesJoin = until(
        ann,
        (e): e is Extract<ChatEvent, { type: "join" }> => e.type === "join" && e.room === "#dev",
        "join of #dev",
      );
      await bob.join("#dev");
      await bobSeesJoin;
      const topic = until(
        bob,
        (e): e is Extract<ChatEvent, { type: "topic" }> => e.type === "topic",
        "topic",
      );
      await ann.topic("#dev", "cluster talk");
      equal((await topic).topic, "cluster talk");
      deepEqual(
        (await bob.rooms()).map((r) => [r.name, r.members]),
        [["#dev", 2], ["#lobby", 2]],
      );
      const dm = until(bob, (e): e is Extract<ChatEvent, { type: "dm" }> => e.type === "dm", "dm");
      await ann.dm("bob", "psst");
      equal((await dm).text, "psst");
      const nick = until(
        ann,
        (e): e is Extract<ChatEvent, { type: "nick" }> => e.type === "nick",
        "nick",
      );
      await bob.nick("robert");
      equal((await nick).to, "robert");
      deepEqual(await ann.who({ room: "#dev" }), ["ann", "robert"]);
      const left = until(
        ann,
        (e): e is Extract<ChatEvent, { type: "leave" }> => e.type === "leave" && e.room === "#dev",
        "leave",
      );
      await bob.leave("#dev");
      equal((await left).name, "robert");
      const quit = until(
        bob,
        (e): e is Extract<ChatEvent, { type: "leave" }> => e.type === "leave" && e.name === "ann",
        "quit",
      );
      await ann.close();
      equal((await quit).reason, "quit");
      deepEqual(await bob.who(), ["robert"]);
    });

    await t.step(
      "away changes reach the other node, and show in who, whois and answers",
      async () => {
        const url = await pg.database("away");
        await using a = await node(url);
        await using b = await node(url);
        await using ann = await connect({ port: a.addr.port, name: "ann", history: 0 });
        const bobJoins = until(ann, isJoin("bob", "#lobby"), "join of bob");
        await using bob = await connect({ port: b.addr.port, name: "bob", history: 0 });
        await bobJoins;
        const isAway = (e: ChatEvent): e is Extract<ChatEvent, { type: "away" }> =>
          e.type === "away";
        const gone = until(bob, isAway, "away");
        await ann.away("lunch");
        deepEqual([(await gone).name, (await gone).message], ["ann", "lunch"]);
        equal((await bob.whois("ann")).away, "lunch");
        deepEqual((await bob.roster()).away, { ann: "lunch" });
        equal((await bob.dm("ann", "there?")).away, "lunch");
        const back = until(bob, isAway, "back");
        await ann.away("");
        equal((await back).message, "");
        equal((await bob.whois("ann")).away, undefined);
        deepEqual((await bob.roster()).away, {});
        equal((await bob.dm("ann", "now?")).away, undefined);
      },
    );

    await t.step("a room's operator, topic lock and kicks hold on every node", async () => {
      const url = await pg.database("room_ops");
      await using a = await node(url);
      await using b = await node(url);
      await using ann = await connect({ port: a.addr.port, name: "ann", history: 0 });
      const bobJoins = until(ann, isJoin("bob", "#lobby"), "join of bob");
      await using bob = await connect({ port: b.addr.port, name: "bob", history: 0 });
      await bobJoins;
      /** A word from ann to someone: what node a told before it has reached their node. */
      const heard = async (client: ChatClient) => {
        const dm = until(
          client,
          (e): e is Extract<ChatEvent, { type: "dm" }> => e.type === "dm",
          "dm",
        );
        await ann.dm(client.name, "news");
        await dm;
      };
      // ann creates #ops on node a: she is its operator on node b too.
      await ann.join("#ops");
      await heard(bob);
      const bobInOps = until(ann, isJoin("bob", "#ops"), "join of bob to #ops");
      await bob.join("#ops");
      equal((await bobInOps).op, undefined);
      deepEqual((await bob.roster({ room: "#ops" })).ops, ["ann"]);
      deepEqual((await ann.roster({ room: "#ops" })).ops, ["ann"]);
      await rejects(bob.lockTopic("#ops", true), /Only the operators/);
      await rejects(bob.kick("ann", undefined, { room: "#ops" }), /Only the operators/);
      // Her topic lock holds on node b.
      equal(await ann.lockTopic("#ops", true), true);
      await heard(bob);
      await rejects(bob.topic("#ops", "mine"), /Only the operators/);
      // Her kick of someone on node b shows there, and on node a, as a kick.
      const isLeave = (e: ChatEvent): e is Extract<ChatEvent, { type: "leave" }> =>
        e.type === "leave" && e.room === "#ops";
      const bobSees = until(bob, isLeave, "kick seen by bob");
      const annSees = until(ann, isLeave, "kick seen by ann");
      await ann.kick("bob", "off topic", { room: "#ops" });
      for (const leave of [await bobSees, await annSees]) {
        deepEqual([leave.name, leave.reason, leave.by, leave.message], [
          "bob",
          "kicked",
          "ann",
          "off topic",
        ]);
      }
      deepEqual(await ann.who({ room: "#ops" }), ["ann"]);
      deepEqual(await bob.who({ room: "#ops" }).catch(() => "not in room"), "not in room");
      // Node b has no one in #ops now: one who joins it there learns its lock from node a.
      await using cat = await connect({ port: b.addr.port, name: "cat", history: 0 });
      const catInOps = until(ann, isJoin("cat", "#ops"), "join of cat to #ops");
      await cat.join("#ops");
      await catInOps;
      await heard(cat);
      await rejects(cat.topic("#ops", "mine"), /Only the operators/);
      deepEqual((await cat.roster({ room: "#ops" })).ops, ["ann"]);
    });

    await t.step("kick, ban and mute by an operator on one node apply on the other", async () => {
      const url = await pg.database("moderation");
      const op = await createIdentity();
      const ops = { operators: [op.fingerprint] };
      await using a = await node(url, ops);
      await using b = await node(url, ops);
      await using boss = await connect({
        port: a.addr.port,
        name: "boss",
        history: 0,
        identity: op,
      });
      // Node a knows them all (it heard their joins) before its operator acts.
      const joined = new Set<string>();
      const allJoined = until(
        boss,
        (e): e is Extract<ChatEvent, { type: "join" }> =>
          e.type === "join" && joined.add(e.name).size === 3,
        "joins of kim, mo and ray",
      );
      await using kim = await connect({ port: b.addr.port, name: "kim", history: 0 });
      await using mo = await connect({ port: b.addr.port, name: "mo", history: 0 });
      await using ray = await connect({ port: b.addr.port, name: "ray", history: 0 });
      await allJoined;
      const kimBye = until(
        kim,
        (e): e is Extract<ChatEvent, { type: "bye" }> => e.type === "bye",
        "bye",
      );
      await boss.kick("kim", "enough");
      equal((await kimBye).reason, "kicked");
      await boss.mute("mo", { duration: 600 });
      // The other node reads the new mute when told: mo's next message is refused there.
      await eventuallyRefused(() => mo.send("still talking"), "muted");
      const rayBye = until(
        ray,
        (e): e is Extract<ChatEvent, { type: "bye" }> => e.type === "bye",
        "bye",
      );
      await boss.ban("ray");
      equal((await rayBye).reason, "banned");
      await rejects(connect({ port: b.addr.port, name: "ray", history: 0 }), /banned/);
    });

    await t.step("a node whose operators differ from another's says so", async () => {
      const url = await pg.database("operators");
      const op = await createIdentity();
      const lines: string[] = [];
      await using _a = await node(url, { operators: [op.fingerprint] });
      await using _same = await node(url, {
        operators: [op.fingerprint],
        onLog: (line: string) => lines.push(line),
      });
      equal(lines.filter((line) => /operators/.test(line)).length, 0, lines.join("\n"));
      await using _b = await node(url, { onLog: (line: string) => lines.push(line) });
      ok(
        lines.some((line) =>
          /differ from this node's: give every node the same --op list/.test(line)
        ),
        lines.join("\n"),
      );
    });

    await t.step("a node that stops hands its users over to another, unnoticed", async () => {
      const url = await pg.database("handover");
      await using a = await node(url);
      await using b = await node(url);
      await using bob = await connect({ port: b.addr.port, name: "bob", history: 0 });
      await using ann = await connect({
        port: a.addr.port,
        servers: [{ hostname: "127.0.0.1", port: b.addr.port }],
        name: "ann",
        history: 0,
        reconnect: { minDelay: 50, maxDelay: 200 },
      });
      await ann.join("#dev");
      await ann.away("busy");
      // A word from ann reaching bob shows node b has heard all that node a told before it.
      const sync = until(
        bob,
        (e): e is Extract<ChatEvent, { type: "dm" }> => e.type === "dm",
        "dm",
      );
      await ann.dm("bob", "sync");
      await sync;
      await bob.join("#dev");
      const back = until(
        ann,
        (e): e is Extract<ChatEvent, { type: "reconnected" }> => e.type === "reconnected",
        "reconnected",
      );
      await a.close();
      equal((await back).resumed, true);
      // Still ann, still in #dev (its operator), still away, on node b; bob saw no one leave.
      deepEqual(await bob.roster({ room: "#dev" }), {
        room: "#dev",
        names: ["ann", "bob"],
        away: { ann: "busy" },
        ops: ["ann"],
      });
      const heard = until(
        bob,
        (e): e is Extract<ChatEvent, { type: "message" | "leave" }> =>
          (e.type === "message" && e.room === "#dev") || e.type === "leave",
        "a message in #dev",
      );
      await ann.send("still here", { room: "#dev" });
      const first = await heard;
      equal(first.type, "message", "no leave before the message");
    });

    await t.step(
      "private messages kept for a reconnect outlive the node that kept them",
      async () => {
        const url = await pg.database("held_dms");
        await using a = await node(url);
        await using b = await node(url);
        await using bob = await connect({ port: b.addr.port, name: "bob", history: 0 });
        const lost = await RawPeer.connect(a.addr.port);
        await lost.send({ type: "hello", id: 1, v: 1, name: "ann", reconnect: true });
        const token = (await lost.frame("welcome")).session;
        lost.close();
        // Node a holds ann for a reconnect, and keeps what is sent to her meanwhile.
        await found(
          url,
          `SELECT 1 FROM chat_presence WHERE name = 'ann' AND held_until IS NOT NULL`,
        );
        await bob.dm("ann", "while you were away");
        await bob.dm("ann", "and this too");
        await found(url, `SELECT 1 FROM chat_held_dms HAVING count(*) = 2`);
        await a.close();
        // Node a is gone: what is sent to her now is kept by the sender's node.
        await bob.dm("ann", "after your node stopped");
        // She comes back on node b: the messages are there.
        await using back = await RawPeer.connect(b.addr.port);
        await back.send({
          type: "hello",
          id: 1,
          v: 1,
          name: "ann",
          resume: token,
          reconnect: true,
        });
        equal((await back.frame("welcome")).resumed, true);
        equal((await back.frame("dm")).text, "while you were away");
        equal((await back.frame("dm")).text, "and this too");
        equal((await back.frame("dm")).text, "after your node stopped");
        await found(url, `SELECT 1 FROM chat_held_dms HAVING count(*) = 0`);
      },
    );

    await t.step(
      "while the database is away sends are refused, then the nodes recover",
      async () => {
        const url = await pg.database("restart");
        await using a = await node(url);
        await using b = await node(url);
        await using ann = await connect({ port: a.addr.port, name: "ann", history: 0 });
        await using bob = await connect({ port: b.addr.port, name: "bob", history: 0 });
        const before = await ann.send("before");
        await pg.stop();
        try {
          const refused = await ann.send("during").then(() => undefined, (error) => error);
          equal((refused as { code?: string })?.code, "storage_failed");
        } finally {
          await pg.start();
        }
        // The nodes reconnect by themselves: a send goes through again within a bounded time.
        let after: { seq: number } | undefined;
        const deadline = Date.now() + 30_000;
        while (after === undefined) {
          after = await ann.send("after").catch((error) => {
            if (Date.now() > deadline) throw error;
            return new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 200));
          });
        }
        // Bob, on the other node, hears it (woken by a notification again, or by the poll).
        const heard = await messages(bob, 2);
        deepEqual(heard.map((m) => m.text), ["before", "after"]);
        equal(heard[1]!.seq, after.seq);
        equal(after.seq, before.seq + 1, "the refused send stored nothing");
        const history = await bob.history("#lobby", { after: 0 });
        deepEqual(history.map((m) => m.text), ["before", "after"]);
      },
    );
  },
});

/** Waits until a query finds a row, within a bounded time. */
async function found(url: string, query: string): Promise<void> {
  const sql = postgres(url, { onnotice: () => {} });
  try {
    const deadline = Date.now() + 20_000;
    while ((await sql.unsafe(query)).length === 0) {
      if (Date.now() > deadline) throw new Error(`Nothing found by "${query}"`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    await sql.end();
  }
}

/** Tries an action until it is refused with `code`, within a bounded time. */
async function eventuallyRefused(action: () => Promise<unknown>, code: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const error = await action().then(() => undefined, (error) => error);
    if ((error as { code?: string } | undefined)?.code === code) return;
    if (Date.now() > deadline) throw new Error(`Never refused with "${code}"`);
  }
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}

void equal;

Deno.test("chat send tries the next address of a chat when one cannot be reached", async () => {
  await using server = await serve(unthrottled);
  await using reader = await connect({ port: server.addr.port, name: "reader", history: 0 });
  // A port nobody listens on: refused at once.
  const dead = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = (dead.addr as Deno.NetAddr).port;
  dead.close();
  const heard = reader.next("message", { timeout: 20_000 });
  const result = await runChat([
    "send",
    `127.0.0.1:${deadPort},127.0.0.1:${server.addr.port}`,
    "--name",
    "sender",
    "--no-key",
    "over the second address",
  ]);
  equal(result.code, 0, result.stderr);
  equal((await heard).text, "over the second address");
});
