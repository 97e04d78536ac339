/**
 * The library as another project uses it: a throwaway project in a temporary
 * folder, with its own `deno.json` and none of ours, imports `mod.ts` and
 * `testing.ts` by path, or by URL as from a release, and `deno test`
 * type-checks and runs its tests.
 *
 * The child shares this process's Deno cache, so the npm packages the
 * library pins are already there after this suite's own type check and
 * nothing needs fetching.
 *
 * @module
 */

import { equal } from "node:assert/strict";
import { join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { withFiles } from "./_helpers.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/**
 * A user's project, importing the library from `base`: its own settings, a
 * bot and the bot's tests.
 */
function project(base: string, config: Record<string, unknown>): Record<string, string> {
  return {
    "deno.json": JSON.stringify(
      {
        compilerOptions: { strict: true },
        test: { sanitizeOps: true, sanitizeResources: true },
        ...config,
      },
      null,
      2,
    ),
    "echo_bot.ts": `
import type { ChatClient } from "${base}mod.ts";

/** Repeats "!echo TEXT" to the room, until the client closes. */
export async function echoBot(client: ChatClient): Promise<void> {
  for await (const event of client) {
    if (event.type === "message" && !event.history && event.text.startsWith("!echo ")) {
      await client.send(event.text.slice("!echo ".length), { room: event.room });
    }
  }
}
`,
    "echo_bot_test.ts": `
import { deepEqual, equal, rejects } from "node:assert/strict";
import { join } from "node:path";
import { connect, ProtocolError, serve } from "${base}mod.ts";
import { startChat } from "${base}testing.ts";
import { echoBot } from "./echo_bot.ts";

Deno.test("a message and a direct message", async () => {
  await using server = await serve({ hostname: "127.0.0.1", port: 0 });
  const port = server.addr.port;
  await using alice = await connect({ port, name: "alice" });
  await using bob = await connect({ port, name: "bob" });
  const sent = await alice.send("hello, bob");
  const got = await bob.next("message", { timeout: 10_000 });
  deepEqual([got.from, got.text, got.seq], ["alice", "hello, bob", sent.seq]);
  await alice.dm("bob", "psst");
  equal((await bob.next("dm", { timeout: 10_000 })).text, "psst");
});

Deno.test("TLS with a pinned fingerprint", async () => {
  await using chat = await startChat({ tls: true, clients: ["alice"] });
  const { fingerprint } = chat.tls!;
  await using bob = await connect({ port: chat.port, name: "bob", tls: { fingerprint } });
  await bob.send("over TLS");
  equal((await chat.clients.alice.waitFor("message")).text, "over TLS");
  const other = "SHA256:" + "00:".repeat(31) + "00";
  await rejects(
    connect({ port: chat.port, name: "mallory", tls: { fingerprint: other } }),
    (error: unknown) => error instanceof ProtocolError && error.code === "certificate_changed",
  );
});

Deno.test("a file transfer", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await using chat = await startChat({ clients: ["alice", "bob"] });
    const { alice, bob } = chat.clients;
    const sending = alice.sendFile("bob", new TextEncoder().encode("hello, file"), {
      name: "hello.txt",
    });
    const offer = await bob.waitFor("offer");
    const received = await offer.accept({ dir });
    const sent = await sending;
    equal(received.sha256, sent.sha256);
    deepEqual(sent.to, ["bob"]);
    equal(await Deno.readTextFile(join(dir, "hello.txt")), "hello, file");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the testing entry drives a bot", async () => {
  await using chat = await startChat({ clients: ["alice", "bot"], maxTextLength: 100 });
  const { alice, bot } = chat.clients;
  const running = echoBot(bot);
  await alice.send("!echo hello");
  const reply = await alice.waitFor("message", (message) => message.from === "bot");
  equal(reply.text, "hello");
  deepEqual(alice.transcript(), ["#lobby: bot joined", "#lobby <bot> hello"]);
  await rejects(alice.send("x".repeat(101)), ProtocolError);
  await bot.close();
  await running;
});
`,
  };
}

/** Writes the project into a temporary folder and runs `deno test` there with these flags. */
function testProject(files: Record<string, string>, flags: string[]): Promise<void> {
  return withFiles(files, async (dir) => {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "test",
        "--no-prompt",
        "--allow-net=127.0.0.1,localhost",
        "--allow-read",
        "--allow-write",
        ...flags,
        "echo_bot_test.ts",
      ],
      cwd: dir,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(240_000),
    }).output();
    const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    equal(code, 0, `deno test failed in the other project:\n${output}`);
    equal(/ok \| 4 passed \| 0 failed/.test(output), true, output);
  }, "chat-dependency-");
}

Deno.test("another project imports the library by path, type-checks it and runs its tests", async () => {
  await testProject(project(new URL("..", import.meta.url).href, {}), []);
});

Deno.test("another project imports the library by URL, as from a release", async () => {
  // Served as raw.githubusercontent.com serves a tagged file: as plain text.
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (request) => {
      const path = normalize(join(ROOT, decodeURIComponent(new URL(request.url).pathname)));
      if (!path.startsWith(ROOT)) return new Response("Not found", { status: 404 });
      try {
        const body = await Deno.readFile(path);
        return new Response(body, { headers: { "content-type": "text/plain; charset=utf-8" } });
      } catch {
        return new Response("Not found", { status: 404 });
      }
    },
  );
  const { port } = server.addr;
  // A vendor folder keeps the fetched modules in the project, out of the shared cache.
  await testProject(project(`http://127.0.0.1:${port}/`, { vendor: true }), [
    `--allow-import=127.0.0.1:${port}`,
  ]);
});
