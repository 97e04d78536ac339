import { deepEqual, equal } from "node:assert/strict";
import { IgnoreList, MAX_IGNORED } from "../tui/ignore.ts";
import { SmartFilter } from "../tui/smart_filter.ts";

const ts = "2026-11-25T12:00:00.000Z";

Deno.test("ignore list hides messages, actions, private messages, offers and presence", () => {
  const list = new IgnoreList();
  equal(list.add("Bob"), "added");
  equal(list.add("bob"), "already");
  const hidden = [
    { type: "message", room: "#lobby", from: "bob", text: "x", ts, seq: 1 },
    { type: "message", room: "#lobby", from: "BOB", text: "waves", ts, seq: 2, action: true },
    { type: "dm", from: "bob", to: "alice", text: "x", ts },
    { type: "join", room: "#lobby", name: "bob", ts },
    { type: "leave", room: "#lobby", name: "bob", reason: "quit", ts },
    { type: "nick", from: "bob", to: "bobby", ts },
    {
      type: "offer",
      transfer: "t",
      from: "bob",
      to: "alice",
      name: "f",
      size: 1,
      mime: "text/plain",
      sha256: "0".repeat(64),
      expires: ts,
      accept: () => Promise.reject(new Error("no")),
      decline: () => Promise.resolve(),
    },
  ] as const;
  for (const event of hidden) equal(list.hides(event as never), true, JSON.stringify(event));
  equal(
    list.hides({ type: "message", room: "#lobby", from: "carol", text: "x", ts, seq: 3 }),
    false,
  );
  equal(list.remove("BOB"), true);
  equal(list.remove("bob"), false);
  equal(list.hides({ type: "dm", from: "bob", to: "alice", text: "x", ts }), false);
});

Deno.test("ignore list file: one name per line, comments and junk skipped", () => {
  const list = IgnoreList.parse("# people\nbob\r\n\n  小明  \nnot a name\nBOB\n");
  deepEqual(list.names, ["bob", "小明"]);
  equal(list.format(), "bob\n小明\n");
  equal(list.add("\u001b[31m"), "invalid");
});

Deno.test("ignore list holds at most MAX_IGNORED names", () => {
  const list = new IgnoreList();
  for (let i = 0; i < MAX_IGNORED; i++) equal(list.add(`user${i}`), "added");
  equal(list.add("onemore"), "full");
});

Deno.test("ignore list and smart filter hide the away changes of whom they hide", () => {
  const list = new IgnoreList();
  list.add("bob");
  equal(list.hides({ type: "away", name: "Bob", message: "lunch", ts }), true);
  equal(list.hides({ type: "away", name: "carol", message: "lunch", ts }), false);
  const filter = new SmartFilter({ now: () => Date.parse(ts) });
  equal(filter.shows({ type: "away", name: "eve", message: "lunch", ts }), false);
  filter.observe({ type: "message", room: "#lobby", from: "eve", text: "hi", ts, seq: 1 });
  equal(filter.shows({ type: "away", name: "eve", message: "", ts }), true);
});
