import { equal, match } from "node:assert/strict";
import { ChatLog, logDay, logEntry, logFolder } from "../tui/chat_log.ts";
import { connect, serve } from "../mod.ts";
import { local, withTempDir } from "./_helpers.ts";
import { runChat } from "./_cli.ts";

const ts = "2026-11-25T12:00:00.000Z";
const day = logDay(ts)!;

Deno.test("log files are named by room or person and local day, safe on every system", async (t) => {
  await t.step("rooms keep their #, people their name, both in lower case", () => {
    equal(logFolder("#Dev"), "#dev");
    equal(logFolder("小明"), "小明");
    equal(logFolder("Bob"), "bob");
  });
  await t.step("nothing a server sends escapes the folder", () => {
    equal(logFolder("../../etc"), "___.._etc");
    equal(logFolder(".."), "__");
    equal(logFolder("a/b\\c:d"), "a_b_c_d");
    equal(logFolder("\u001b[31m"), "__31m");
    equal(logFolder("CON"), "_con");
    equal(logFolder(""), "_");
    equal(logFolder("x".repeat(300)).length, 64);
  });
  await t.step("the day is the local day of the time stamp", () => {
    match(day, /^\d{4}-\d\d-\d\d$/);
    equal(logDay("not a time"), undefined);
  });
});

Deno.test("log entries: messages by room, private messages by the other person, no replays", () => {
  const message = { type: "message", room: "#dev", from: "bob", text: "hi", ts, seq: 1 } as const;
  equal(logEntry(message, "alice")?.path, `#dev/${day}.log`);
  match(logEntry(message, "alice")!.line, /^\[\d\d:\d\d:\d\d\] <bob> hi$/);
  equal(logEntry({ ...message, history: true }, "alice"), undefined);
  const incoming = { type: "dm", from: "Bob", to: "alice", text: "psst", ts } as const;
  equal(logEntry(incoming, "alice")?.path, `bob/${day}.log`);
  const outgoing = { type: "dm", from: "alice", to: "Bob", text: "yes?", ts } as const;
  equal(logEntry(outgoing, "alice")?.path, `bob/${day}.log`);
  const join = { type: "join", room: "#dev", name: "carol", ts } as const;
  match(logEntry(join, "alice")!.line, /-> carol joined #dev$/);
  const hostile = { ...message, text: "\u001b]0;pwned\u0007" };
  match(logEntry(hostile, "alice")!.line, /<bob> \^\[\]0;pwned\^G$/);
  equal(logEntry({ type: "ping" } as never, "alice"), undefined);
});

Deno.test("a log folder gets one file per room and day, appended in order", async () => {
  await withTempDir(async (dir) => {
    const errors: Error[] = [];
    const log = new ChatLog(`${dir}/logs/`, (error) => errors.push(error));
    for (let i = 1; i <= 3; i++) {
      log.write({ type: "message", room: "#dev", from: "bob", text: `m${i}`, ts, seq: i }, "alice");
    }
    log.write({ type: "dm", from: "小明", to: "alice", text: "你好", ts }, "alice");
    await log.flush();
    const dev = await Deno.readTextFile(`${dir}/logs/#dev/${day}.log`);
    equal(
      dev.split("\n").map((line) => line.replace(/^\S+ /, "")).join("|"),
      "<bob> m1|<bob> m2|<bob> m3|",
    );
    match(await Deno.readTextFile(`${dir}/logs/小明/${day}.log`), /\[private\] <小明> 你好\n$/);
    if (Deno.build.os !== "windows") {
      equal((await Deno.stat(`${dir}/logs/#dev/${day}.log`)).mode! & 0o777, 0o600);
    }
    equal(errors.length, 0);
    // A folder that cannot be made is reported once, and nothing else breaks.
    await Deno.writeTextFile(`${dir}/file`, "");
    const broken = new ChatLog(`${dir}/file`, (error) => errors.push(error));
    broken.write({ type: "message", room: "#dev", from: "bob", text: "x", ts, seq: 9 }, "alice");
    broken.write({ type: "message", room: "#dev", from: "bob", text: "y", ts, seq: 10 }, "alice");
    await broken.flush();
    equal(errors.length, 1);
  });
});

Deno.test("chat connect --log writes what was sent, by room and conversation", async () => {
  await using server = await serve(local);
  const port = server.addr.port;
  await using bob = await connect({ port, name: "bob" });
  await withTempDir(async (dir) => {
    const result = await runChat(
      ["connect", `127.0.0.1:${port}`, "--name", "alice", "--no-key", "--log", dir],
      "hello logs\n/msg bob psst\n",
    );
    equal(result.code, 0, result.stderr);
    await bob.next("dm", { timeout: 5000 });
    const today = logDay(new Date().toISOString())!;
    match(await Deno.readTextFile(`${dir}/#lobby/${today}.log`), /\] <alice> hello logs\n/);
    match(await Deno.readTextFile(`${dir}/bob/${today}.log`), /\] \[private\] <alice> psst\n/);
  });
});
