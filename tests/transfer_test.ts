import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { connect, type ProtocolError, serve } from "../mod.ts";
import { freePath, safeFileName } from "../_client/files.ts";
import { RawPeer } from "./_raw.ts";
import { local, randomBytes, settle, sha256 } from "./_helpers.ts";

async function pair(options: Record<string, unknown> = {}) {
  const server = await serve({ ...local, ...options });
  const alice = await connect({ port: server.addr.port, name: "alice" });
  const bob = await connect({ port: server.addr.port, name: "bob" });
  const dir = await Deno.makeTempDir();
  return {
    server,
    alice,
    bob,
    dir,
    async [Symbol.asyncDispose]() {
      await alice.close();
      await bob.close();
      await server.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("files of every size arrive whole, under their names", async (t) => {
  await using chat = await pair();
  const cases: [string, Uint8Array][] = [
    ["empty.txt", new Uint8Array(0)],
    ["one.bin", new Uint8Array([42])],
    ["照片 2026.png", randomBytes(300_000)],
    ["random-100MB.bin", randomBytes(100 * 1024 * 1024)],
  ];
  for (const [name, bytes] of cases) {
    await t.step(`${name} (${bytes.length} bytes)`, async () => {
      const path = `${chat.dir}/${name}`;
      await Deno.writeFile(path, bytes);
      const sending = chat.alice.sendFile("bob", path);
      const offer = await chat.bob.next("offer", { timeout: 5000 });
      deepEqual([offer.from, offer.name, offer.size, offer.sha256], [
        "alice",
        name,
        bytes.length,
        sha256(bytes),
      ]);
      const received = await offer.accept({ dir: `${chat.dir}/in` });
      const sent = await sending;
      equal(received.path, `${chat.dir}/in/${name}`);
      equal(received.sha256, sha256(await Deno.readFile(received.path)));
      deepEqual([sent.sha256, sent.size, sent.to], [received.sha256, bytes.length, ["bob"]]);
    });
  }
  await t.step("bytes and streams as sources, and no file is overwritten", async () => {
    const sending = chat.alice.sendFile("bob", new TextEncoder().encode("first"), {
      name: "note.txt",
    });
    await (await chat.bob.next("offer", { timeout: 5000 })).accept({ dir: `${chat.dir}/in` });
    await sending;
    const stream = ReadableStream.from([
      new TextEncoder().encode("sec"),
      new TextEncoder().encode("ond"),
    ]);
    const again = chat.alice.sendFile("bob", stream, { name: "note.txt" });
    const second = await (await chat.bob.next("offer", { timeout: 5000 })).accept({
      dir: `${chat.dir}/in`,
    });
    await again;
    equal(second.path, `${chat.dir}/in/note (1).txt`);
    equal(await Deno.readTextFile(`${chat.dir}/in/note.txt`), "first");
    equal(await Deno.readTextFile(second.path), "second");
  });
});

Deno.test("hostile file names are made safe", async (t) => {
  for (
    const [name, safe] of [
      ["../../etc/x", "x"],
      ["..\\..\\windows\\system32\\evil.dll", "evil.dll"],
      ["a\u0000b\u001b[31mc.txt", "a_b_[31mc.txt"],
      ["\u202egnp.exe", "_gnp.exe"],
      ["CON.txt", "_CON.txt"],
      ["...", "file"],
      ["trailing. ", "trailing"],
      ["文件名.txt", "文件名.txt"],
      ["x".repeat(500) + ".png", "x".repeat(196) + ".png"],
    ] as const
  ) {
    await t.step(JSON.stringify(name), () => equal(safeFileName(name), safe));
  }
  await t.step("over the wire", async () => {
    await using chat = await pair();
    const sending = chat.alice.sendFile("bob", new TextEncoder().encode("x"), {
      name: "../../etc/x",
    });
    const file = await (await chat.bob.next("offer", { timeout: 5000 })).accept({
      dir: `${chat.dir}/in`,
    });
    await sending;
    equal(file.path, `${chat.dir}/in/x`);
    equal(await freePath(`${chat.dir}/in`, "x"), `${chat.dir}/in/x (1)`);
  });
});

Deno.test("either side can cancel in the middle", async (t) => {
  const big = randomBytes(200 * 1024 * 1024);
  await t.step("the receiver", async () => {
    await using chat = await pair();
    const sending = settle(chat.alice.sendFile("bob", big, { name: "big.bin" }));
    const offer = await chat.bob.next("offer", { timeout: 5000 });
    let cancelled = false;
    const receiving = settle(offer.accept({
      dir: `${chat.dir}/in`,
      onProgress: (bytes) => {
        if (!cancelled && bytes > 10 * 1024 * 1024) {
          cancelled = true;
          chat.bob.cancelTransfer(offer.transfer);
        }
      },
    }));
    await rejects(receiving, (error: ProtocolError) => error.code === "transfer_failed");
    await rejects(sending, (error: ProtocolError) => /cancelled/.test(error.message));
    deepEqual([...Deno.readDirSync(`${chat.dir}/in`)], [], "the partial file is removed");
    equal((await chat.alice.send("still chatting")).text, "still chatting");
  });
  await t.step("the sender", async () => {
    await using chat = await pair();
    const controller = new AbortController();
    const sending = settle(chat.alice.sendFile("bob", big, {
      name: "big.bin",
      signal: controller.signal,
      onProgress: (bytes) => bytes > 10 * 1024 * 1024 && controller.abort(new Error("stop")),
    }));
    const offer = await chat.bob.next("offer", { timeout: 5000 });
    const receiving = settle(offer.accept({ dir: `${chat.dir}/in` }));
    await rejects(sending, /stop/);
    await rejects(receiving, (error: ProtocolError) => error.code === "transfer_failed");
  });
  await t.step("the receiver disconnects", async () => {
    await using chat = await pair();
    const sending = settle(chat.alice.sendFile("bob", big, { name: "big.bin" }));
    const offer = await chat.bob.next("offer", { timeout: 5000 });
    let gone = false;
    const receiving = offer.accept({
      dir: `${chat.dir}/in`,
      onProgress: (bytes) => {
        if (!gone && bytes > 10 * 1024 * 1024) {
          gone = true;
          chat.bob.close();
        }
      },
    }).catch((error) => error);
    await rejects(
      sending,
      (error: ProtocolError) =>
        // Closing stops the transfer first (to remove the partial file), or the link is cut.
        error.code === "transfer_failed" && /bob left|cut off|cancelled by bob/.test(error.message),
    );
    ok((await receiving) instanceof Error);
  });
});

Deno.test("a file that does not match its offer is not kept", async (t) => {
  await using server = await serve(local);
  const port = server.addr.port;
  await using bob = await connect({ port, name: "bob" });
  const dir = await Deno.makeTempDir();
  try {
    const cases = [
      // Whole but different: the receiver checks the hash and tells the sender it was not kept.
      ["corrupt.bin", "evil", "good", "received"],
      // Cut short: the server notices first and cancels.
      ["short.bin", "go", "good", "cancelled"],
    ] as const;
    for (const [name, sent, claimed, state] of cases) {
      await t.step(name, async () => {
        // A hostile sender speaks the protocol by hand: it offers one file and sends other bytes.
        await using mallory = await RawPeer.connect(port);
        await mallory.send({ type: "hello", id: 1, v: 1, name: `m-${name}` });
        await mallory.frame("welcome");
        const bytes = new TextEncoder().encode(claimed);
        await mallory.send({
          type: "offer",
          id: 2,
          to: "bob",
          name,
          size: bytes.length,
          sha256: sha256(bytes),
        });
        const offer = await bob.next("offer", { timeout: 5000 });
        const receiving = offer.accept({ dir }).catch((error) => error);
        const accepted = await mallory.frame("transfer");
        const data = await RawPeer.connect(port);
        await data.send({ type: "data", token: accepted.token });
        await data.until(/"ok":true/);
        await data.write(sent);
        data.close();
        const error = await receiving;
        ok(error instanceof Error && /was not saved/.test(error.message), String(error));
        const verdict = await mallory.frame("transfer");
        equal(verdict.state, state);
        if (state === "received") equal(verdict.ok, false);
      });
    }
    deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("offers expire, are declined, and nobody else can take them", async (t) => {
  await using chat = await pair({ offerTimeout: 200, maxFileBytes: 1000, maxTransfersPerUser: 1 });
  await t.step("an offer nobody accepts expires", async () => {
    const sending = settle(chat.alice.sendFile("bob", new Uint8Array(10), { name: "a" }));
    await chat.bob.next("offer", { timeout: 5000 });
    await rejects(sending, /Nobody accepted/);
    const expired = await chat.bob.next("transfer", { timeout: 5000 });
    equal(expired.state, "expired");
  });
  await t.step("declined", async () => {
    const sending = settle(chat.alice.sendFile("bob", new Uint8Array(10), { name: "b" }));
    await (await chat.bob.next("offer", { timeout: 5000 })).decline();
    await rejects(sending, /bob declined "b"/);
  });
  await t.step("limits", async () => {
    await rejects(
      () => chat.alice.sendFile("bob", new Uint8Array(2000), { name: "big" }),
      (error: ProtocolError) => error.code === "transfer_refused",
    );
    const first = chat.alice.sendFile("bob", new Uint8Array(10), { name: "one" }).catch(() => {});
    await chat.bob.next("offer", { timeout: 5000 });
    await rejects(
      () => chat.alice.sendFile("bob", new Uint8Array(10), { name: "two" }),
      (error: ProtocolError) =>
        error.code === "transfer_refused" && /already sending 1/.test(error.message),
    );
    await first;
  });
  await t.step("a third party cannot accept, and a guessed token opens nothing", async () => {
    await using eve = await connect({ port: chat.server.addr.port, name: "eve" });
    const sending = chat.alice.sendFile("bob", new Uint8Array(10), { name: "secret" }).catch(
      () => {},
    );
    const offer = await chat.bob.next("offer", { timeout: 5000 });
    await rejects(
      () => eve.cancelTransfer(offer.transfer),
      (error: ProtocolError) => error.code === "no_such_transfer",
    );
    await using data = await RawPeer.connect(chat.server.addr.port);
    await data.send({ type: "data", token: "guessed-token-that-is-not-real" });
    match(await data.until(/error/), /no_such_transfer/);
    equal(await data.line(), null);
    await sending;
  });
});

Deno.test("chatting goes on while a file is moving, and a room can receive a file", async () => {
  // A short handshake timeout must not touch data connections, which never say hello.
  await using chat = await pair({ offerTimeout: 500, handshakeTimeout: 100 });
  const sending = chat.alice.sendFile("bob", randomBytes(200 * 1024 * 1024), { name: "movie.bin" });
  const offer = await chat.bob.next("offer", { timeout: 5000 });
  const receiving = offer.accept({ dir: chat.dir });
  for (let i = 0; i < 20; i++) {
    const sent = await chat.alice.send(`while sending ${i}`);
    equal((await chat.bob.next("message", { timeout: 5000 })).seq, sent.seq);
  }
  await receiving;
  await sending;

  await using carol = await connect({ port: chat.server.addr.port, name: "carol" });
  const toRoom = chat.alice.sendFile("#lobby", new TextEncoder().encode("for everyone"), {
    name: "all.txt",
  });
  const forBob = await chat.bob.next("offer", { timeout: 5000 });
  const forCarol = await carol.next("offer", { timeout: 5000 });
  equal(forBob.to, "#lobby");
  await forBob.accept({ dir: `${chat.dir}/bob` });
  await forCarol.accept({ dir: `${chat.dir}/carol` });
  const sent = await toRoom;
  deepEqual(sent.to.toSorted(), ["bob", "carol"]);
  equal(await Deno.readTextFile(`${chat.dir}/carol/all.txt`), "for everyone");
});

Deno.test("a sender hears when the recipient leaves before answering; nobody sends to themselves", async () => {
  await using chat = await pair();
  await rejects(
    () => chat.alice.sendFile("alice", new Uint8Array(1), { name: "me" }),
    (error: ProtocolError) => error.code === "bad_request",
  );
  const sending = settle(chat.alice.sendFile("bob", new Uint8Array(10), { name: "later" }));
  const offer = await chat.bob.next("offer", { timeout: 5000 });
  equal(offer.name, "later");
  await chat.bob.close();
  await rejects(
    sending,
    (error: ProtocolError) => error.code === "transfer_failed" && /bob left/.test(error.message),
  );
});

Deno.test("a file offer to a plain-text user is refused at once, since nc cannot accept it", async () => {
  await using server = await serve(local);
  const { port } = server.addr;
  await using alice = await connect({ port, name: "alice" });
  await using nc = await RawPeer.connect(port);
  await nc.write("bob\n");
  await nc.until(/You are bob/);
  const error = await settle(
    alice.sendFile("bob", new TextEncoder().encode("hi"), { name: "a.txt" }),
  )
    .then(() => undefined, (error: ProtocolError) => error);
  equal(error?.code, "transfer_refused");
  match(error!.message, /bob uses a plain-text connection and cannot receive files/);

  // A room where nobody else can receive files refuses the offer too.
  const room = await settle(
    alice.sendFile("#lobby", new TextEncoder().encode("hi"), { name: "a.txt" }),
  )
    .then(() => undefined, (error: ProtocolError) => error);
  equal(room?.code, "transfer_refused");
  match(room!.message, /Nobody else in #lobby can receive files/);

  // With a client that can take files there, the room offer stands.
  await using carol = await connect({ port, name: "carol" });
  const offered = Promise.withResolvers<string>();
  const sending = settle(
    alice.sendFile("#lobby", new TextEncoder().encode("hi"), {
      name: "a.txt",
      onOffer: (id) => offered.resolve(id),
    }),
  );
  sending.catch(() => {});
  const offer = await carol.next("offer", { timeout: 5000 });
  equal(offer.transfer, await offered.promise);
  await alice.cancelTransfer(offer.transfer);
  await rejects(sending);
});

Deno.test("a file offer hears an answer that arrives in the same read as its ack", async () => {
  // A server that answers the offer for the recipient at once: the ack and the decline come
  // in one write, so the client reads both before the offer's caller resumes.
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    using conn = await listener.accept();
    const reader = new RawLines(conn);
    const write = (...frames: unknown[]) =>
      conn.write(new TextEncoder().encode(frames.map((f) => JSON.stringify(f) + "\n").join("")));
    for await (const frame of reader) {
      if (frame.type === "hello") {
        await write({
          type: "welcome",
          id: frame.id,
          v: 1,
          server: "fake",
          name: frame.name,
          room: "#lobby",
          members: [frame.name, "bob"],
          rooms: [{ name: "#lobby", seq: 0, topic: "", members: [frame.name, "bob"] }],
          session: "s",
          resumed: false,
          resumeGrace: 0,
          limits: { maxFrameBytes: 65536, maxTextLength: 8000, idleTimeout: 0 },
        });
      } else if (frame.type === "offer") {
        await write(
          { type: "ack", id: frame.id, transfer: "t1", expires: new Date().toISOString() },
          { type: "transfer", transfer: "t1", state: "declined", by: "bob" },
        );
      } else if (frame.type === "quit") {
        await write({ type: "ack", id: frame.id });
        return;
      }
    }
  })();
  const { port } = listener.addr;
  {
    await using alice = await connect({ port, name: "alice" });
    const sending = settle(
      alice.sendFile("bob", new TextEncoder().encode("hi"), { name: "a.txt" }),
    );
    const timeout = Promise.withResolvers<never>();
    const timer = setTimeout(() => timeout.reject(new Error("The offer never settled")), 5000);
    try {
      await rejects(Promise.race([sending, timeout.promise]), /bob declined "a.txt"/);
    } finally {
      clearTimeout(timer);
    }
    equal((await alice.next("transfer", { timeout: 5000 })).state, "declined");
  }
  await serving;
});

/** JSON frames read from a connection, one per line. */
class RawLines {
  #conn: Deno.Conn;
  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }
  async *[Symbol.asyncIterator](): AsyncGenerator<Record<string, unknown>> {
    const decoder = new TextDecoder();
    const buffer = new Uint8Array(65536);
    let pending = "";
    while (true) {
      const read = await this.#conn.read(buffer).catch(() => null);
      if (read === null) return;
      pending += decoder.decode(buffer.subarray(0, read), { stream: true });
      let newline;
      while ((newline = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        if (line.trim() !== "") yield JSON.parse(line);
      }
    }
  }
}

Deno.test("a file larger than the TLS read-ahead crosses a TLS server whole", async () => {
  const { createSelfSignedCertificate } = await import("../_common/tls.ts");
  const certificate = await createSelfSignedCertificate(["localhost", "127.0.0.1"]);
  await using server = await serve({ ...local, tls: certificate });
  const tls = { fingerprint: certificate.fingerprint };
  await using alice = await connect({ port: server.addr.port, name: "alice", tls });
  await using bob = await connect({ port: server.addr.port, name: "bob", tls });
  const dir = await Deno.makeTempDir();
  try {
    const bytes = randomBytes(40 * 1024 * 1024);
    const sending = settle(alice.sendFile("bob", bytes, { name: "big.bin" }));
    const offer = await bob.next("offer", { timeout: 5000 });
    const received = await offer.accept({ dir });
    const sent = await sending;
    equal(received.sha256, sha256(bytes));
    equal(received.sha256, sha256(await Deno.readFile(received.path)));
    equal(sent.size, bytes.length);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
