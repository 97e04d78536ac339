import assert from "node:assert/strict";
import type { ChatEvent } from "../client.ts";
import { entryFor, layout } from "../tui/entries.ts";
import { createStyle } from "../tui/style.ts";
import { displayWidth } from "../tui/width.ts";

const ts = "2026-11-21T21:06:45.000Z";

// deno-lint-ignore no-control-regex
const SGR = /\x1b\[[0-9;]*m/g;

const EVENTS: [string, ChatEvent][] = [
  ["a private message in Chinese", {
    type: "dm",
    from: "bob",
    to: "alice",
    text: "这是一条很长的私聊消息，需要换行显示才行",
    ts,
  }],
  ["a message with its room, from a long name", {
    type: "message",
    room: "#development",
    from: "carol_the_reviewer",
    text: "hi from carol, this is a long message that wraps",
    ts,
    seq: 1,
  }],
  ["a private action", {
    type: "dm",
    from: "dave",
    to: "alice",
    text: "waves from far away 👋🏽 and smiles",
    ts,
    action: true,
  }],
  ["a message of several lines", {
    type: "message",
    room: "#lobby",
    from: "bob",
    text: "first line\n第二行很长很长很长很长很长\nthird",
    ts,
    seq: 2,
  }],
];

Deno.test("layout() never makes a row wider than the terminal and loses no text", async (t) => {
  for (const color of [false, true]) {
    const style = createStyle(color);
    for (const [name, event] of EVENTS) {
      await t.step(`${name}${color ? ", in colour" : ""}`, () => {
        const entry = entryFor(event, { self: "alice", style, manyRooms: true })!;
        const plainPrefix = entry.prefix.replace(SGR, "");
        for (let columns = 2; columns <= 90; columns++) {
          const rows = layout(entry, columns).map((row) => row.replace(SGR, ""));
          for (const row of rows) {
            assert.ok(
              displayWidth(row) <= columns,
              `${JSON.stringify(row)} is wider than ${columns} columns`,
            );
          }
          if (columns < displayWidth(plainPrefix)) continue;
          const shown = rows.join("").replace(/\s/g, "");
          assert.equal(
            shown,
            (plainPrefix + entry.body).replace(/\s/g, ""),
            `text lost at ${columns} columns:\n${rows.join("\n")}`,
          );
        }
      });
    }
  }
});

Deno.test("layout() keeps the body beside the prefix when there is room, under it otherwise", () => {
  const style = createStyle(false);
  const entry = entryFor(EVENTS[0]![1], { self: "alice", style })!;
  const time = entry.prefix.slice(0, 8);
  assert.deepEqual(layout(entry, 34), [
    `${time} [private] <bob> `,
    "  这是一条很长的私聊消息，需要换行",
    "  显示才行",
  ]);
  assert.deepEqual(layout(entry, 66), [
    `${time} [private] <bob> 这是一条很长的私聊消息，需要换行显示才行`,
  ]);
  assert.deepEqual(layout(entry, 40), [
    `${time} [private] <bob> 这是一条很长的`,
    "  私聊消息，需要换行显示才行",
  ]);
});

Deno.test("a leave with a reason shows the reason after why", () => {
  const style = createStyle(false);
  const entry = entryFor(
    { type: "leave", room: "#lobby", name: "bob", reason: "quit", message: "gone home", ts },
    { self: "alice", style },
  );
  const text = entry === undefined ? "" : layout(entry, 80).join("\n").replace(SGR, "");
  assert.match(text, /← bob left #lobby \(quit: gone home\)$/);
});

Deno.test("a notice reads -name-, in a room and in private", () => {
  const style = createStyle(false);
  const show = (event: ChatEvent) => {
    const entry = entryFor(event, { self: "alice", style });
    return entry === undefined ? "" : layout(entry, 80).join("\n").replace(SGR, "");
  };
  const message = { type: "message", room: "#lobby", from: "bot", text: "done", ts, seq: 1 };
  assert.match(show({ ...message, notice: true } as ChatEvent), / -bot- done$/);
  assert.match(show(message as ChatEvent), / <bot> done$/);
  assert.match(
    show({ type: "dm", from: "bot", to: "alice", text: "done", ts, notice: true }),
    /\[private\] -bot- done$/,
  );
});

Deno.test("away changes read as someone going away or coming back", () => {
  const style = createStyle(false);
  const show = (message: string) => {
    const entry = entryFor({ type: "away", name: "bob", message, ts }, { self: "alice", style });
    return entry === undefined ? "" : layout(entry, 80).join("\n").replace(SGR, "");
  };
  assert.match(show("lunch"), / bob is away: lunch$/);
  assert.match(show(""), / bob is back$/);
});
