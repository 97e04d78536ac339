import { deepEqual, equal, ok } from "node:assert/strict";
import { notice } from "../tui/entries.ts";
import { createStyle } from "../tui/style.ts";
import { composeFrame } from "../tui/screen.ts";
import { displayWidth } from "../tui/width.ts";
import { MAX_WINDOW_ENTRIES, MAX_WINDOW_NAME_COLUMNS, Windows } from "../tui/windows.ts";

const style = createStyle(false);
const line = (text: string) => notice(style, text);
const MARKER = "new messages";
const make = () => new Windows(() => line(MARKER));
const bodies = (windows: Windows, target: string) =>
  windows.find(target)!.log.map((entry) => entry.body);

Deno.test("windows start with one empty window that the first room takes over", () => {
  const windows = make();
  deepEqual(windows.list.map((window) => window.target), [""]);
  windows.add(undefined, line("welcome"));
  windows.open("#lobby");
  deepEqual(windows.list.map((window) => window.target), ["#lobby"]);
  deepEqual(bodies(windows, "#lobby"), ["welcome"]);
  equal(windows.bar(), "[1:#lobby]");
});

Deno.test("windows switch by number and step round the ends", async (t) => {
  const windows = make();
  for (const target of ["#lobby", "#dev", "bob"]) windows.open(target);
  await t.step("by number", () => {
    ok(windows.focusIndex(2));
    equal(windows.current.target, "bob");
    ok(!windows.focusIndex(2), "the window shown already");
    ok(!windows.focusIndex(7), "no such window");
    equal(windows.current.target, "bob");
  });
  await t.step("next and previous, round the ends", () => {
    windows.step(1);
    equal(windows.current.target, "#lobby");
    windows.step(-1);
    equal(windows.current.target, "bob");
    windows.step(-1);
    equal(windows.current.target, "#dev");
  });
  await t.step("names match ignoring case", () => {
    equal(windows.find("BOB"), windows.list[2]);
    equal(windows.open("Bob"), windows.list[2]);
    equal(windows.list.length, 3);
  });
});

Deno.test("windows mark new messages and mentions differently, and clear them when seen", () => {
  const windows = make();
  windows.open("#lobby");
  windows.open("#dev");
  windows.open("bob");
  windows.add("#dev", line("joined"), "none");
  equal(windows.bar(), "[1:#lobby]");
  windows.add("#dev", line("hello"), "messages");
  equal(windows.bar(), "[1:#lobby] 2:#dev+");
  windows.add("bob", line("psst"), "mention");
  windows.add("#dev", line("hi alice"), "mention");
  windows.add("#dev", line("later"), "messages");
  equal(windows.bar(), "[1:#lobby] 2:#dev! 3:bob!");
  equal(windows.current.activity, "none");
  windows.add("#lobby", line("seen at once"), "mention");
  equal(windows.current.activity, "none");
  windows.focusIndex(1);
  equal(windows.bar(), "[2:#dev] 3:bob!");
});

Deno.test("windows put one new-messages line where the user left each window", () => {
  const windows = make();
  windows.open("#lobby");
  windows.open("#dev");
  windows.add("#lobby", line("one"), "messages");
  windows.focusIndex(1);
  windows.add("#lobby", line("joined"), "none");
  windows.add("#lobby", line("two"), "messages");
  windows.add("#lobby", line("three"), "messages");
  deepEqual(bodies(windows, "#lobby"), ["one", "joined", MARKER, "two", "three"]);
  // Coming back keeps the line; leaving again moves it to the next unseen entry.
  windows.focusIndex(0);
  windows.add("#lobby", line("four"), "messages");
  deepEqual(bodies(windows, "#lobby"), ["one", "joined", MARKER, "two", "three", "four"]);
  windows.focusIndex(1);
  deepEqual(bodies(windows, "#lobby"), ["one", "joined", "two", "three", "four"]);
  windows.add("#lobby", line("five"), "messages");
  deepEqual(bodies(windows, "#lobby"), ["one", "joined", "two", "three", "four", MARKER, "five"]);
  // A window opened while the user looks elsewhere has nothing seen to mark.
  windows.add("carol", line("hi"), "mention");
  deepEqual(bodies(windows, "carol"), ["hi"]);
});

Deno.test("windows close to the one before, and leave an empty one after the last", () => {
  const windows = make();
  for (const target of ["#lobby", "#dev", "bob", "#ops"]) windows.open(target);
  windows.focusIndex(3);
  windows.close("#dev");
  equal(windows.current.target, "#ops");
  equal(windows.index, 2);
  windows.close("#ops");
  equal(windows.current.target, "bob");
  windows.close("#lobby");
  equal(windows.current.target, "bob");
  equal(windows.index, 0);
  equal(windows.close("nobody"), undefined);
  windows.current.draft = "half typed";
  windows.close("bob");
  deepEqual(windows.list.map((window) => window.target), [""]);
  equal(windows.current.draft, "half typed");
  equal(windows.bar(), "[1:(no room)]");
});

Deno.test("windows list wide names by their width in columns", () => {
  const windows = make();
  windows.open("#lobby");
  windows.add("小明", line("你好"), "mention");
  windows.add("#中文频道", line("大家好"), "messages");
  windows.add("🐱🐱🐱🐱🐱🐱🐱🐱🐱🐱🐱🐱", line("meow"), "mention");
  windows.add("#控制\u001b[31m", line("x"), "messages");
  const bar = windows.bar();
  equal(bar.split(" ")[1], "2:小明!");
  equal(bar.split(" ")[2], "3:#中文频道+");
  const cats = bar.split(" ")[3]!;
  ok(cats.endsWith("…!"), cats);
  equal(displayWidth(cats.slice(2, -1)), MAX_WINDOW_NAME_COLUMNS - 1);
  ok(!bar.includes("\u001b"), "names are sanitised");
});

Deno.test("windows keep at most MAX_WINDOW_ENTRIES entries each", () => {
  const windows = make();
  windows.open("#lobby");
  for (let i = 0; i < MAX_WINDOW_ENTRIES + 10; i++) windows.add("#lobby", line(`${i}`), "messages");
  equal(windows.current.log.length, MAX_WINDOW_ENTRIES);
  equal(windows.current.log[0]!.body, "10");
});

Deno.test("windows of private conversations follow a rename", () => {
  const windows = make();
  windows.open("#lobby");
  const window = windows.open("bob");
  ok(window.isPrivate);
  ok(!windows.list[0]!.isPrivate);
  window.rename("robert");
  equal(windows.find("robert"), window);
  equal(windows.find("bob"), undefined);
});

Deno.test("the status bar can style its parts without changing its width", () => {
  const colour = createStyle(true);
  const frame = composeFrame({
    columns: 30,
    rows: 3,
    log: [],
    scroll: 0,
    status: "[1:#lobby] 2:#dev+ 3:小明! · alice @ 127.0.0.1:7777",
    styleStatus: (text) => text.replace("3:小明!", colour.mention("3:小明!")),
    input: { lines: ["> "], cursorRow: 0, cursorColumn: 2 },
    style: colour,
  });
  const bar = frame.lines[1]!;
  ok(bar.includes(colour.mention("3:小明!")), bar);
  // deno-lint-ignore no-control-regex
  equal(displayWidth(bar.replace(/\x1b\[[0-9;]*m/g, "")), 30);
});
