import { deepEqual, equal, match, notEqual, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { x509 } from "../_common/_deps_x509.ts";
import {
  certificateFingerprint,
  createSelfSignedCertificate,
  fetchPeerCertificate,
  loadOrCreateCertificate,
  localHosts,
  normalizeFingerprint,
} from "../_common/tls.ts";
import { withTempDir } from "./_helpers.ts";

const HOSTS = ["localhost", "127.0.0.1", "::1"];

/** Generated once: key generation is the slow part and every server may share it. */
const server = await createSelfSignedCertificate(HOSTS);

const GREETING = "hello over TLS\n";

/**
 * A TLS server on 127.0.0.1 (and on ::1 with the same port, when `bothLoopbacks`
 * and the system has IPv6) that completes handshakes, writes {@linkcode GREETING}
 * and hangs up. `handshakes` records each handshake's outcome.
 */
function listenTls(
  cert: string,
  key: string,
  bothLoopbacks = false,
): { port: number; handshakes: boolean[] } & AsyncDisposable {
  const listeners = [Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert, key })];
  const port = listeners[0]!.addr.port;
  if (bothLoopbacks) {
    try {
      listeners.push(Deno.listenTls({ hostname: "::1", port, cert, key }));
    } catch (error) {
      listeners[0]!.close();
      // No IPv6 here: localhost can only be 127.0.0.1. Anything else is a failure of the test.
      if (!(error instanceof Deno.errors.AddrNotAvailable)) throw error;
    }
  }
  const conns = new Set<Deno.TlsConn>();
  const served = new Set<Promise<void>>();
  const handshakes: boolean[] = [];
  const accepting = Promise.all(listeners.map(async (listener) => {
    for await (const conn of listener) {
      conns.add(conn);
      served.add(
        conn.handshake().then(
          async () => {
            handshakes.push(true);
            await conn.write(new TextEncoder().encode(GREETING));
          },
          () => void handshakes.push(false), // A client that refuses the certificate.
        ).catch(() => {}),
      );
    }
  }));
  return {
    port,
    handshakes,
    async [Symbol.asyncDispose]() {
      for (const listener of listeners) listener.close();
      await accepting;
      await Promise.all(served);
      for (const conn of conns) conn.close();
    },
  };
}

/** Reads what the server wrote after the handshake, and closes. */
async function readGreeting(conn: Deno.TlsConn): Promise<string> {
  try {
    await conn.handshake();
    const buffer = new Uint8Array(GREETING.length);
    let read = 0;
    while (read < buffer.length) {
      const n = await conn.read(buffer.subarray(read));
      if (n === null) break;
      read += n;
    }
    return new TextDecoder().decode(buffer.subarray(0, read));
  } finally {
    conn.close();
  }
}

/** Connects, completes the handshake and returns the server's greeting; rejects when the handshake fails. */
async function handshake(options: Deno.ConnectTlsOptions): Promise<string> {
  return await readGreeting(await Deno.connectTls(options));
}

/** Connects to 127.0.0.1 but verifies the certificate for another name. */
async function handshakeAs(port: number, hostname: string, caCerts?: string[]): Promise<string> {
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
  return await readGreeting(await Deno.startTls(tcp, { hostname, caCerts }));
}

async function sha256Fingerprint(pem: string): Promise<string> {
  const base64 = pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "");
  const der = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", der));
  return "SHA256:" +
    Array.from(digest, (b) => b.toString(16).toUpperCase().padStart(2, "0")).join(":");
}

/** A port on 127.0.0.1 that nothing listens on. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

Deno.test("a generated certificate is accepted when it is the trusted root", async () => {
  await using tls = listenTls(server.cert, server.key);
  equal(
    await handshake({ hostname: "127.0.0.1", port: tls.port, caCerts: [server.cert] }),
    GREETING,
  );
  deepEqual(tls.handshakes, [true]);
});

Deno.test("a generated certificate is valid for the name localhost", async () => {
  await using tls = listenTls(server.cert, server.key);
  equal(await handshakeAs(tls.port, "localhost", [server.cert]), GREETING);
  deepEqual(tls.handshakes, [true]);
});

Deno.test("a generated certificate is refused for a name it was not made for", async () => {
  await using tls = listenTls(server.cert, server.key);
  await rejects(handshakeAs(tls.port, "chat.example.org", [server.cert]), /not valid for name/i);
});

Deno.test("a generated certificate is refused without caCerts as of an unknown issuer", async () => {
  await using tls = listenTls(server.cert, server.key);
  await rejects(
    handshake({ hostname: "127.0.0.1", port: tls.port }),
    /unknown ?issuer/i,
  );
});

Deno.test("a server is refused when the pinned certificate is another one", async () => {
  const other = await createSelfSignedCertificate(HOSTS);
  notEqual(other.fingerprint, server.fingerprint);
  await using tls = listenTls(server.cert, server.key);
  await rejects(
    handshake({ hostname: "127.0.0.1", port: tls.port, caCerts: [other.cert] }),
    /invalid peer certificate|unknown ?issuer|BadSignature/i,
  );
});

Deno.test("a generated certificate has the names, usages and validity asked for", async () => {
  const { cert } = await createSelfSignedCertificate(
    ["localhost", "127.0.0.1", "[::1]", "chat.example.org", "10.1.2.3", "LOCALHOST"],
    { days: 30 },
  );
  const parsed = new x509.X509Certificate(cert);
  equal(parsed.subject, "CN=chat");
  equal(parsed.issuer, "CN=chat");
  const san = parsed.getExtension(x509.SubjectAlternativeNameExtension);
  deepEqual(san?.names.toJSON(), [
    { type: "dns", value: "localhost" },
    { type: "ip", value: "127.0.0.1" },
    { type: "ip", value: "::1" },
    { type: "dns", value: "chat.example.org" },
    { type: "ip", value: "10.1.2.3" },
  ]);
  equal(parsed.getExtension(x509.KeyUsagesExtension)?.usages, x509.KeyUsageFlags.digitalSignature);
  deepEqual(parsed.getExtension(x509.ExtendedKeyUsageExtension)?.usages, [
    x509.ExtendedKeyUsage.serverAuth,
  ]);
  equal(parsed.getExtension(x509.BasicConstraintsExtension)?.ca, false);
  equal((parsed.publicKey.algorithm as EcKeyAlgorithm).namedCurve, "P-256");
  equal(parsed.signatureAlgorithm.name, "ECDSA");
  const days = (parsed.notAfter.getTime() - Date.now()) / 86_400_000;
  ok(days > 29 && days <= 30, `${days}`);
  ok(parsed.notBefore.getTime() < Date.now());
  ok(await parsed.verify({ signatureOnly: true }));
});

Deno.test("generated certificates have different keys and serial numbers", async () => {
  const other = await createSelfSignedCertificate(["localhost"]);
  const [a, b] = [new x509.X509Certificate(server.cert), new x509.X509Certificate(other.cert)];
  notEqual(a.serialNumber, b.serialNumber);
  notEqual(server.key, other.key);
  match(server.key, /^-----BEGIN PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+-----END PRIVATE KEY-----\n$/);
});

Deno.test("createSelfSignedCertificate rejects bad hosts and validity", async (t) => {
  for (const hosts of [[], ["not a host"], ["bad..name"], [""], ["-leading.dash"]]) {
    await t.step(JSON.stringify(hosts), async () => {
      await rejects(createSelfSignedCertificate(hosts), TypeError);
    });
  }
  for (const days of [0, -1, 1.5, NaN]) {
    await t.step(`days ${days}`, async () => {
      await rejects(createSelfSignedCertificate(["localhost"], { days }), RangeError);
    });
  }
});

Deno.test("fetchPeerCertificate returns the certificate the server presents", async () => {
  await using tls = listenTls(server.cert, server.key);
  const pem = await fetchPeerCertificate("127.0.0.1", tls.port);
  match(pem, /^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n$/);
  equal(await certificateFingerprint(pem), server.fingerprint);
  equal(await handshake({ hostname: "127.0.0.1", port: tls.port, caCerts: [pem] }), GREETING);
});

Deno.test("fetchPeerCertificate connects by host name", async () => {
  // Listening on both loopback addresses, so localhost reaches it whichever it resolves to.
  await using tls = listenTls(server.cert, server.key, true);
  const pem = await fetchPeerCertificate("localhost", tls.port);
  equal(await certificateFingerprint(pem), server.fingerprint);
});

Deno.test("fetchPeerCertificate names the address when nothing listens", async () => {
  const port = closedPort();
  await rejects(fetchPeerCertificate("127.0.0.1", port), (error: Error) => {
    equal(error.message, `Cannot connect to "127.0.0.1:${port}" over TLS: connection refused`);
    return true;
  });
});

Deno.test("fetchPeerCertificate gives up on a server that never answers", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  try {
    await rejects(
      fetchPeerCertificate("127.0.0.1", listener.addr.port, { timeout: 100 }),
      /^Error: Cannot connect to "127\.0\.0\.1:\d+" over TLS: no answer within 100 ms$/,
    );
  } finally {
    (await accepted).close();
    listener.close();
  }
});

Deno.test("fetchPeerCertificate fails on a server that does not speak TLS", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const answered = (async () => {
    const conn = await listener.accept();
    await conn.write(new TextEncoder().encode("HELLO this is not TLS\r\n\r\n"));
    conn.close();
  })();
  try {
    await rejects(
      fetchPeerCertificate("127.0.0.1", listener.addr.port),
      /^Error: Cannot connect to "127\.0\.0\.1:\d+" over TLS: this port does not speak TLS$/,
    );
  } finally {
    await answered;
    listener.close();
  }
});

Deno.test("fetchPeerCertificate stops when aborted", async (t) => {
  await t.step("before it starts", async () => {
    const reason = new Error("stop");
    await rejects(
      fetchPeerCertificate("127.0.0.1", 1, { signal: AbortSignal.abort(reason) }),
      (error) => error === reason,
    );
  });
  await t.step("while waiting for the handshake", async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const accepted = listener.accept();
    const controller = new AbortController();
    const reason = new Error("stop");
    try {
      const fetching = fetchPeerCertificate("127.0.0.1", listener.addr.port, {
        signal: controller.signal,
      });
      const conn = await accepted;
      controller.abort(reason);
      await rejects(fetching, (error) => error === reason);
      conn.close();
    } finally {
      listener.close();
    }
  });
});

Deno.test("certificateFingerprint is the SHA-256 of the DER in openssl's form", async () => {
  equal(await certificateFingerprint(server.cert), await sha256Fingerprint(server.cert));
  equal(server.fingerprint, await sha256Fingerprint(server.cert));
  match(server.fingerprint, /^SHA256:([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  await rejects(certificateFingerprint("not a certificate"), SyntaxError);
  await rejects(certificateFingerprint(server.key), SyntaxError);
});

Deno.test("normalizeFingerprint reads the forms people paste", async (t) => {
  const canonical = "SHA256:" +
    "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:" +
    "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
  const hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
  const colons = hex.match(/../g)!.join(":");
  const cases: [string, string | undefined][] = [
    [canonical, canonical],
    [canonical.toLowerCase(), canonical],
    [`sha256:${hex}`, canonical],
    [`SHA256:${hex.toUpperCase()}`, canonical],
    [hex, canonical],
    [colons, canonical],
    [colons.toUpperCase(), canonical],
    [`sha256 Fingerprint=${colons}`.replace(" Fingerprint", ""), canonical],
    [`  ${canonical}\n`, canonical],
    ["", undefined],
    ["SHA256:", undefined],
    ["SHA256:AB:CD", undefined],
    [hex.slice(2), undefined],
    [hex + "00", undefined],
    [hex.slice(0, -1) + "g", undefined],
    [colons.slice(0, 5) + colons.slice(6), undefined],
    [colons + ":", undefined],
    ["SHA1:" + hex, undefined],
    ["SHA256:" + new Uint8Array(32).toBase64(), undefined],
  ];
  for (const [input, expected] of cases) {
    await t.step(JSON.stringify(input), () => {
      equal(normalizeFingerprint(input), expected);
    });
  }
  equal(normalizeFingerprint(server.fingerprint), server.fingerprint);
});

Deno.test("loadOrCreateCertificate creates the files once and then loads them", async () => {
  await withTempDir(async (dir) => {
    const certDir = join(dir, "state", "tls");
    const first = await loadOrCreateCertificate(certDir, ["localhost", "127.0.0.1"]);
    equal(first.created, true);
    equal(first.certPath, join(certDir, "tls-cert.pem"));
    equal(first.keyPath, join(certDir, "tls-key.pem"));
    equal(await Deno.readTextFile(first.certPath), first.cert);
    equal(await Deno.readTextFile(first.keyPath), first.key);
    equal(first.fingerprint, await certificateFingerprint(first.cert));
    if (Deno.build.os !== "windows") equal(Deno.statSync(first.keyPath).mode! & 0o777, 0o600);

    const second = await loadOrCreateCertificate(certDir, ["other.example.org"]);
    equal(second.created, false);
    equal(second.fingerprint, first.fingerprint);
    equal(second.cert, first.cert);
    equal(second.key, first.key);

    await using tls = listenTls(second.cert, second.key);
    equal(
      await handshake({ hostname: "127.0.0.1", port: tls.port, caCerts: [first.cert] }),
      GREETING,
    );
  });
});

Deno.test("concurrent loadOrCreateCertificate calls agree on one certificate", async () => {
  await withTempDir(async (dir) => {
    const results = await Promise.all(
      Array.from({ length: 4 }, () => loadOrCreateCertificate(dir, ["localhost"])),
    );
    equal(results.filter((result) => result.created).length, 1);
    equal(new Set(results.map((result) => result.fingerprint)).size, 1);
  });
});

Deno.test("loadOrCreateCertificate explains damaged or half-present files", async (t) => {
  await withTempDir(async (dir) => {
    await t.step("only the key", async () => {
      const sub = join(dir, "key-only");
      await Deno.mkdir(sub);
      await Deno.writeTextFile(join(sub, "tls-key.pem"), server.key);
      await rejects(
        loadOrCreateCertificate(sub, ["localhost"]),
        /tls-cert\.pem" is missing.*move it away/,
      );
    });
    await t.step("only the certificate", async () => {
      const sub = join(dir, "cert-only");
      await Deno.mkdir(sub);
      await Deno.writeTextFile(join(sub, "tls-cert.pem"), server.cert);
      await rejects(
        loadOrCreateCertificate(sub, ["localhost"]),
        /tls-key\.pem" is missing.*move it away/,
      );
    });
    await t.step("a damaged certificate", async () => {
      const sub = join(dir, "damaged");
      await Deno.mkdir(sub);
      await Deno.writeTextFile(join(sub, "tls-cert.pem"), "garbage");
      await Deno.writeTextFile(join(sub, "tls-key.pem"), server.key);
      await rejects(loadOrCreateCertificate(sub, ["localhost"]), (error: Error) => {
        ok(error instanceof SyntaxError);
        match(
          error.message,
          /^Cannot load the TLS certificate ".*tls-cert\.pem": .*move both files away/,
        );
        return true;
      });
      equal(await Deno.readTextFile(join(sub, "tls-cert.pem")), "garbage");
    });
  });
});

Deno.test("localHosts lists the loopback names and no duplicates", () => {
  const hosts = localHosts();
  for (const host of ["localhost", "127.0.0.1", "::1"]) ok(hosts.includes(host), host);
  equal(new Set(hosts).size, hosts.length);
  for (const host of hosts) ok(!host.startsWith("127.") || host === "127.0.0.1", host);
});

Deno.test("a certificate for localHosts is accepted on 127.0.0.1", async () => {
  const local = await createSelfSignedCertificate(localHosts());
  await using tls = listenTls(local.cert, local.key);
  equal(
    await handshake({ hostname: "127.0.0.1", port: tls.port, caCerts: [local.cert] }),
    GREETING,
  );
  deepEqual(tls.handshakes, [true]);
});
