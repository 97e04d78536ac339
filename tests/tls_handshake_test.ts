import { equal, match, ok } from "node:assert/strict";
import { connect, serve } from "../mod.ts";
import { createSelfSignedCertificate } from "../_common/tls.ts";
import { withTimeout } from "./_cli.ts";
import { local } from "./_helpers.ts";

const certificate = await createSelfSignedCertificate(["127.0.0.1"]);

/** Reads until the server closes the connection; `null` at EOF, the error's name on a reset. */
async function closedBy(conn: Deno.Conn): Promise<string | null> {
  const buffer = new Uint8Array(1024);
  try {
    while ((await conn.read(buffer)) !== null) {
      // A stalled handshake is sent nothing; anything else is skipped.
    }
    return null;
  } catch (error) {
    return error instanceof Error ? error.name : String(error);
  }
}

Deno.test("TCP connections that never start the TLS handshake are closed at the handshake timeout, and counted until then", async () => {
  const stalled = 50;
  await using server = await serve({
    ...local,
    tls: certificate,
    handshakeTimeout: 1000,
    maxConnectionsPerIp: stalled,
    connectRate: 1000,
  });
  const { port } = server.addr;
  const conns = [];
  try {
    for (let i = 0; i < stalled; i++) {
      conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    }
    // While they are open they count: one more from the same address is refused, in words.
    const extra = await Deno.connectTls({
      hostname: "127.0.0.1",
      port,
      caCerts: [certificate.cert],
    });
    try {
      const buffer = new Uint8Array(1024);
      const read = await withTimeout(extra.read(buffer), 10_000, "the refusal");
      match(new TextDecoder().decode(buffer.subarray(0, read ?? 0)), /^! Too many connections/);
    } finally {
      extra.close();
    }
    // The server closes every one of them (EOF or reset), not just forgets it.
    const ends = await withTimeout(
      Promise.all(conns.map(closedBy)),
      10_000,
      "the server to close the stalled connections",
    );
    equal(ends.filter((end) => end !== null && end !== "ConnectionReset").length, 0);
    // Then the address may connect again.
    await using alice = await connect({
      port,
      name: "alice",
      tls: { caCerts: [certificate.cert] },
    });
    equal(alice.name, "alice");
  } finally {
    for (const conn of conns) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  }
});

Deno.test("a TLS peer that sends far more than the server reads is held back, not buffered", async () => {
  const { listenTls, MAX_READ_AHEAD } = await import("../_server/tls_listener.ts");
  const listener = await listenTls({ ...local, cert: certificate.cert, key: certificate.key });
  try {
    const accepted = (async () => {
      const conn = await listener.accept();
      await conn.read(new Uint8Array(100));
      return conn; // and never read again
    })();
    const client = await Deno.connectTls({
      hostname: "127.0.0.1",
      port: listener.addr.port,
      caCerts: [certificate.cert],
    });
    const chunk = new Uint8Array(256 * 1024).fill(0x61);
    const bound = 4 * MAX_READ_AHEAD;
    let written = 0;
    let blocked = false;
    while (written < bound) {
      // A write the server's kernel does not take within a second is held back.
      const write = client.write(chunk);
      write.catch(() => {});
      let timer: ReturnType<typeof setTimeout> | undefined;
      const wrote = await Promise.race([
        write,
        new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), 1000)),
      ]);
      clearTimeout(timer);
      if (wrote === undefined) {
        blocked = true;
        break;
      }
      written += wrote;
    }
    client.close();
    (await accepted).close();
    ok(blocked, `${written} bytes were taken without being read`);
  } finally {
    listener.close();
  }
});

Deno.test("refused TLS connections from one address wait for their handshake only a few at a time", async () => {
  await using server = await serve({
    ...local,
    tls: certificate,
    maxConnectionsPerIp: 1,
    connectRate: 1000,
  });
  const { port } = server.addr;
  const admitted = await Deno.connect({ hostname: "127.0.0.1", port });
  const refused: Deno.Conn[] = [];
  try {
    // Accepted and counted first (connections are taken in order): the others are over the cap.
    for (let i = 0; i < 30; i++) refused.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    const closed = refused.map(() => false);
    const closings = refused.map((conn, i) => closedBy(conn).then(() => closed[i] = true));
    // Twenty are closed at once; ten wait (up to 2 s) to say why.
    let count = 0;
    await new Promise<void>((resolve) => {
      for (const closing of closings) {
        closing.then(() => {
          if (++count === 20) resolve();
        });
      }
    });
    equal(closed.filter((done) => !done).length, 10);
    await Promise.all(closings);
  } finally {
    admitted.close();
    for (const conn of refused) conn.close();
  }
});
