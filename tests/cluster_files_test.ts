/**
 * Files between people on different nodes, relayed through a real
 * PostgreSQL: whole files, refusals and cancellations, room offers, and a
 * node that stops in the middle of a transfer.
 *
 * @module
 */

import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { type ChatClient, type ChatServer, connect, type ProtocolError, serve } from "../mod.ts";
import { postgres } from "../_server/_deps_postgres.ts";
import { randomBytes, settle, sha256, unthrottled } from "./_helpers.ts";
import { startServer } from "./_cli.ts";
import { RawPeer } from "./_raw.ts";
import { PG_BIN, PG_MISSING, startPostgres } from "./_postgres.ts";

function node(url: string, extra: Record<string, unknown> = {}): Promise<ChatServer> {
  return serve({ ...unthrottled, data: url, historyOnJoin: 0, ...extra });
}

/** How many chunks of files wait in the database. */
async function chunksLeft(url: string): Promise<number> {
  const sql = postgres(url, { onnotice: () => {} });
  try {
    const [row] = await sql<{ count: string }[]>`SELECT count(*) FROM chat_transfer_chunks`;
    return Number(row!.count);
  } finally {
    await sql.end();
  }
}

/** Two nodes, ann on the first and bob on the second, and a folder for what arrives. */
async function twoNodes(url: string, extra: Record<string, unknown> = {}) {
  const a = await node(url, extra);
  const b = await node(url, extra);
  const ann = await connect({ port: a.addr.port, name: "ann", history: 0 });
  const bobJoins = ann.next("join", { timeout: 20_000 });
  const bob = await connect({ port: b.addr.port, name: "bob", history: 0 });
  await bobJoins;
  const dir = await Deno.makeTempDir();
  return {
    a,
    b,
    ann,
    bob,
    dir,
    async [Symbol.asyncDispose]() {
      await ann.close();
      await bob.close();
      await a.close();
      await b.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test({
  name: `files go between people on different nodes${PG_MISSING}`,
  ignore: PG_BIN === undefined,
  async fn(t) {
    await using pg = await startPostgres();

    await t.step("a file sent on one node arrives whole on the other", async () => {
      const url = await pg.database("files_whole");
      await using chat = await twoNodes(url);
      // Larger than the chunks the database may hold at once for one transfer.
      for (const bytes of [new Uint8Array(0), randomBytes(5 * 1024 * 1024 + 7)]) {
        const sending = settle(chat.ann.sendFile("bob", bytes, { name: "photo.bin" }));
        const offer = await chat.bob.next("offer", { timeout: 20_000 });
        equal(offer.from, "ann");
        equal(offer.size, bytes.length);
        const received = await offer.accept({ dir: chat.dir });
        const sent = await sending;
        equal(received.sha256, sha256(bytes));
        equal(sha256(await Deno.readFile(received.path)), sha256(bytes));
        equal(sent.sha256, received.sha256);
        await Deno.remove(received.path);
      }
      // And the other way.
      const back = randomBytes(300_000);
      const sending = settle(chat.bob.sendFile("ann", back, { name: "back.bin" }));
      const received = await (await chat.ann.next("offer", { timeout: 20_000 })).accept({
        dir: chat.dir,
      });
      await sending;
      equal(received.sha256, sha256(back));
      equal(await chunksLeft(url), 0, "every chunk is removed once delivered");
    });

    await t.step("declined, refused and cancelled across nodes", async () => {
      const url = await pg.database("files_refused");
      await using chat = await twoNodes(url, { maxFileBytes: 64 * 1024 * 1024 });
      const declined = settle(chat.ann.sendFile("bob", new Uint8Array(10), { name: "no.txt" }));
      await (await chat.bob.next("offer", { timeout: 20_000 })).decline();
      await rejects(declined, /bob declined "no.txt"/);
      // The limits of the sender's node apply.
      await rejects(
        () => chat.ann.sendFile("bob", new Uint8Array(65 * 1024 * 1024), { name: "big" }),
        (error: ProtocolError) => error.code === "transfer_refused",
      );
      await rejects(
        () => chat.ann.sendFile("nobody", new Uint8Array(1), { name: "x" }),
        (error: ProtocolError) => error.code === "no_such_user",
      );
      // Someone on the other node in plain text cannot take files, and the sender learns it.
      await using ned = await RawPeer.connect(chat.b.addr.port);
      const nedJoins = chat.ann.next("join", { timeout: 20_000 });
      await ned.write("ned\n");
      equal((await nedJoins).name, "ned");
      await rejects(
        () => chat.ann.sendFile("ned", new Uint8Array(1), { name: "x" }),
        /ned uses a plain-text connection/,
      );
      // The receiver cancels in the middle.
      const big = randomBytes(32 * 1024 * 1024);
      const sending = settle(chat.ann.sendFile("bob", big, { name: "big.bin" }));
      const offer = await chat.bob.next("offer", { timeout: 20_000 });
      let cancelled = false;
      const receiving = settle(offer.accept({
        dir: `${chat.dir}/in`,
        onProgress: (bytes) => {
          if (!cancelled && bytes > 2 * 1024 * 1024) {
            cancelled = true;
            chat.bob.cancelTransfer(offer.transfer).catch(() => {});
          }
        },
      }));
      await rejects(receiving, (error: ProtocolError) => error.code === "transfer_failed");
      await rejects(sending, /cancelled/);
      // The sender stops in the middle.
      const controller = new AbortController();
      const stopped = settle(chat.bob.sendFile("ann", big, {
        name: "big.bin",
        signal: controller.signal,
        onProgress: (bytes) => bytes > 2 * 1024 * 1024 && controller.abort(new Error("stop")),
      }));
      const other = await chat.ann.next("offer", { timeout: 20_000 });
      const taking = settle(other.accept({ dir: `${chat.dir}/in` }));
      await rejects(stopped, /stop/);
      await rejects(taking, (error: ProtocolError) => error.code === "transfer_failed");
      equal((await chat.ann.send("still chatting")).text, "still chatting");
    });

    await t.step("a room offer reaches the members on the other node", async () => {
      const url = await pg.database("files_room");
      // A room offer stays open to the others until it expires: the sender hears of it then.
      await using chat = await twoNodes(url, { offerTimeout: 3000 });
      const bytes = randomBytes(100_000);
      const sending = settle(chat.ann.sendFile("#lobby", bytes, { name: "all.bin" }));
      const offer = await chat.bob.next("offer", { timeout: 20_000 });
      equal(offer.to, "#lobby");
      const received = await offer.accept({ dir: chat.dir });
      equal(received.sha256, sha256(bytes));
      const sent = await sending;
      ok(sent.to.includes("bob"), `sent to ${sent.to}`);
    });

    await t.step("a node that stops in the middle fails the transfer on the other", async () => {
      const url = await pg.database("files_stop");
      await using chat = await twoNodes(url);
      // A sender speaking the protocol by hand sends part of the file, then nothing more.
      await using mallory = await RawPeer.connect(chat.a.addr.port);
      await mallory.send({ type: "hello", id: 1, v: 1, name: "mallory" });
      await mallory.frame("welcome");
      const whole = randomBytes(4 * 1024 * 1024);
      await mallory.send({
        type: "offer",
        id: 2,
        to: "bob",
        name: "cut.bin",
        size: whole.length,
        sha256: sha256(whole),
      });
      const offer = await chat.bob.next("offer", { timeout: 20_000 });
      const half = Promise.withResolvers<void>();
      const receiving = settle(offer.accept({
        dir: `${chat.dir}/in`,
        onProgress: (bytes) => bytes > 0 && half.resolve(),
      }));
      const accepted = await mallory.frame("transfer");
      await using data = await RawPeer.connect(chat.a.addr.port);
      await data.send({ type: "data", token: accepted.token });
      await data.until(/"ok":true/);
      await data.write(whole.subarray(0, 1024 * 1024));
      await half.promise;
      await chat.a.close();
      await rejects(receiving, (error: ProtocolError) => error.code === "transfer_failed");
      deepEqual([...Deno.readDirSync(`${chat.dir}/in`)], [], "the partial file is removed");
      // The receiver's node removes what was on its way.
      await noChunksLeft(url);
    });
  },
});

Deno.test({
  name: `a node killed in the middle of a transfer fails it on the other side${PG_MISSING}`,
  ignore: PG_BIN === undefined,
  async fn(t) {
    await using pg = await startPostgres();
    const whole = randomBytes(8 * 1024 * 1024);
    const offer = {
      type: "offer",
      id: 2,
      name: "cut.bin",
      size: whole.length,
      sha256: sha256(whole),
    };
    const dir = await Deno.makeTempDir();
    try {
      await t.step("the sender's node", async () => {
        const url = await pg.database("killed_sender");
        const started = await startServer("--data", url, "--node", "a", "--history", "0");
        await using a = started.server;
        await using b = await node(url);
        await using bob = await connect({ port: b.addr.port, name: "bob", history: 0 });
        // The sender, on node a, speaks the protocol by hand and sends part of the file.
        await using mallory = await RawPeer.connect(started.port);
        await mallory.send({ type: "hello", id: 1, v: 1, name: "mallory" });
        await mallory.frame("welcome");
        await mallory.send({ ...offer, to: "bob" });
        const incoming = await bob.next("offer", { timeout: 20_000 });
        const arriving = Promise.withResolvers<void>();
        const receiving = settle(incoming.accept({
          dir: `${dir}/in`,
          onProgress: (bytes) => bytes > 0 && arriving.resolve(),
        }));
        const accepted = await mallory.frame("transfer");
        await using data = await RawPeer.connect(started.port);
        await data.send({ type: "data", token: accepted.token });
        await data.until(/"ok":true/);
        await data.write(whole.subarray(0, 1024 * 1024));
        await arriving.promise;
        a.kill("SIGKILL");
        await rejects(receiving, (error: ProtocolError) => error.code === "transfer_failed");
        const cancelled = await bob.next("transfer", { timeout: 20_000 });
        equal(cancelled.state, "cancelled");
        deepEqual([...Deno.readDirSync(`${dir}/in`)], [], "the partial file is removed");
        await noChunksLeft(url);
      });

      await t.step("the receiver's node", async () => {
        const url = await pg.database("killed_receiver");
        const started = await startServer("--data", url, "--node", "a", "--history", "0");
        await using a = started.server;
        await using b = await node(url);
        // The receiver, on node a, speaks the protocol by hand and reads nothing.
        await using rita = await RawPeer.connect(started.port);
        await rita.send({ type: "hello", id: 1, v: 1, name: "rita" });
        await rita.frame("welcome");
        await using ann = await connect({ port: b.addr.port, name: "ann", history: 0 });
        await found(ann, "rita");
        // More than the socket buffers between node a and rita hold: the transfer stalls midway.
        const big = randomBytes(48 * 1024 * 1024);
        const sending = settle(ann.sendFile("rita", big, { name: "cut.bin" }));
        const incoming = await rita.frame("offer");
        await rita.send({ type: "accept", id: 2, transfer: incoming.transfer });
        const ack = await rita.frame("ack");
        // Rita's data connection takes the first bytes, then reads no more.
        const data = await Deno.connect({ hostname: "127.0.0.1", port: started.port });
        try {
          await data.write(new TextEncoder().encode(`{"type":"data","token":"${ack.token}"}\n`));
          const buffer = new Uint8Array(65536);
          for (let got = 0; got < 300_000;) {
            const read = await data.read(buffer);
            ok(read !== null, "the data connection closed early");
            got += read;
          }
          a.kill("SIGKILL");
          await rejects(sending, (error: ProtocolError) => error.code === "transfer_failed");
        } finally {
          data.close();
        }
        await noChunksLeft(url);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** Waits until someone on another node is known to a client's node. */
async function found(client: ChatClient, name: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await client.who()).includes(name)) {
    ok(Date.now() < deadline, `${name} is not seen`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Waits until no chunk of a file is left in the database, within a bounded time. */
async function noChunksLeft(url: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (await chunksLeft(url) > 0) {
    ok(Date.now() < deadline, "chunks are left in the database");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
