/**
 * Nodes as `chat serve` processes sharing a real PostgreSQL, behind HAProxy
 * in TCP mode: a node killed with SIGKILL mid-burst loses nothing that was
 * acknowledged, its clients go on on the other node with no gap and no
 * duplicate, and its users who do not come back are shown as lost.
 *
 * @module
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { type ChatClient, type ChatEvent, connect } from "../mod.ts";
import { type ChatProcess, startServer } from "./_cli.ts";
import { PG_BIN, PG_MISSING, startPostgres } from "./_postgres.ts";
import { freePort } from "./_helpers.ts";
import { HAPROXY, HAPROXY_MISSING, startHaproxy } from "./_haproxy.ts";

const MISSING = PG_MISSING !== "" ? PG_MISSING : HAPROXY_MISSING;

/**
 * The HAProxy configuration the README shows: TCP mode, round robin, quick
 * health checks, and a connection to a dead node sent to another.
 */
export function haproxyConfig(port: number, nodes: readonly number[]): string {
  return [
    "global",
    "  maxconn 1000",
    "defaults",
    "  mode tcp",
    "  timeout connect 2s",
    "  timeout client 1h",
    "  timeout server 1h",
    "  retries 2",
    "  option redispatch",
    "frontend chat",
    `  bind 127.0.0.1:${port}`,
    "  default_backend nodes",
    "backend nodes",
    "  balance roundrobin",
    ...nodes.map((node, i) =>
      `  server node${
        i + 1
      } 127.0.0.1:${node} check inter 500 fall 1 rise 2 on-marked-down shutdown-sessions`
    ),
    "",
  ].join("\n");
}

async function startProxy(dir: string, port: number, nodes: number[]) {
  const config = join(dir, "haproxy.cfg");
  await Deno.writeTextFile(config, haproxyConfig(port, nodes));
  return await startHaproxy(config, port);
}

async function node(
  url: string,
  ...args: string[]
): Promise<{ server: ChatProcess; port: number }> {
  return await startServer(
    "--data",
    url,
    "--rate-limit",
    "100000",
    "--rate-burst",
    "100000",
    "--resume-grace",
    "3000",
    "--history",
    "0",
    ...args,
  );
}

/** Wakes whoever waits for the next event of any recorded client. */
let changed = Promise.withResolvers<void>();

/** Every room message a client receives, from now on, in arrival order. */
function record(client: ChatClient): { seqs: number[]; events: ChatEvent[]; done: Promise<void> } {
  const seqs: number[] = [];
  const events: ChatEvent[] = [];
  const done = (async () => {
    for await (const event of client) {
      events.push(event);
      if (event.type === "message" && event.room === "#lobby") seqs.push(event.seq);
      changed.resolve();
      changed = Promise.withResolvers<void>();
    }
  })();
  return { seqs, events, done };
}

/** Waits until `check` holds, looking again at each event, for a bounded time. */
async function eventually(check: () => boolean, what: string, ms = 60_000): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out waiting for ${what}`)), ms);
  });
  try {
    while (!check()) await Promise.race([changed.promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test({
  name:
    `a node killed mid-burst behind HAProxy loses nothing; its clients resume elsewhere${MISSING}`,
  ignore: PG_BIN === undefined || HAPROXY === undefined,
  async fn() {
    await using pg = await startPostgres();
    const dir = await Deno.makeTempDir({ prefix: "chat-haproxy-" });
    try {
      const started = await node(pg.url, "--node", "a");
      await using a = started.server;
      const aPort = started.port;
      const b = await node(pg.url, "--node", "b");
      await using _b = b.server;
      const proxyPort = freePort();
      await using _proxy = await startProxy(dir, proxyPort, [aPort, b.port]);

      const names = ["ann", "ben", "cat", "dan"];
      const clients: ChatClient[] = [];
      for (const name of names) {
        clients.push(
          await connect({
            port: proxyPort,
            name,
            history: 0,
            reconnect: { minDelay: 100, maxDelay: 500 },
          }),
        );
      }
      // Someone on node a who never comes back: shown as lost on b once the grace runs out.
      await using lou = await connect({ port: aPort, name: "lou", history: 0 });
      // Someone who knows both addresses, on a first: goes on on b.
      await using val = await connect({
        port: aPort,
        servers: [{ hostname: "127.0.0.1", port: b.port }],
        name: "val",
        history: 0,
        reconnect: { minDelay: 100, maxDelay: 500 },
      });
      // A watcher on node b, directly.
      await using wes = await connect({ port: b.port, name: "wes", history: 0 });
      const watched = record(wes);
      const records = clients.map(record);
      const valSees = record(val);

      const PER_CLIENT = 300;
      let acked = 0;
      const killed = Promise.withResolvers<void>();
      const sends: Promise<{ seq: number }>[] = [];
      for (let i = 0; i < PER_CLIENT; i++) {
        for (const client of clients) {
          sends.push(
            client.send(`${client.name}-${i}`).then((sent) => {
              if (++acked === 200) killed.resolve();
              return sent;
            }),
          );
        }
      }
      await killed.promise;
      a.kill("SIGKILL");
      const results = await Promise.all(sends);
      const total = names.length * PER_CLIENT;
      equal(results.length, total);
      // Each message has one number; together they are 1..total.
      deepEqual(
        results.map((r) => r.seq).sort((x, y) => x - y),
        Array.from({ length: total }, (_, i) => i + 1),
        "every send stored once, no gap",
      );
      // Every client sees every message of the others once, in order (its own are acks).
      await eventually(
        () => records.every((r) => r.seqs.length >= total - PER_CLIENT),
        "every client to see the others' messages",
      );
      records.forEach((r, i) => {
        const own = new Set(results.filter((_, j) => j % names.length === i).map((x) => x.seq));
        const all = [...r.seqs, ...own].sort((x, y) => x - y);
        ok(r.seqs.every((seq, k) => k === 0 || seq > r.seqs[k - 1]!), `${names[i]}: in order`);
        deepEqual(all, Array.from({ length: total }, (_, k) => k + 1), `${names[i]}: no gap`);
      });
      await eventually(() => watched.seqs.length === total, "the watcher to see every message");
      deepEqual(watched.seqs, Array.from({ length: total }, (_, k) => k + 1));
      // lou never came back: lost, not quit.
      await eventually(
        () =>
          watched.events.some((e) => e.type === "leave" && e.name === "lou" && e.reason === "lost"),
        "lou to be shown as lost",
      );
      await eventually(() => valSees.seqs.length === total, "val to see every message");
      deepEqual(valSees.seqs, Array.from({ length: total }, (_, k) => k + 1), "val: no gap");
      ok(valSees.events.some((e) => e.type === "reconnected"), "val reconnected");
      deepEqual((await wes.who()).sort(), [...names, "val", "wes"].sort());
      void lou;
      for (const client of clients) await client.close();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: `files go whole through HAProxy, whichever nodes the connections reach${MISSING}`,
  ignore: PG_BIN === undefined || HAPROXY === undefined,
  async fn() {
    await using pg = await startPostgres();
    const dir = await Deno.makeTempDir({ prefix: "chat-haproxy-files-" });
    try {
      const a = await node(pg.url, "--node", "a");
      await using _a = a.server;
      const b = await node(pg.url, "--node", "b");
      await using _b = b.server;
      const proxyPort = freePort();
      await using _proxy = await startProxy(dir, proxyPort, [a.port, b.port]);
      await using ann = await connect({ port: proxyPort, name: "ann", history: 0 });
      const bobJoins = ann.next("join", { timeout: 20_000 });
      await using bob = await connect({ port: proxyPort, name: "bob", history: 0 });
      equal((await bobJoins).name, "bob");
      // Round robin: the control and data connections of each side spread over both nodes.
      for (let i = 0; i < 4; i++) {
        const bytes = new Uint8Array(3 * 1024 * 1024 + i);
        for (let at = 0; at < bytes.length; at += 65536) {
          crypto.getRandomValues(bytes.subarray(at, at + 65536));
        }
        const sending = ann.sendFile("bob", bytes, { name: `f${i}.bin` });
        sending.catch(() => {});
        const offer = await bob.next("offer", { timeout: 20_000 });
        const received = await offer.accept({ dir });
        const sent = await sending;
        equal(received.sha256, sent.sha256);
        equal((await Deno.stat(received.path)).size, bytes.length);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
