import assert from "node:assert/strict";
import { isSafe, sanitize } from "../protocol/sanitize.ts";
import { Prng } from "./_prng.ts";

Deno.test("sanitize() turns hostile terminal input into visible text", async (t) => {
  const cases: [name: string, input: string, expected: string][] = [
    ["CSI colour", "\x1b[31mred\x1b[0m", "^[[31mred^[[0m"],
    ["clear screen", "\x1b[2J\x1b[H", "^[[2J^[[H"],
    ["OSC 0 window title ended by BEL", "\x1b]0;pwned\x07", "^[]0;pwned^G"],
    [
      "OSC 8 hyperlink",
      "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\",
      "^[]8;;https://evil.example^[\\click^[]8;;^[\\",
    ],
    ["bell", "ding\x07", "ding^G"],
    ["NUL", "a\0b", "a^@b"],
    ["backspace overwrite", "abc\b\b\bxyz", "abc^H^H^Hxyz"],
    ["carriage return overwrite", "safe\rEVIL", "safe^MEVIL"],
    ["DEL", "a\x7fb", "a^?b"],
    ["unit separator", "\x1f", "^_"],
    ["C1 CSI", "\u009b31m", "<U+009B>31m"],
    ["C1 OSC and ST", "\u009d0;x\u009c", "<U+009D>0;x<U+009C>"],
    ["next line C1", "a\u0085b", "a<U+0085>b"],
    [
      "Trojan source right-to-left override",
      'access = "user\u202E \u2066// admin\u2069 \u2066"',
      'access = "user<U+202E> <U+2066>// admin<U+2069> <U+2066>"',
    ],
    [
      "left-to-right and right-to-left marks",
      "a\u200Eb\u200Fc\u061Cd",
      "a<U+200E>b<U+200F>c<U+061C>d",
    ],
    ["embeddings and pop", "\u202A\u202B\u202C\u202D", "<U+202A><U+202B><U+202C><U+202D>"],
    ["first strong isolate", "\u2068x\u2069", "<U+2068>x<U+2069>"],
    ["zero-width space in a name", "ali\u200Bce", "ali<U+200B>ce"],
    ["zero-width non-joiner in a Latin name", "ad\u200Cmin", "ad<U+200C>min"],
    ["zero-width joiner between Latin letters", "ad\u200Dmin", "ad<U+200D>min"],
    ["zero-width joiner after an emoji with nothing to join", "👍\u200D", "👍<U+200D>"],
    ["zero-width joiner before an emoji after a letter", "a\u200D👍", "a<U+200D>👍"],
    ["byte order mark", "\uFEFFhello", "<U+FEFF>hello"],
    ["soft hyphen", "ad\u00ADmin", "ad<U+00AD>min"],
    [
      "word joiner and invisible operators",
      "\u2060\u2061\u2062\u2063\u2064",
      "<U+2060><U+2061><U+2062><U+2063><U+2064>",
    ],
    ["line and paragraph separators", "a\u2028b\u2029c", "a<U+2028>b<U+2029>c"],
    ["interlinear annotation", "\uFFF9a\uFFFAb\uFFFB", "<U+FFF9>a<U+FFFA>b<U+FFFB>"],
    ["Hangul fillers", "\u3164\uFFA0\u115F", "<U+3164><U+FFA0><U+115F>"],
    ["stray tag characters", "hi\u{E0041}\u{E007F}", "hi<U+E0041><U+E007F>"],
    ["language tag", "\u{E0001}", "<U+E0001>"],
    ["variation selector after ASCII", "a\uFE0F", "a<U+FE0F>"],
    ["variation selector at the start", "\uFE0Fx", "<U+FE0F>x"],
    ["ideographic variation selector after ASCII", "x\u{E0100}", "x<U+E0100>"],
    ["lone high surrogate", "a\uD83Db", "a\uFFFDb"],
    ["lone low surrogate", "\uDC4D", "\uFFFD"],
    ["reversed surrogate pair", "\uDC4D\uD83D", "\uFFFD\uFFFD"],
    ["line feed without the newlines option", "one\ntwo", "one^Jtwo"],
    ["carriage return and line feed without the newlines option", "a\r\nb", "a^M^Jb"],
    ["tab", "a\tb", "a    b"],
  ];
  for (const [name, input, expected] of cases) {
    await t.step(name, () => {
      assert.equal(sanitize(input), expected);
      assert.equal(isSafe(input), false);
      // The output is itself safe, so sanitizing twice changes nothing.
      assert.equal(sanitize(expected), expected);
    });
  }
});

Deno.test("sanitize() leaves ordinary text of every script untouched", async (t) => {
  const cases: [name: string, input: string][] = [
    ["ASCII", "Hello, world! ~`{}[]|\\^"],
    ["Chinese", "中文 你好世界"],
    ["Japanese", "日本語のテキスト、カタカナ。ｶﾀｶﾅ"],
    ["Korean", "한국어"],
    ["Arabic", "مرحبا بالعالم"],
    ["Hebrew", "שלום עולם"],
    ["Persian with zero-width non-joiners", "می\u200Cخواهم"],
    ["Devanagari conjunct with a zero-width joiner", "क्\u200Dष"],
    ["Devanagari with a zero-width non-joiner", "क्\u200Cष"],
    ["Thai", "สวัสดี"],
    ["combining acute", "e\u0301"],
    ["stacked combining marks", "a\u0300\u0301\u0302"],
    ["family emoji with zero-width joiners", "👨‍👩‍👧"],
    ["skin tone modifier", "👍🏽"],
    ["skin tone and zero-width joiner", "👩🏽‍💻"],
    ["flag", "🇨🇳"],
    ["rainbow flag with variation selector and joiner", "🏳️‍🌈"],
    ["transgender flag", "🏳️‍⚧️"],
    ["heart with emoji presentation selector", "❤️"],
    ["text presentation selector", "↔\uFE0E"],
    ["keycap", "1\uFE0F\u20E3"],
    ["subdivision flag tag sequence", "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}"],
    ["ideographic variation sequence", "葛\u{E0100}"],
    ["no-break and ideographic spaces", "a\u00A0b\u3000c"],
    ["Arabic number sign", "\u0600١٢"],
    ["private use", "\uE000"],
    ["empty", ""],
  ];
  for (const [name, input] of cases) {
    await t.step(name, () => {
      assert.equal(sanitize(input), input);
      assert.equal(isSafe(input), true);
    });
  }
});

Deno.test("sanitize() returns the same string when there is nothing to replace", () => {
  const text = "plain text 中文 👨‍👩‍👧 🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}";
  assert.equal(sanitize(text), text);
  assert.equal(sanitize(text, { newlines: true }), text);
});

Deno.test("sanitize() keeps line feeds with the newlines option", async (t) => {
  const cases: [name: string, input: string, expected: string][] = [
    ["line feeds", "one\ntwo\n", "one\ntwo\n"],
    ["carriage return and line feed", "one\r\ntwo", "one\ntwo"],
    ["lone carriage return", "safe\rEVIL", "safe^MEVIL"],
    ["carriage return before an escape", "\r\x1b[2K", "^M^[[2K"],
    ["line separator", "a\u2028b", "a<U+2028>b"],
    ["vertical tab and form feed", "a\vb\fc", "a^Kb^Lc"],
  ];
  for (const [name, input, expected] of cases) {
    await t.step(name, () => {
      assert.equal(sanitize(input, { newlines: true }), expected);
    });
  }
});

Deno.test("sanitize() shows tabs as caret notation when tabWidth is 0", () => {
  assert.equal(sanitize("a\tb", { tabWidth: 0 }), "a^Ib");
  assert.equal(sanitize("a\tb", { tabWidth: 2 }), "a  b");
});

Deno.test("isSafe() treats tabs and line feeds according to the options", () => {
  assert.equal(isSafe("a\nb"), false);
  assert.equal(isSafe("a\nb", { newlines: true }), true);
  assert.equal(isSafe("a\r\nb", { newlines: true }), false);
  assert.equal(isSafe("a\tb"), false);
});

Deno.test("sanitize() replaces every C0 control, DEL and C1 control", () => {
  for (let code = 0; code < 0x20; code++) {
    const expected = code === 0x09 ? "    " : "^" + String.fromCharCode(code + 0x40);
    assert.equal(sanitize(String.fromCharCode(code)), expected, `U+${code.toString(16)}`);
  }
  assert.equal(sanitize("\x7f"), "^?");
  for (let code = 0x80; code < 0xa0; code++) {
    const hex = code.toString(16).toUpperCase().padStart(4, "0");
    assert.equal(sanitize(String.fromCharCode(code)), `<U+${hex}>`);
  }
});

Deno.test("sanitize() output never contains an escape or control character", () => {
  // A seeded generator over a mix of hostile and ordinary code points.
  const prng = new Prng(42);
  const pool = [
    ..."\x00\x07\x08\t\n\r\x1b\x7f\u0085\u009b\u200b\u200c\u200d\u202e\u2066\ufe0f\ufeff",
    ..."\u{E0041}\u{E007F}\uD800\uDC00a[];中👍🏽🏴e\u0301",
  ];
  for (let round = 0; round < 500; round++) {
    let text = "";
    const length = prng.int(20);
    for (let k = 0; k < length; k++) text += prng.pick(pool);
    const output = sanitize(text);
    assert.doesNotMatch(
      output,
      /[\p{Cc}\u202A-\u202E\u2066-\u2069\u200B\uFEFF]/u,
      JSON.stringify(text),
    );
    assert.equal(output.isWellFormed(), true);
    assert.equal(sanitize(output), output, JSON.stringify(text));
  }
});
