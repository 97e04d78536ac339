import { equal, match, ok } from "node:assert/strict";
import { readShortFingerprint, shortFingerprint } from "../protocol/fingerprint.ts";
import { formatFrame } from "../protocol/text_format.ts";
import { createIdentity } from "../_common/identity.ts";
import { certificateFingerprint, createSelfSignedCertificate } from "../_common/tls.ts";
import { runChat, startServer, stopServer } from "./_cli.ts";
import { connect, serve } from "../mod.ts";
import { local } from "./_helpers.ts";
import { HAS_TMUX, shellQuote, TmuxSession } from "./_tmux.ts";
import { HOME } from "./_cli.ts";

const SHORT = /^([A-Z2-7]{4}-){5}[A-Z2-7]{4}$/;

Deno.test("keys and certificates have the same short fingerprint form", async () => {
  const { cert } = await createSelfSignedCertificate(["localhost"]);
  const full = await certificateFingerprint(cert);
  match(shortFingerprint(full)!, SHORT);
  const identity = await createIdentity();
  match(shortFingerprint(identity.fingerprint)!, SHORT);
  // The same digest gives the same short form, written in hex or in base64.
  const digest = Uint8Array.fromHex(full.slice(7).replaceAll(":", ""));
  equal(
    shortFingerprint(`SHA256:${digest.toBase64({ omitPadding: true })}`),
    shortFingerprint(full),
  );
  equal(shortFingerprint("SHA256:AB:CD"), undefined);
  equal(shortFingerprint("not a fingerprint"), undefined);
});

Deno.test("a short fingerprint is read in any case, with or without dashes", () => {
  const short = "K5QF-2M4X-ABCD-EFGH-IJKL-MNOP";
  equal(readShortFingerprint(short), short);
  equal(readShortFingerprint(short.toLowerCase()), short);
  equal(readShortFingerprint(short.replaceAll("-", "")), short);
  equal(readShortFingerprint(`SHA256:${short}`), short);
  equal(readShortFingerprint("K5QF-2M4X"), undefined);
  equal(readShortFingerprint("K5QF-2M4X-ABCD-EFGH-IJKL-MNO1"), undefined);
});

Deno.test("chat serve --tls hints the short fingerprint, which chat send trusts, and refuses another", async () => {
  const data = await Deno.makeTempDir();
  try {
    const { server, port } = await startServer("--data", `${data}/chat.db`, "--tls");
    try {
      const [, full, short] = await server.stdout.readUntil(
        /TLS certificate fingerprint: (SHA256:\S+) \(short: (\S+)\)/,
      );
      const [, hinted] = await server.stdout.readUntil(/--fingerprint (\S+)/);
      equal(hinted, short);
      equal(shortFingerprint(full!), short);
      for (const pin of [short!, short!.toLowerCase(), full!]) {
        const sent = await runChat(
          ["send", `127.0.0.1:${port}`, "--name", "ci", "--no-key", "--fingerprint", pin, "hi"],
        );
        equal(sent.code, 0, sent.stderr);
      }
      const other = short!.startsWith("A") ? `B${short!.slice(1)}` : `A${short!.slice(1)}`;
      const refused = await runChat(
        ["send", `127.0.0.1:${port}`, "--name", "ci", "--no-key", "--fingerprint", other, "hi"],
      );
      equal(refused.code, 1);
      ok(refused.stderr.includes(`fingerprint is ${short}, not the ${other}`), refused.stderr);
    } finally {
      await stopServer(server);
    }
  } finally {
    await Deno.remove(data, { recursive: true });
  }
});

Deno.test({
  name: "interactive client shows a pinned TLS connection in its status bar",
  ignore: !HAS_TMUX,
  async fn() {
    const { cert, key, fingerprint } = await createSelfSignedCertificate([
      "127.0.0.1",
      "localhost",
    ]);
    await using server = await serve({ ...local, tls: { cert, key } });
    await using bob = await connect({
      port: server.addr.port,
      name: "bob",
      tls: { fingerprint },
      identity: await createIdentity(),
    });
    const chat = [Deno.execPath(), "run", "-q", "-P=chat", "--no-prompt", "main.ts", "connect"]
      .concat([`127.0.0.1:${server.addr.port}`, "--name", "alice", "--no-color"])
      .concat(["--fingerprint", shortFingerprint(fingerprint)!])
      .map(shellQuote).join(" ");
    const root = new URL("..", import.meta.url).pathname;
    const script =
      `cd ${shellQuote(root)}; XDG_CONFIG_HOME=${HOME}/config XDG_DATA_HOME=${HOME}/data ` +
      `${chat}; echo "EXIT=$?"; exec sleep 60`;
    await using pane = await TmuxSession.start(`sh -c ${shellQuote(script)}`, {
      columns: 100,
      rows: 20,
    });
    await pane.waitFor(/^ \[1:#lobby\] · alice @ \S+ \(TLS, pinned\) · 2 here/m);
    await pane.type("/whois bob");
    await pane.press("Enter");
    const who = await bob.whois("bob");
    await pane.waitFor(
      new RegExp(
        `bob is online; key ${who.fingerprint!.replace(/[+/]/g, "\\$&")}\\s+\\(${
          shortFingerprint(who.fingerprint!)
        }\\)`,
      ),
    );
    await pane.press("C-c");
    await pane.waitFor(/EXIT=0/);
  },
});

Deno.test("nc users see a key's short fingerprint beside the full one in /whois", async () => {
  const identity = await createIdentity();
  const line = formatFrame({
    type: "ack",
    id: 1,
    name: "alice",
    online: true,
    op: false,
    fingerprint: identity.fingerprint,
  });
  equal(
    line,
    `*** alice is online; key ${identity.fingerprint} (${shortFingerprint(identity.fingerprint)})`,
  );
});
