import { deepEqual, equal, match, ok } from "node:assert/strict";
import denoConfig from "../deno.json" with { type: "json" };
import { connect } from "../mod.ts";
import { assertOneErrorLine, runChat, spawnChat, startServer, stopServer } from "./_cli.ts";

const VERSION = denoConfig.version;
const EVENT_TIMEOUT = 10_000;

Deno.test("chat --version prints the version, the runtime and the target", async () => {
  const result = await runChat(["--version"]);
  equal(result.code, 0);
  equal(result.stdout, `chat ${VERSION} (deno ${Deno.version.deno}, ${Deno.build.target})\n`);
  equal(result.stderr, "");
});

Deno.test("chat --help and each command's --help exit 0 and list their options", async (t) => {
  const cases: Array<[string[], string[]]> = [
    [["--help"], ["chat serve", "chat connect", "--version", "--help"]],
    [["serve", "--help"], ["--host", "--port", "--max-frame-bytes", "--max-text", "--help"]],
    [["serve", "-h"], ["--host", "--port"]],
    [["connect", "--help"], ["HOST[:PORT]", "--name", "--help", "/msg", "/quit"]],
  ];
  const results = await Promise.all(cases.map(([args]) => runChat(args)));
  for (const [i, [args, expected]] of cases.entries()) {
    await t.step(`chat ${args.join(" ")}`, () => {
      const result = results[i]!;
      equal(result.code, 0, result.stderr);
      equal(result.stderr, "");
      for (const text of expected) ok(result.stdout.includes(text), `no ${text} in help`);
    });
  }
});

Deno.test("chat exits 2 with one line and no stack trace on a bad command line", async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [["--bogus"], /Unknown option "--bogus"/],
    [["frobnicate"], /Unknown command "frobnicate"/],
    [["serve", "--bogus"], /Unknown option "--bogus"/],
    [["serve", "--port", "99999"], /"99999"/],
    [["serve", "--port", "http"], /"http"/],
    [["serve", "--port"], /--port/],
    [["serve", "--max-text", "0"], /--max-text/],
    [["serve", "extra"], /Unexpected argument "extra"/],
    [["connect", "--bogus"], /Unknown option "--bogus"/],
    [["connect", "127.0.0.1:notaport", "--name", "alice"], /"notaport"/],
  ];
  const results = await Promise.all(cases.map(([args]) => runChat(args)));
  for (const [i, [args, pattern]] of cases.entries()) {
    await t.step(`chat ${args.join(" ")}`, () => {
      const result = results[i]!;
      assertOneErrorLine(result, pattern, 2);
    });
  }
});

Deno.test({
  name: "chat connect --name without a value names the --name option",
  async fn() {
    const result = await runChat(["connect", "--name"]);
    assertOneErrorLine(result, /Option "--name" needs a value/, 2);
  },
});

Deno.test({
  name: "chat serve --help=yes says --help takes no value",
  async fn() {
    const result = await runChat(["serve", "--help=yes"]);
    assertOneErrorLine(result, /"--help".*(takes no value|does not take)/, 2);
  },
});

Deno.test("chat connect with two addresses gives the help hint once", async () => {
  const result = await runChat(["connect", "a", "b", "--name", "alice"]);
  assertOneErrorLine(result, /Unexpected argument "b"/, 2);
  equal(result.stderr.split('see "chat connect --help"').length, 2, result.stderr);
});

Deno.test("chat connect to a closed port exits 1 with one line", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  const result = await runChat(["connect", `127.0.0.1:${port}`, "--name", "alice"], "hi\n");
  assertOneErrorLine(result, new RegExp(`Cannot connect to "127\\.0\\.0\\.1:${port}"`));
  equal(result.stdout, "");
});

Deno.test("chat serve on a port already in use exits 1 with one line", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  const result = await runChat([
    "serve",
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "--data",
    ":memory:",
  ]);
  assertOneErrorLine(result, /address already in use/);
  ok(result.stderr.includes(String(port)), result.stderr);
});

Deno.test("chat serve and chat connect talk to each other and to the library", async (t) => {
  const { server, port } = await startServer();
  const address = `127.0.0.1:${port}`;
  try {
    await t.step("piped chat connect sends a message and an action, then quits", async () => {
      await using bob = await connect({ hostname: "127.0.0.1", port, name: "bob" });
      const alice = await runChat(
        ["connect", address, "--name", "alice"],
        "hello 世界\n/me waves\n",
      );
      equal(alice.code, 0, alice.stderr);
      equal(alice.stderr, "");
      match(alice.stdout, new RegExp(`Connected to 127\\.0\\.0\\.1:${port} as alice .*bob`));

      const message = await bob.next("message", { timeout: EVENT_TIMEOUT });
      deepEqual([message.from, message.text, message.action], ["alice", "hello 世界", undefined]);
      const action = await bob.next("message", { timeout: EVENT_TIMEOUT });
      deepEqual([action.from, action.text, action.action], ["alice", "waves", true]);
      const leave = await bob.next("leave", { timeout: EVENT_TIMEOUT });
      deepEqual([leave.name, leave.reason], ["alice", "quit"]);
    });

    await t.step("chat connect with a name that is taken exits 1 with one line", async () => {
      await using _bob = await connect({ hostname: "127.0.0.1", port, name: "bob" });
      const result = await runChat(["connect", address, "--name", "bob"], "hi\n");
      assertOneErrorLine(result, /"bob".*taken/);
    });

    await t.step("a second chat connect's line reaches the first one", async () => {
      await using dave = spawnChat(["connect", address, "--name", "dave"], { stdin: "piped" });
      await dave.stdout.readUntil(/Connected to .* as dave\b/);

      const erin = await runChat(["connect", address, "--name", "erin"], "line from erin\n");
      equal(erin.code, 0, erin.stderr);
      match(erin.stdout, /as erin .*dave/);

      await dave.stdout.readUntil(/<erin> line from erin$/m);
      const result = await dave.exit();
      equal(result.code, 0, result.stderr);
      equal(result.stderr, "");
    });

    await t.step("the server logs who joins and leaves", async () => {
      const watcher = await connect({ hostname: "127.0.0.1", port, name: "watcher" });
      await watcher.close();
      await server.stdout.readUntil(/watcher joined from /);
      await server.stdout.readUntil(/watcher left \(quit\)/);
    });
  } finally {
    await stopServer(server).finally(() => server[Symbol.asyncDispose]());
  }
});

Deno.test("piped chat connect exits 1 when the server refuses a message as too long", async () => {
  const { server, port } = await startServer("--max-text", "10");
  try {
    await using observer = await connect({ hostname: "127.0.0.1", port, name: "observer" });
    const result = await runChat(
      ["connect", `127.0.0.1:${port}`, "--name", "carol"],
      "short\nthis message is longer than ten characters\n",
    );
    assertOneErrorLine(result, /longer than 10 characters/);
    const message = await observer.next("message", { timeout: EVENT_TIMEOUT });
    deepEqual([message.from, message.text], ["carol", "short"]);
    const leave = await observer.next("leave", { timeout: EVENT_TIMEOUT });
    deepEqual([leave.name, leave.reason], ["carol", "quit"]);
  } finally {
    await stopServer(server).finally(() => server[Symbol.asyncDispose]());
  }
});

Deno.test("chat serve stopped as soon as it says Ctrl-C stops it exits cleanly", async () => {
  const { server } = await startServer("--no-web");
  await server.stdout.readUntil(/Press Ctrl-C to stop\./);
  await stopServer(server);
});
