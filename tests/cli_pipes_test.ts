import { deepEqual, equal, match, ok } from "node:assert/strict";
import { connect } from "../mod.ts";
import { runChat, spawnChat, startServer, stopServer } from "./_cli.ts";

Deno.test("chat connect --json prints one JSON object per event", async () => {
  const { server, port } = await startServer();
  try {
    await using watcher = spawnChat(
      ["connect", `127.0.0.1:${port}`, "--name", "watcher", "--json"],
      {
        stdin: "piped",
      },
    );
    await watcher.stderr.readUntil(/Connected to/);
    await using alice = await connect({ port, name: "alice" });
    await alice.send("hello \u001b[31m中文");
    await alice.dm("watcher", "psst", { action: true });
    const [line] = await watcher.stdout.readUntil(/"type":"dm".*\n/);
    ok(line);
    await watcher.closeStdin();
    const result = await watcher.exit();
    equal(result.code, 0, result.stderr);
    const events = result.stdout.trimEnd().split("\n").map((text) => JSON.parse(text));
    const message = events.find((event) => event.type === "message");
    deepEqual([message.from, message.text, message.room, typeof message.seq], [
      "alice",
      "hello \u001b[31m中文",
      "#lobby",
      "number",
    ]);
    const dm = events.find((event) => event.type === "dm");
    deepEqual([dm.from, dm.to, dm.text, dm.action], ["alice", "watcher", "psst", true]);
    ok(events.every((event) => typeof event.type === "string"));
  } finally {
    await stopServer(server);
  }
});

Deno.test("chat send delivers its words, or stdin lines, and exits by what was accepted", async (t) => {
  const { server, port } = await startServer("--max-text", "20");
  try {
    await using bob = await connect({ port, name: "bob" });
    const send = (args: string[], stdin?: string) =>
      runChat(["send", `127.0.0.1:${port}`, ...args], stdin);
    await t.step("words make one message", async () => {
      const result = await send(["--name", "ci", "build", "42", "passed ✅"]);
      equal(result.code, 0, result.stderr);
      const message = await bob.next("message", { timeout: 5000 });
      deepEqual([message.from, message.text], ["ci", "build 42 passed ✅"]);
    });
    await t.step("every stdin line is a message", async () => {
      const result = await send(["--name", "log"], "line one\r\n\nline 二\n");
      equal(result.code, 0, result.stderr);
      deepEqual((await bob.next("message", { timeout: 5000 })).text, "line one");
      deepEqual((await bob.next("message", { timeout: 5000 })).text, "line 二");
    });
    await t.step("a refused message exits 1 and says why", async () => {
      const result = await send(["--name", "log"], "fine\n" + "x".repeat(30) + "\n");
      equal(result.code, 1);
      match(result.stderr, /longer than 20 characters/);
      match(result.stderr, /1 of 2 messages were not accepted/);
      deepEqual((await bob.next("message", { timeout: 5000 })).text, "fine");
    });
    await t.step("another room is joined first", async () => {
      await bob.join("#builds");
      const result = await send(["--name", "ci", "--room", "#builds", "green"]);
      equal(result.code, 0, result.stderr);
      const message = await bob.next("message", { timeout: 5000 });
      deepEqual([message.room, message.text], ["#builds", "green"]);
    });
    await t.step("an invalid room exits 1", async () => {
      const result = await send(["--name", "ci", "--room", "no room", "hi"]);
      equal(result.code, 1);
      match(result.stderr, /not valid/);
    });
    await t.step("a taken name exits 1", async () => {
      const result = await send(["--name", "bob", "hi"]);
      equal(result.code, 1);
      match(result.stderr, /taken/);
    });
  } finally {
    await stopServer(server);
  }
});

Deno.test("piped chat connect prints commands' results as plain lines", async () => {
  const { server, port } = await startServer();
  try {
    await using bob = await connect({ port, name: "bob" });
    const result = await runChat(
      ["connect", `127.0.0.1:${port}`, "--name", "alice"],
      "/who\n/nick alicia\n/msg bob 你好\n/bogus\n",
    );
    equal(result.code, 0, result.stderr);
    match(result.stdout, /\*\*\* In #lobby: alice, bob/);
    match(result.stdout, /You are now known as alicia/);
    match(result.stderr, /Unknown command "\/bogus"/);
    ok(!result.stdout.includes("\u001b["), "no escape sequences in a pipe");
    deepEqual((await bob.next("dm", { timeout: 5000 })).from, "alicia");
  } finally {
    await stopServer(server);
  }
});

Deno.test("chat send paces a long pipe to the server's rate: every line arrives, in order", async () => {
  const { server, port } = await startServer("--rate-limit", "100", "--rate-burst", "10");
  try {
    await using bob = await connect({ port, name: "bob" });
    const lines = Array.from({ length: 200 }, (_, i) => `line ${i + 1}`);
    const result = await runChat(
      ["send", `127.0.0.1:${port}`, "--name", "piper", "--no-key"],
      lines.join("\n") + "\n",
    );
    equal(result.code, 0, result.stderr);
    const seen: string[] = [];
    while (seen.length < lines.length) {
      const message = await bob.next("message", { timeout: 5000 });
      if (message.from === "piper") seen.push(message.text);
    }
    deepEqual(seen, lines);
  } finally {
    await stopServer(server);
  }
});

Deno.test("piped chat connect leaves rooms and the chat with the reasons typed", async () => {
  const { server, port } = await startServer();
  try {
    await using bob = await connect({ port, name: "bob" });
    await bob.join("#dev");
    const result = await runChat(
      ["connect", `127.0.0.1:${port}`, "--name", "alice"],
      "/join #dev\n/leave #dev back later\n/quit gone home\n",
    );
    equal(result.code, 0, result.stderr);
    const parted = await bob.next("leave", { timeout: 5000 });
    deepEqual([parted.room, parted.reason, parted.message], ["#dev", "part", "back later"]);
    const quit = await bob.next("leave", { timeout: 5000 });
    deepEqual([quit.room, quit.reason, quit.message], ["#lobby", "quit", "gone home"]);
  } finally {
    await stopServer(server);
  }
});
