/**
 * The PROXY protocol in front of the chat port: the parser on its own, the
 * server with it switched on, and real HAProxy sending versions 1 and 2.
 *
 * @module
 */

import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import { join } from "node:path";
import { serve } from "../mod.ts";
import { parseProxyHeader } from "../_server/proxy_protocol.ts";
import { freePort, local } from "./_helpers.ts";
import { HAPROXY, HAPROXY_MISSING, startHaproxy } from "./_haproxy.ts";
import { RawPeer } from "./_raw.ts";
import { assertOneErrorLine, runChat } from "./_cli.ts";

const encoder = new TextEncoder();

function v2(command: number, family: number, body: number[]): Uint8Array {
  return new Uint8Array([
    0x0d,
    0x0a,
    0x0d,
    0x0a,
    0x00,
    0x0d,
    0x0a,
    0x51,
    0x55,
    0x49,
    0x54,
    0x0a,
    0x20 | command,
    family,
    body.length >> 8,
    body.length & 0xff,
    ...body,
  ]);
}

Deno.test("PROXY headers of versions 1 and 2 are read, and anything else refused", async (t) => {
  await t.step("version 1", () => {
    const line = "PROXY TCP4 203.0.113.7 192.0.2.1 51234 7777\r\n";
    deepEqual(parseProxyHeader(encoder.encode(`${line}{"type":"hello"}`)), {
      length: line.length,
      source: { hostname: "203.0.113.7", port: 51234 },
    });
    deepEqual(
      parseProxyHeader(encoder.encode("PROXY TCP6 2001:DB8:0:0::7 2001:db8::1 4000 7777\r\n"))
        ?.source,
      { hostname: "2001:db8::7", port: 4000 },
    );
    deepEqual(parseProxyHeader(encoder.encode("PROXY UNKNOWN\r\n")), { length: 15 });
    equal(parseProxyHeader(encoder.encode("PROXY TCP4 203.0.113.7 19")), undefined);
    equal(parseProxyHeader(encoder.encode("PRO")), undefined);
  });
  await t.step("version 2", () => {
    const ipv4 = [203, 0, 113, 7, 192, 0, 2, 1, 0xc8, 0x22, 0x1e, 0x61];
    deepEqual(parseProxyHeader(v2(1, 0x11, ipv4)), {
      length: 28,
      source: { hostname: "203.0.113.7", port: 51234 },
    });
    const ipv6 = [
      ...[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7],
      ...new Array(16).fill(0),
      0x0f,
      0xa0,
      0x1e,
      0x61,
    ];
    deepEqual(parseProxyHeader(v2(1, 0x21, ipv6))?.source, { hostname: "2001:db8::7", port: 4000 });
    // IPv4-mapped: the IPv4 address, as a socket would report it.
    const mapped = [
      ...new Array(10).fill(0),
      0xff,
      0xff,
      198,
      51,
      100,
      9,
      ...new Array(20).fill(0),
    ];
    equal(parseProxyHeader(v2(1, 0x21, mapped))?.source?.hostname, "198.51.100.9");
    // The proxy's own connection (a health check) and a family with no address.
    deepEqual(parseProxyHeader(v2(0, 0x00, [])), { length: 16 });
    deepEqual(parseProxyHeader(v2(1, 0x31, new Array(216).fill(0))), { length: 232 });
    equal(parseProxyHeader(v2(1, 0x11, ipv4).subarray(0, 20)), undefined);
  });
  await t.step("anything else", () => {
    for (
      const bad of [
        '{"type":"hello"}\n',
        "PROXY TCP4 not.an.address 192.0.2.1 1 2\r\n",
        "PROXY TCP4 203.0.113.7 192.0.2.1 99999 7777\r\n",
        "PROXY TCP4 2001:db8::1 192.0.2.1 1 2\r\n",
        "PROXY SCTP 203.0.113.7 192.0.2.1 1 2\r\n",
        `PROXY TCP4 ${"1".repeat(120)}`,
      ]
    ) {
      throws(() => parseProxyHeader(encoder.encode(bad)), SyntaxError, bad);
    }
    throws(() => parseProxyHeader(v2(2, 0x11, [])), SyntaxError);
    throws(() => parseProxyHeader(v2(1, 0x11, new Array(5000).fill(0))), SyntaxError);
  });
});

Deno.test("with the PROXY protocol on, limits and bans see the address in the header", async () => {
  const lines: string[] = [];
  await using server = await serve({
    ...local,
    proxyProtocol: true,
    maxConnectionsPerIp: 1,
    onLog: (line) => lines.push(line),
  });
  const port = server.addr.port;
  // Two people behind the same proxy address, from different client addresses.
  await using ann = await RawPeer.connect(port);
  await ann.write("PROXY TCP4 203.0.113.7 127.0.0.1 40001 7777\r\n");
  await ann.send({ type: "hello", id: 1, v: 1, name: "ann" });
  await ann.frame("welcome");
  await using bob = await RawPeer.connect(port);
  await bob.write(
    v2(1, 0x11, [198, 51, 100, 9, 127, 0, 0, 1, 0x9c, 0x42, 0x1e, 0x61]),
  );
  await bob.send({ type: "hello", id: 1, v: 1, name: "bob" });
  await bob.frame("welcome");
  ok(lines.some((line) => line.startsWith("ann joined from 203.0.113.7:40001")), lines.join("\n"));
  ok(lines.some((line) => line.startsWith("bob joined from 198.51.100.9:40002")), lines.join("\n"));
  // The per-address limit counts ann's address, not the proxy's.
  await using again = await RawPeer.connect(port);
  await again.write("PROXY TCP4 203.0.113.7 127.0.0.1 40002 7777\r\n");
  match(await again.until(/Too many connections/), /from 203\.0\.113\.7/);
  // No header: closed without a word.
  await using bare = await RawPeer.connect(port);
  await bare.send({ type: "hello", id: 1, v: 1, name: "eve" });
  await bare.eof();
  ok(lines.some((line) => /not start with a PROXY header/.test(line)), lines.join("\n"));
});

Deno.test({
  name: `HAProxy's send-proxy and send-proxy-v2 give the client's address${HAPROXY_MISSING}`,
  ignore: HAPROXY === undefined,
  async fn(t) {
    const lines: string[] = [];
    await using server = await serve({
      ...local,
      proxyProtocol: true,
      onLog: (line) => lines.push(line),
    });
    const dir = await Deno.makeTempDir({ prefix: "chat-proxy-" });
    try {
      for (const send of ["send-proxy", "send-proxy-v2"]) {
        await t.step(send, async () => {
          const front = freePort();
          const config = join(dir, `${send}.cfg`);
          await Deno.writeTextFile(
            config,
            [
              "defaults",
              "  mode tcp",
              "  timeout connect 2s",
              "  timeout client 1m",
              "  timeout server 1m",
              "frontend chat",
              `  bind 127.0.0.1:${front}`,
              "  default_backend node",
              "backend node",
              `  server node1 127.0.0.1:${server.addr.port} ${send} check inter 500`,
              "",
            ].join("\n"),
          );
          await using _proxy = await startHaproxy(config, front);
          const conn = await Deno.connect({ hostname: "127.0.0.1", port: front });
          await using peer = RawPeer.over(conn);
          const name = send.replaceAll("-", "");
          await peer.send({ type: "hello", id: 1, v: 1, name });
          await peer.frame("welcome");
          const port = (conn.localAddr as Deno.NetAddr).port;
          ok(
            lines.some((line) => line.startsWith(`${name} joined from 127.0.0.1:${port}`)),
            `no "${name} joined from 127.0.0.1:${port}" in:\n${lines.join("\n")}`,
          );
          // The health checks that connect and say nothing leave no trace.
          ok(!lines.some((line) => /PROXY/.test(line)), lines.join("\n"));
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("chat serve refuses --proxy-protocol with --tls, in one line", async () => {
  const result = await runChat([
    "serve",
    "--port",
    "0",
    "--data",
    ":memory:",
    "--proxy-protocol",
    "--tls",
  ]);
  assertOneErrorLine(result, /--proxy-protocol does not go with --tls: let the proxy end TLS/, 2);
});
