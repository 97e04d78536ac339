import { equal, notEqual, ok } from "node:assert/strict";
import { colorDepth, createStyle, NAME_COLOURS_256, nameHash } from "../tui/style.ts";

const NAMES = ["alice", "bob", "carol", "dave", "eve", "小明", "小红", "mallory", "jane", "tom"];

Deno.test("name colours are stable per name and ignore letter case", () => {
  for (const colors of [16, 256] as const) {
    const style = createStyle(true, { colors });
    equal(style.name("bob"), style.name("bob"));
    equal(style.name("Bob").replace("Bob", "bob"), style.name("bob"));
  }
  equal(nameHash("Alice", 77), nameHash("alice", 77));
});

Deno.test("bob and 小明 get different colours, in 16 and in 256 colours", () => {
  for (const colors of [16, 256] as const) {
    const style = createStyle(true, { colors });
    notEqual(style.name("bob").replace("bob", ""), style.name("小明").replace("小明", ""));
  }
});

Deno.test("ten everyday names get ten colours in 256 colours, and most of them in 16", () => {
  const style256 = createStyle(true, { colors: 256 });
  const style16 = createStyle(true, { colors: 16 });
  const colours = (style: ReturnType<typeof createStyle>) =>
    new Set(NAMES.map((name) => style.name(name).replace(name, ""))).size;
  equal(colours(style256), NAMES.length);
  ok(colours(style16) >= 8, `${colours(style16)}`);
  // 256-colour names use the palette's escape, and end by resetting only the colour.
  // deno-lint-ignore no-control-regex
  ok(/^\x1b\[38;5;\d+mbob\x1b\[39m$/.test(style256.name("bob")));
  ok(NAME_COLOURS_256.every((n) => Number.isInteger(n) && n >= 16 && n <= 231));
});

Deno.test("without colour, names are left as they are", () => {
  equal(createStyle(false, { colors: 256 }).name("bob"), "bob");
});

Deno.test("colour depth follows COLORTERM and TERM", async (t) => {
  const saved = { COLORTERM: Deno.env.get("COLORTERM"), TERM: Deno.env.get("TERM") };
  const set = (key: string, value: string | undefined) =>
    value === undefined ? Deno.env.delete(key) : Deno.env.set(key, value);
  try {
    for (
      const [colorterm, term, depth] of [
        ["truecolor", "xterm", 256],
        [undefined, "xterm-256color", 256],
        [undefined, "screen-256color", 256],
        [undefined, "xterm", 16],
        [undefined, "linux", 16],
      ] as const
    ) {
      await t.step(`COLORTERM=${colorterm ?? ""} TERM=${term}`, () => {
        set("COLORTERM", colorterm);
        set("TERM", term);
        equal(colorDepth(), depth);
      });
    }
  } finally {
    set("COLORTERM", saved.COLORTERM);
    set("TERM", saved.TERM);
  }
});
