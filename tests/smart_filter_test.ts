import { equal } from "node:assert/strict";
import { SMART_FILTER_MS, SmartFilter } from "../tui/smart_filter.ts";
import { runChat } from "./_cli.ts";
import { connect, serve } from "../mod.ts";
import { local } from "./_helpers.ts";

const START = Date.parse("2026-11-25T12:00:00Z");

function clock() {
  let now = START;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

const at = (ms: number) => new Date(START + ms).toISOString();

Deno.test("smart filter hides joins, leaves and renames of people who have not spoken", async (t) => {
  const time = clock();
  const filter = new SmartFilter({ now: time.now });
  const ts = at(0);
  await t.step("a stranger's join, leave and rename are hidden", () => {
    equal(filter.shows({ type: "join", room: "#lobby", name: "eve", ts }), false);
    equal(filter.shows({ type: "leave", room: "#lobby", name: "eve", reason: "quit", ts }), false);
    equal(filter.shows({ type: "nick", from: "eve", to: "eva", ts }), false);
  });
  await t.step("someone who spoke is shown, names compared ignoring case", () => {
    filter.observe({ type: "message", room: "#lobby", from: "Bob", text: "hi", ts, seq: 1 });
    equal(filter.shows({ type: "leave", room: "#dev", name: "bob", reason: "part", ts }), true);
  });
  await t.step("a private message counts as speaking", () => {
    filter.observe({ type: "dm", from: "小明", to: "alice", text: "你好", ts });
    equal(filter.shows({ type: "join", room: "#lobby", name: "小明", ts }), true);
  });
  await t.step("a rename carries the time over to the new name", () => {
    const nick = { type: "nick", from: "bob", to: "robert", ts } as const;
    equal(filter.shows(nick), true);
    filter.observe(nick);
    equal(
      filter.shows({ type: "leave", room: "#lobby", name: "robert", reason: "quit", ts }),
      true,
    );
  });
  await t.step("after ten minutes of silence they are hidden again", () => {
    time.advance(SMART_FILTER_MS + 1);
    equal(
      filter.shows({ type: "leave", room: "#lobby", name: "robert", reason: "quit", ts }),
      false,
    );
  });
  await t.step("a replayed message counts at its own time", () => {
    filter.observe({
      type: "message",
      room: "#lobby",
      from: "carol",
      text: "old",
      ts: at(0),
      seq: 2,
      history: true,
    });
    equal(filter.shows({ type: "join", room: "#lobby", name: "carol", ts }), false);
    filter.observe({
      type: "message",
      room: "#lobby",
      from: "dave",
      text: "recent",
      ts: at(SMART_FILTER_MS),
      seq: 3,
      history: true,
    });
    equal(filter.shows({ type: "join", room: "#lobby", name: "dave", ts }), true);
  });
  await t.step("kicks and bans are always shown", () => {
    equal(filter.shows({ type: "leave", room: "#lobby", name: "eve", reason: "kicked", ts }), true);
    equal(filter.shows({ type: "leave", room: "#lobby", name: "eve", reason: "banned", ts }), true);
  });
  await t.step("switched off, everything is shown; messages always are", () => {
    equal(
      filter.shows({ type: "message", room: "#lobby", from: "eve", text: "x", ts, seq: 9 }),
      true,
    );
    filter.enabled = false;
    equal(filter.shows({ type: "join", room: "#lobby", name: "eve", ts }), true);
  });
});

Deno.test("a transient session's joins and leaves are not announced, but it is listed and heard", async () => {
  await using server = await serve(local);
  const port = server.addr.port;
  await using alice = await connect({ port, name: "alice" });
  await alice.join("#dev");
  {
    await using once = await connect({ port, name: "once", transient: true });
    equal((await alice.who({ room: "#lobby" })).includes("once"), true);
    await once.join("#dev");
    await once.send("deploy done", { room: "#dev" });
    await once.leave("#dev");
    const message = await alice.next("message", { timeout: 5000 });
    equal(message.text, "deploy done");
  }
  // The next presence alice sees is carol's: nothing came of the transient session.
  await using carol = await connect({ port, name: "carol" });
  const join = await alice.next("join", { timeout: 5000 });
  equal(join.name, "carol");
  await carol.close();
  const leave = await alice.next("leave", { timeout: 5000 });
  equal(leave.name, "carol");
});

Deno.test("chat send does not announce itself to the room", async () => {
  await using server = await serve(local);
  const port = server.addr.port;
  await using alice = await connect({ port, name: "alice" });
  const result = await runChat(
    ["send", `127.0.0.1:${port}`, "--name", "cron", "--no-key", "backup finished"],
  );
  equal(result.code, 0, result.stderr);
  const message = await alice.next("message", { timeout: 5000 });
  equal([message.from, message.text].join(" "), "cron backup finished");
  await using _carol = await connect({ port, name: "carol" });
  const join = await alice.next("join", { timeout: 5000 });
  equal(join.name, "carol");
});
