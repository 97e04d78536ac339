import { ok } from "node:assert/strict";
import { assertOneErrorLine, runChat, spawnChat, startServer, stopServer } from "./_cli.ts";

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function serveArgs(data: string): string[] {
  return ["serve", "--host", "127.0.0.1", "--port", "0", "--data", data];
}

Deno.test("a second chat serve on the same --data refuses to start and says who holds it", async () => {
  const dir = await Deno.makeTempDir();
  const data = `${dir}/chat.db`;
  try {
    await using first = spawnChat(serveArgs(data));
    await first.stdout.readUntil(/^Press Ctrl-C to stop\.$/m);
    const second = await runChat(serveArgs(data));
    assertOneErrorLine(
      second,
      new RegExp(
        `^chat: Cannot use "${escape(data)}": another chat server \\(pid \\d+ on ${
          escape(Deno.hostname())
        }\\) is using it$`,
      ),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chat serve with a damaged or unusable --data exits 1 with one line", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/garbage.db`, "not a database ".repeat(1000));
    await Deno.writeTextFile(`${dir}/file`, "");
    const cases: [string, string, RegExp][] = [
      [
        "a file that is not a database",
        `${dir}/garbage.db`,
        /Cannot open the history database ".*garbage\.db": file is not a database; restore it from a backup, or move it away to start a new one$/,
      ],
      [
        "a folder that is a file",
        `${dir}/file/chat.db`,
        /Cannot open the history database ".*": ".*file" is not a folder$/,
      ],
    ];
    if (Deno.build.os === "linux") {
      cases.push([
        "a path the program may not use",
        "/proc/chat.db",
        /^chat: Cannot open the history database "\/proc\/chat\.db": this program is not allowed to use "\/proc"$/,
      ]);
    }
    for (const [what, data, pattern] of cases) {
      await t.step(what, async () => {
        const result = await runChat(serveArgs(data));
        assertOneErrorLine(result, pattern);
        ok(!result.stderr.includes("--allow"), result.stderr);
      });
    }
    if (Deno.build.os === "linux") {
      await t.step("a certificate folder the program may not use", async () => {
        const result = await runChat([...serveArgs("/proc/chat/chat.db"), "--tls"]);
        assertOneErrorLine(
          result,
          /^chat: This program is not allowed to use "\/proc\/chat\/tls-cert\.pem"$/,
        );
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a TLS client meeting a plain port exits 1 with one line", async (t) => {
  const { server, port } = await startServer();
  try {
    const address = `127.0.0.1:${port}`;
    const fingerprint = `SHA256:${Array(32).fill("AB").join(":")}`;
    const cases: string[][] = [
      ["connect", address, "--name", "alice", "--tls"],
      ["connect", address, "--name", "alice", "--fingerprint", fingerprint],
      ["send", address, "--name", "alice", "--tls", "hi"],
      ["send", address, "--name", "alice", "--fingerprint", fingerprint, "hi"],
    ];
    for (const args of cases) {
      await t.step(args.join(" "), async () => {
        const result = await runChat(args, "");
        assertOneErrorLine(
          result,
          new RegExp(
            `^chat: Cannot connect to "127\\.0\\.0\\.1:${port}" over TLS: this port does not speak TLS$`,
          ),
        );
      });
    }
  } finally {
    await stopServer(server);
  }
});

Deno.test("chat serve refuses a bad --irc-server-name with one line", async (t) => {
  const base = ["serve", "--host", "127.0.0.1", "--port", "0", "--data", ":memory:"];
  await t.step("without --irc-port", async () => {
    const result = await runChat([...base, "--irc-server-name", "irc.example.org"]);
    assertOneErrorLine(result, /^chat: --irc-server-name goes with --irc-port; see /, 2);
  });
  await t.step("a name that is no host name", async () => {
    const result = await runChat([...base, "--irc-port", "0", "--irc-server-name", "nodot"]);
    assertOneErrorLine(
      result,
      /^chat: Invalid --irc-server-name "nodot": use a host name with a dot/,
      2,
    );
  });
});
