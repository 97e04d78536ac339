import assert from "node:assert/strict";
import { displayWidth, graphemes, truncate, wrap } from "../tui/width.ts";

Deno.test("graphemes() keeps user-perceived characters whole", async (t) => {
  const cases: [name: string, input: string, expected: string[]][] = [
    ["ASCII", "abc", ["a", "b", "c"]],
    ["empty", "", []],
    ["Chinese", "你好世界", ["你", "好", "世", "界"]],
    ["Japanese", "日本語です", ["日", "本", "語", "で", "す"]],
    ["combining acute", "e\u0301x", ["e\u0301", "x"]],
    ["family emoji", "a👨‍👩‍👧b", ["a", "👨‍👩‍👧", "b"]],
    ["skin tone", "👍🏽👍", ["👍🏽", "👍"]],
    ["flags", "🇨🇳🇯🇵", ["🇨🇳", "🇯🇵"]],
    ["carriage return and line feed", "a\r\nb", ["a", "\r\n", "b"]],
    ["Hangul jamo", "\u1100\u1161\u11A8", ["\u1100\u1161\u11A8"]],
  ];
  for (const [name, input, expected] of cases) {
    await t.step(name, () => assert.deepEqual(graphemes(input), expected));
  }
});

Deno.test("displayWidth() counts terminal columns", async (t) => {
  const cases: [name: string, input: string, expected: number][] = [
    ["ASCII", "hello", 5],
    ["empty", "", 0],
    ["Chinese", "你好世界", 8],
    ["Japanese kana and kanji", "ひらがなカタカナ漢字", 20],
    ["half-width katakana", "ｶﾀｶﾅ", 4],
    ["Korean", "한국어", 6],
    ["combining acute", "e\u0301", 1],
    ["family emoji", "👨‍👩‍👧", 2],
    ["skin tone", "👍🏽", 2],
    ["flag", "🇨🇳", 2],
    ["mixed", "a你👍🏽e\u0301", 6],
    ["zero-width joiner alone", "\u200D", 0],
  ];
  for (const [name, input, expected] of cases) {
    await t.step(name, () => assert.equal(displayWidth(input), expected));
  }
});

Deno.test("wrap() breaks rows at spaces by display width", async (t) => {
  const cases: [name: string, input: string, columns: number, expected: string[]][] = [
    ["fits", "hello", 10, ["hello"]],
    ["empty", "", 10, [""]],
    ["exact width", "0123456789", 10, ["0123456789"]],
    ["at a space", "the quick brown fox", 10, ["the quick", "brown fox"]],
    ["drops spaces at the break", "aaaa     bbbb", 6, ["aaaa", "bbbb"]],
    ["keeps leading indentation", "  indented text", 10, ["  indented", "text"]],
    ["keeps trailing spaces that fit", "ab  ", 10, ["ab  "]],
    ["cuts trailing spaces that do not fit", "abcdefgh    ", 10, ["abcdefgh  "]],
    ["hard-breaks a long word", "abcdefghijklmnopqrstuvwxyz", 10, [
      "abcdefghij",
      "klmnopqrst",
      "uvwxyz",
    ]],
    ["fills the row before hard-breaking a long word", "see https://example.com/x", 10, [
      "see https:",
      "//example.",
      "com/x",
    ]],
    ["line breaks", "one\ntwo\n\nthree", 10, ["one", "two", "", "three"]],
    ["Chinese between any two characters", "你好世界你好世界", 10, ["你好世界你", "好世界"]],
    ["wide character at the edge moves down", "abcdefghi你好", 10, ["abcdefghi", "你好"]],
    ["Chinese after a word", "hello 你好世界", 10, ["hello 你好", "世界"]],
    ["Japanese", "日本語のテキストです", 10, ["日本語のテ", "キストです"]],
    ["emoji stay whole", "👨‍👩‍👧👨‍👩‍👧👨‍👩‍👧👨‍👩‍👧👨‍👩‍👧👨‍👩‍👧", 10, [
      "👨‍👩‍👧👨‍👩‍👧👨‍👩‍👧👨‍👩‍👧👨‍👩‍👧",
      "👨‍👩‍👧",
    ]],
    ["odd width with emoji", "👍🏽👍🏽👍🏽👍🏽👍🏽", 9, ["👍🏽👍🏽👍🏽👍🏽", "👍🏽"]],
    ["flags", "🇨🇳🇨🇳🇨🇳🇨🇳🇨🇳🇨🇳", 10, ["🇨🇳🇨🇳🇨🇳🇨🇳🇨🇳", "🇨🇳"]],
    ["combining marks take no room", "e\u0301e\u0301e\u0301e\u0301", 2, [
      "e\u0301e\u0301",
      "e\u0301e\u0301",
    ]],
    ["wide character wider than the row", "你好", 1, ["你", "好"]],
    ["one column", "ab c", 1, ["a", "b", "c"]],
  ];
  for (const [name, input, columns, expected] of cases) {
    await t.step(name, () => {
      const rows = wrap(input, columns);
      assert.deepEqual(rows, expected);
      if (columns > 1) { for (const row of rows) assert.ok(displayWidth(row) <= columns, row); }
    });
  }
});

Deno.test("wrap() rejects a width below one column", () => {
  assert.throws(() => wrap("text", 0), RangeError);
  assert.throws(() => wrap("text", 2.5), RangeError);
});

Deno.test("truncate() shortens text to a display width with an ellipsis", async (t) => {
  const cases: [name: string, input: string, columns: number, expected: string][] = [
    ["fits", "hello", 5, "hello"],
    ["ASCII", "hello world", 8, "hello w…"],
    ["Chinese at an even edge", "你好世界", 6, "你好…"],
    ["Chinese at an odd edge", "你好世界", 5, "你好…"],
    ["emoji", "👨‍👩‍👧👍🏽🇨🇳", 4, "👨‍👩‍👧…"],
    ["combining marks stay with their letter", "e\u0301e\u0301e\u0301", 2, "e\u0301…"],
    ["no room for anything but the ellipsis", "hello", 1, "…"],
    ["zero columns", "hello", 0, ""],
  ];
  for (const [name, input, columns, expected] of cases) {
    await t.step(name, () => assert.equal(truncate(input, columns), expected));
  }
  await t.step("custom ellipsis", () => {
    assert.equal(truncate("hello world", 8, { ellipsis: "..." }), "hello...");
    assert.equal(truncate("hello world", 2, { ellipsis: "..." }), "he");
    assert.equal(truncate("hello world", 5, { ellipsis: "" }), "hello");
  });
});
