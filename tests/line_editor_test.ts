import assert from "node:assert/strict";
import { KeyDecoder, type KeyEvent } from "../tui/keys.ts";
import { type EditorAction, LineEditor } from "../tui/line_editor.ts";

const encoder = new TextEncoder();

/** Types `input` as a terminal would send it, returning the editor's actions. */
function press(editor: LineEditor, input: string): EditorAction[] {
  const decoder = new KeyDecoder();
  const events = [...decoder.decode(encoder.encode(input)), ...decoder.flush()];
  return events.map((event) => editor.handle(event));
}

function editorWith(text: string, cursor?: number): LineEditor {
  const editor = new LineEditor();
  editor.setText(text, cursor);
  return editor;
}

const HOME = "\x1b[H";
const END = "\x1b[F";
const LEFT = "\x1b[D";
const RIGHT = "\x1b[C";
const UP = "\x1b[A";
const DOWN = "\x1b[B";
const DELETE = "\x1b[3~";
const BACKSPACE = "\x7f";
const CTRL_LEFT = "\x1b[1;5D";
const CTRL_RIGHT = "\x1b[1;5C";

Deno.test("LineEditor inserts typed text at the cursor", () => {
  const editor = new LineEditor();
  press(editor, "ac" + LEFT + "b");
  assert.equal(editor.text, "abc");
  assert.equal(editor.cursor, 2);
  press(editor, END + "你好");
  assert.equal(editor.text, "abc你好");
  assert.equal(editor.cursor, 5);
});

Deno.test("LineEditor joins a combining mark typed after its letter into one grapheme", () => {
  const editor = new LineEditor();
  editor.handle({ type: "text", text: "e" });
  editor.handle({ type: "text", text: "\u0301" });
  assert.equal(editor.text, "e\u0301");
  assert.equal(editor.cursor, 1);
  // Two regional indicators typed one by one become one flag.
  editor.handle({ type: "text", text: "🇨" });
  editor.handle({ type: "text", text: "🇳" });
  assert.equal(editor.cursor, 2);
  press(editor, BACKSPACE);
  assert.equal(editor.text, "e\u0301");
});

Deno.test("LineEditor moves and deletes by grapheme", async (t) => {
  const text = "a你👍🏽e\u0301🇨🇳👨‍👩‍👧b";
  const cases: [name: string, keys: string, text: string, cursor: number][] = [
    ["Left from the end", LEFT, text, 6],
    ["Left twice", LEFT + LEFT, text, 5],
    ["Home", HOME, text, 0],
    ["Ctrl-A", "\x01", text, 0],
    ["Home then Right", HOME + RIGHT + RIGHT, text, 2],
    ["End after Home", HOME + END, text, 7],
    ["Ctrl-E after Ctrl-A", "\x01\x05", text, 7],
    ["Ctrl-B and Ctrl-F", "\x02\x02\x06", text, 6],
    ["Backspace removes the last grapheme", BACKSPACE, "a你👍🏽e\u0301🇨🇳👨‍👩‍👧", 6],
    ["Backspace removes a whole family emoji", LEFT + BACKSPACE, "a你👍🏽e\u0301🇨🇳b", 5],
    [
      "Backspace removes a letter with its combining mark",
      LEFT.repeat(3) + BACKSPACE,
      "a你👍🏽🇨🇳👨‍👩‍👧b",
      3,
    ],
    ["Backspace removes a whole flag", LEFT.repeat(2) + BACKSPACE, "a你👍🏽e\u0301👨‍👩‍👧b", 4],
    ["Delete removes the grapheme at the cursor", HOME + DELETE + DELETE, "👍🏽e\u0301🇨🇳👨‍👩‍👧b", 0],
    ["Ctrl-D deletes forward on a non-empty line", HOME + RIGHT + "\x04", "a👍🏽e\u0301🇨🇳👨‍👩‍👧b", 1],
    ["Backspace at the start does nothing", HOME + BACKSPACE, text, 0],
    ["Delete at the end does nothing", DELETE, text, 7],
    ["Ctrl-U kills to the start", LEFT + LEFT + "\x15", "👨‍👩‍👧b", 0],
    ["Ctrl-K kills to the end", HOME + RIGHT + RIGHT + "\x0b", "a你", 2],
  ];
  for (const [name, keys, expectedText, expectedCursor] of cases) {
    await t.step(name, () => {
      const editor = editorWith(text);
      press(editor, keys);
      assert.equal(editor.text, expectedText);
      assert.equal(editor.cursor, expectedCursor);
    });
  }
});

Deno.test("LineEditor reports whether a key changed anything", () => {
  const editor = editorWith("ab");
  assert.deepEqual(press(editor, RIGHT), [{ type: "none" }]);
  assert.deepEqual(press(editor, LEFT), [{ type: "redraw" }]);
  assert.deepEqual(press(editor, HOME + HOME), [{ type: "redraw" }, { type: "none" }]);
  assert.deepEqual(press(editor, BACKSPACE), [{ type: "none" }]);
  assert.deepEqual(press(editor, "x"), [{ type: "redraw" }]);
  assert.deepEqual(press(editor, "\x1b[5~"), [{ type: "none" }]);
});

Deno.test("LineEditor computes the cursor column after each operation on a wide line", () => {
  const editor = new LineEditor();
  const steps: [keys: string, text: string, column: number][] = [
    ["你好", "你好", 6],
    ["a", "你好a", 7],
    ["👍🏽", "你好a👍🏽", 9],
    ["e\u0301", "你好a👍🏽e\u0301", 10],
    [LEFT, "你好a👍🏽e\u0301", 9],
    [LEFT, "你好a👍🏽e\u0301", 7],
    [LEFT, "你好a👍🏽e\u0301", 6],
    [LEFT, "你好a👍🏽e\u0301", 4],
    ["世", "你世好a👍🏽e\u0301", 6],
    [HOME, "你世好a👍🏽e\u0301", 2],
    [DELETE, "世好a👍🏽e\u0301", 2],
    [END, "世好a👍🏽e\u0301", 10],
    [BACKSPACE, "世好a👍🏽", 9],
    [CTRL_LEFT, "世好a👍🏽", 2],
    [CTRL_RIGHT, "世好a👍🏽", 7],
    ["\x17", "👍🏽", 2],
    ["\x15", "👍🏽", 2],
    ["\x0b", "", 2],
  ];
  for (const [keys, text, column] of steps) {
    press(editor, keys);
    assert.equal(editor.text, text, JSON.stringify(keys));
    const view = editor.render("> ", 80);
    assert.deepEqual(view, { lines: ["> " + text], cursorRow: 0, cursorColumn: column }, keys);
  }
});

Deno.test("LineEditor deletes words", async (t) => {
  const cases: [name: string, text: string, keys: string, expected: string][] = [
    ["Ctrl-W over Chinese words", "hello 你好 世界", "\x17", "hello 你好 "],
    ["Ctrl-W twice over Chinese words", "hello 你好 世界", "\x17\x17", "hello "],
    ["Ctrl-W over Chinese without spaces", "你好世界", "\x17", ""],
    ["Ctrl-W over Japanese", "これは 日本語です", "\x17", "これは "],
    ["Ctrl-W over trailing spaces", "foo bar  ", "\x17", "foo "],
    ["Ctrl-W keeps punctuation with the word", "see foo.bar", "\x17", "see "],
    ["Ctrl-W over emoji", "hi 👨‍👩‍👧👍🏽", "\x17", "hi "],
    ["Ctrl-W at the start does nothing", "abc", HOME + "\x17", "abc"],
    ["Ctrl-W in the middle", "one two three", LEFT.repeat(5) + "\x17", "one three"],
    ["Alt-Backspace stops at punctuation", "see foo.bar", "\x1b\x7f", "see foo."],
    ["Alt-d deletes the next word", "one two three", HOME + "\x1bd", " two three"],
    ["Ctrl-Delete deletes the next word", "one two three", HOME + "\x1b[3;5~", " two three"],
  ];
  for (const [name, text, keys, expected] of cases) {
    await t.step(name, () => {
      const editor = editorWith(text);
      press(editor, keys);
      assert.equal(editor.text, expected);
    });
  }
});

Deno.test("LineEditor moves by word", async (t) => {
  const text = "hello, 你好 world";
  const cases: [name: string, keys: string, cursor: number][] = [
    ["Alt-b", "\x1bb", 10],
    ["Alt-b twice", "\x1bb\x1bb", 7],
    ["Alt-b three times", "\x1bb\x1bb\x1bb", 0],
    ["Ctrl-Left twice", CTRL_LEFT + CTRL_LEFT, 7],
    ["Alt-Left", "\x1b[1;3D", 10],
    ["Alt-f from the start", HOME + "\x1bf", 5],
    ["Ctrl-Right twice from the start", HOME + CTRL_RIGHT + CTRL_RIGHT, 9],
    ["Ctrl-Right at the end does nothing", CTRL_RIGHT, 15],
  ];
  for (const [name, keys, cursor] of cases) {
    await t.step(name, () => {
      const editor = editorWith(text);
      press(editor, keys);
      assert.equal(editor.cursor, cursor);
    });
  }
});

Deno.test("LineEditor submits the buffer on Enter and remembers it", () => {
  const editor = new LineEditor();
  assert.deepEqual(press(editor, "hi 世界\r"), [{ type: "redraw" }, {
    type: "submit",
    text: "hi 世界",
  }]);
  assert.equal(editor.text, "");
  assert.equal(editor.cursor, 0);
  assert.deepEqual(editor.history, ["hi 世界"]);
  assert.deepEqual(press(editor, "\r"), [{ type: "submit", text: "" }]);
  assert.deepEqual(editor.history, ["hi 世界"]);
});

Deno.test("LineEditor reports Ctrl-C, Ctrl-D, Ctrl-L and Tab to the caller", () => {
  const editor = new LineEditor();
  assert.deepEqual(press(editor, "\x04"), [{ type: "eof" }]);
  press(editor, "abc");
  assert.deepEqual(press(editor, "\x03"), [{ type: "interrupt" }]);
  assert.equal(editor.text, "abc");
  assert.deepEqual(press(editor, "\x0c"), [{ type: "clear-screen" }]);
  assert.deepEqual(press(editor, "\t"), [{ type: "complete" }]);
  assert.deepEqual(press(editor, "\x04"), [{ type: "none" }]);
  assert.deepEqual(press(editor, "\x1b"), [{ type: "none" }]);
  assert.equal(editor.text, "abc");
  editor.clear();
  assert.equal(editor.text, "");
});

Deno.test("LineEditor recalls history and keeps the line being written", () => {
  const editor = new LineEditor();
  for (const line of ["one", "two", "two", "  ", "three"]) press(editor, line + "\r");
  assert.deepEqual(editor.history, ["one", "two", "three"]);
  press(editor, "draft");
  const steps: [keys: string, text: string, action: EditorAction["type"]][] = [
    [UP, "three", "redraw"],
    [UP, "two", "redraw"],
    ["\x10", "one", "redraw"],
    [UP, "one", "none"],
    [DOWN, "two", "redraw"],
    ["\x0e", "three", "redraw"],
    [DOWN, "draft", "redraw"],
    [DOWN, "draft", "none"],
  ];
  for (const [keys, text, action] of steps) {
    assert.deepEqual(press(editor, keys).map((result) => result.type), [action]);
    assert.equal(editor.text, text);
    assert.equal(editor.cursor, [...new Intl.Segmenter().segment(text)].length);
  }
});

Deno.test("LineEditor keeps edits to recalled lines until a line is submitted", () => {
  const editor = new LineEditor({ history: ["one", "two"] });
  press(editor, "new");
  press(editor, UP + "!");
  assert.equal(editor.text, "two!");
  press(editor, UP);
  assert.equal(editor.text, "one");
  press(editor, DOWN);
  assert.equal(editor.text, "two!");
  press(editor, DOWN);
  assert.equal(editor.text, "new");
  press(editor, UP + "\r");
  assert.deepEqual(editor.history, ["one", "two", "two!"]);
  // The edit went into a new entry; the original is untouched.
  press(editor, UP + UP);
  assert.equal(editor.text, "two");
  press(editor, DOWN + DOWN);
  assert.equal(editor.text, "");
});

Deno.test("LineEditor bounds the history", () => {
  const editor = new LineEditor({ historySize: 3 });
  for (const line of ["1", "2", "3", "4", "5"]) press(editor, line + "\r");
  assert.deepEqual(editor.history, ["3", "4", "5"]);
  editor.addHistory("5");
  editor.addHistory("");
  assert.deepEqual(editor.history, ["3", "4", "5"]);
  assert.throws(() => new LineEditor({ historySize: 0 }), RangeError);
});

Deno.test("LineEditor inserts a paste with line breaks and submits it as one message", () => {
  const editor = new LineEditor();
  press(editor, "say: ");
  assert.deepEqual(press(editor, "\x1b[200~first\r\nsecond 你好\rthird\x1b[201~"), [{
    type: "redraw",
  }]);
  assert.equal(editor.text, "say: first\nsecond 你好\nthird");
  assert.deepEqual(editor.render("> ", 80), {
    lines: ["> say: first", "second 你好", "third"],
    cursorRow: 2,
    cursorColumn: 5,
  });
  // Up and Down move between the lines of the buffer before the history.
  press(editor, UP);
  assert.deepEqual(editor.render("> ", 80).cursorRow, 1);
  assert.equal(editor.render("> ", 80).cursorColumn, 5);
  press(editor, UP);
  assert.deepEqual(editor.render("> ", 80), {
    lines: ["> say: first", "second 你好", "third"],
    cursorRow: 0,
    cursorColumn: 7,
  });
  press(editor, DOWN + END);
  assert.deepEqual(editor.render("> ", 80).cursorColumn, 11);
  press(editor, HOME);
  assert.equal(editor.render("> ", 80).cursorColumn, 0);
  assert.deepEqual(press(editor, "\r"), [{
    type: "submit",
    text: "say: first\nsecond 你好\nthird",
  }]);
});

Deno.test("LineEditor moves down a line to the column nearest the cursor", () => {
  const editor = editorWith("abc\n你好世界", 3);
  press(editor, DOWN);
  // Column 3 falls inside 好, so the cursor stops before it at column 2.
  assert.equal(editor.cursor, 5);
  assert.deepEqual(editor.render("", 80).cursorColumn, 2);
});

Deno.test("LineEditor inserts a line break on Alt-Enter", () => {
  const editor = new LineEditor();
  press(editor, "one\x1b\rtwo");
  assert.equal(editor.text, "one\ntwo");
  // Ctrl-K at the end of a line joins the next one.
  press(editor, UP + "\x0b");
  assert.equal(editor.text, "onetwo");
  press(editor, "\x0b");
  assert.equal(editor.text, "one");
});

Deno.test("LineEditor completes the word before the cursor", async (t) => {
  const names = ["alice", "alfred", "bob", "Carol", "/msg", "/me", "/quit"];
  const cases: [
    name: string,
    text: string,
    expected: string,
    matches: string[],
    changed: boolean,
  ][] = [
    ["unique name at the start gets a colon", "bo", "bob: ", ["bob"], true],
    ["unique name later gets a space", "hi bo", "hi bob ", ["bob"], true],
    ["ambiguous name extends to the common prefix", "a", "al", ["alice", "alfred"], true],
    ["ambiguous name at the common prefix stays", "al", "al", ["alice", "alfred"], false],
    ["no match", "zed", "zed", [], false],
    ["letter case is ignored", "car", "Carol: ", ["Carol"], true],
    ["unique command", "/q", "/quit ", ["/quit"], true],
    ["command with a common prefix", "/m", "/m", ["/msg", "/me"], false],
    ["command completes to the unique match", "/ms", "/msg ", ["/msg"], true],
    ["name after a command", "/msg al", "/msg al", ["alice", "alfred"], false],
    ["name after a command completes", "/msg b", "/msg bob ", ["bob"], true],
    ["empty word lists everything", "", "", names, false],
  ];
  for (const [name, text, expected, matches, changed] of cases) {
    await t.step(name, () => {
      const editor = editorWith(text);
      const completion = editor.complete(names);
      assert.equal(editor.text, expected);
      assert.equal(editor.cursor, [...new Intl.Segmenter().segment(expected)].length);
      assert.deepEqual(completion.matches, matches);
      assert.equal(completion.changed, changed);
    });
  }
});

Deno.test("LineEditor completion details", async (t) => {
  await t.step("completes the part before the cursor and reuses a following space", () => {
    const editor = editorWith("bo hello", 2);
    const completion = editor.complete(["bob"]);
    assert.equal(completion.word, "bo");
    assert.equal(editor.text, "bob: hello");
    assert.equal(editor.cursor, 5);
  });
  await t.step("letter case matters when asked", () => {
    const editor = editorWith("car");
    assert.deepEqual(editor.complete(["Carol"], { ignoreCase: false }).matches, []);
    assert.equal(editor.text, "car");
  });
  await t.step("common prefix keeps whole graphemes", () => {
    const editor = editorWith("x");
    const completion = editor.complete(["xe\u0301a", "xe\u0301b", "xe"]);
    assert.deepEqual(completion.matches, ["xe\u0301a", "xe\u0301b", "xe"]);
    assert.equal(editor.text, "x");
  });
  await t.step("common prefix of wide names", () => {
    const editor = editorWith("hi 小");
    const completion = editor.complete(["小明", "小明明", "小红"]);
    assert.deepEqual(completion.matches, ["小明", "小明明", "小红"]);
    editor.setText("hi 小明");
    editor.complete(["小明", "小明明", "小红"]);
    assert.equal(editor.text, "hi 小明");
    editor.setText("hi 小明明");
    editor.complete(["小明", "小明明", "小红"]);
    assert.equal(editor.text, "hi 小明明 ");
  });
  await t.step("duplicates are listed once", () => {
    const editor = editorWith("b");
    assert.deepEqual(editor.complete(["bob", "bob"]).matches, ["bob"]);
    assert.equal(editor.text, "bob: ");
  });
  await t.step("wordAtCursor tells a command from a name", () => {
    assert.deepEqual(editorWith("/ms").wordAtCursor(), { text: "/ms", start: 0 });
    assert.deepEqual(editorWith("/msg 你好").wordAtCursor(), { text: "你好", start: 5 });
    assert.deepEqual(editorWith("hi ").wordAtCursor(), { text: "", start: 3 });
  });
});

Deno.test("LineEditor wraps at width 10 with wide characters at the edge", async (t) => {
  const cases: [
    name: string,
    text: string,
    cursor: number | undefined,
    lines: string[],
    row: number,
    column: number,
  ][] = [
    ["fits in a row", "abc", undefined, ["> abc"], 0, 5],
    ["fills the row exactly", "12345678", undefined, ["> 12345678", ""], 1, 0],
    ["wide character moves to the next row", "1234567你", undefined, ["> 1234567", "你"], 1, 2],
    ["cursor before the moved character", "1234567你", 7, ["> 1234567", "你"], 1, 0],
    ["wide character fits the last two columns", "123456你", undefined, ["> 123456你", ""], 1, 0],
    ["Chinese", "你好世界你好世界", undefined, ["> 你好世界", "你好世界"], 1, 8],
    ["Chinese with the cursor inside", "你好世界你好世界", 5, ["> 你好世界", "你好世界"], 1, 2],
    ["odd columns leave a gap", "a你好世界你", undefined, ["> a你好世", "界你"], 1, 4],
    ["emoji", "👨‍👩‍👧👍🏽🇨🇳👨‍👩‍👧👍🏽", undefined, ["> 👨‍👩‍👧👍🏽🇨🇳👨‍👩‍👧", "👍🏽"], 1, 2],
    [
      "combining marks take no room",
      "e\u0301".repeat(9),
      undefined,
      [
        "> " + "e\u0301".repeat(8),
        "e\u0301",
      ],
      1,
      1,
    ],
    [
      "long text over three rows",
      "abcdefghijklmnopqrstuvwxyz",
      20,
      [
        "> abcdefgh",
        "ijklmnopqr",
        "stuvwxyz",
      ],
      2,
      2,
    ],
    ["line break at the end of a full row", "12345678\nx", 8, ["> 12345678", "", "x"], 1, 0],
    ["cursor after a line break", "ab\n", undefined, ["> ab", ""], 1, 0],
  ];
  for (const [name, text, cursor, lines, cursorRow, cursorColumn] of cases) {
    await t.step(name, () => {
      const editor = editorWith(text, cursor);
      assert.deepEqual(editor.render("> ", 10), { lines, cursorRow, cursorColumn });
    });
  }
});

Deno.test("LineEditor wraps a prompt wider than the terminal", () => {
  const editor = editorWith("你好");
  assert.deepEqual(editor.render("prompt>", 4), {
    lines: ["prom", "pt>", "你好", ""],
    cursorRow: 3,
    cursorColumn: 0,
  });
  assert.deepEqual(editor.render("", 1), {
    lines: ["你", "好", ""],
    cursorRow: 2,
    cursorColumn: 0,
  });
  assert.throws(() => editor.render("> ", 0), RangeError);
});

Deno.test("LineEditor shows control and invisible characters as placeholders", async (t) => {
  const cases: [name: string, event: KeyEvent, lines: string[], column: number][] = [
    ["escape sequence from a paste", { type: "paste", text: "\x1b[31mred" }, ["> ^[[31mred"], 11],
    ["bell and NUL", { type: "paste", text: "\x07\0" }, ["> ^G^@"], 6],
    ["bidi override", { type: "paste", text: "a\u202Eb" }, ["> a<U+202E>b"], 12],
    ["zero-width space", { type: "paste", text: "a\u200Bb" }, ["> a<U+200B>b"], 12],
    ["C1 control", { type: "paste", text: "\u009b" }, ["> <U+009B>"], 10],
    ["tab as spaces", { type: "paste", text: "a\tb" }, ["> a    b"], 8],
    ["Persian joiners stay", { type: "paste", text: "می\u200Cخواهم" }, ["> می\u200Cخواهم"], 9],
    ["emoji joiners stay", { type: "paste", text: "👨‍👩‍👧" }, ["> 👨‍👩‍👧"], 4],
  ];
  for (const [name, event, lines, column] of cases) {
    await t.step(name, () => {
      const editor = new LineEditor();
      editor.handle(event);
      assert.deepEqual(editor.render("> ", 80), { lines, cursorRow: 0, cursorColumn: column });
    });
  }
  await t.step("prompt is sanitized", () => {
    const editor = new LineEditor();
    assert.deepEqual(editor.render("\x1b[2J> ", 80).lines, ["^[[2J> "]);
  });
  await t.step("placeholders wider than a row wrap", () => {
    const editor = new LineEditor();
    editor.handle({ type: "paste", text: "\u202E" });
    assert.deepEqual(editor.render("", 4), {
      lines: ["<U+2", "02E>", ""],
      cursorRow: 2,
      cursorColumn: 0,
    });
  });
  await t.step("cursor stays on grapheme boundaries around placeholders", () => {
    const editor = new LineEditor();
    editor.handle({ type: "paste", text: "a\x1bb" });
    press(editor, LEFT);
    assert.equal(editor.render("> ", 80).cursorColumn, 5);
    press(editor, LEFT);
    assert.equal(editor.render("> ", 80).cursorColumn, 3);
  });
});

Deno.test("LineEditor styles the prompt and placeholders without counting the styles", () => {
  const editor = new LineEditor();
  editor.handle({ type: "paste", text: "x\x07y" });
  const view = editor.render("me> ", 6, {
    stylePrompt: (text) => `\x1b[1m${text}\x1b[22m`,
    stylePlaceholder: (text) => `\x1b[7m${text}\x1b[27m`,
  });
  assert.deepEqual(view, {
    lines: ["\x1b[1mme> \x1b[22mx", "\x1b[7m^G\x1b[27my"],
    cursorRow: 1,
    cursorColumn: 3,
  });
});

Deno.test("LineEditor edits text decoded from split terminal input", () => {
  const editor = new LineEditor();
  const decoder = new KeyDecoder();
  const input = encoder.encode("你好\x1b[D\x1b[D世界\x1b[1;5C!\r");
  const actions: EditorAction[] = [];
  for (const byte of input) {
    for (const event of decoder.decode(new Uint8Array([byte]))) actions.push(editor.handle(event));
  }
  assert.deepEqual(actions.at(-1), { type: "submit", text: "世界你好!" });
});
