import assert from "node:assert/strict";
import { KeyDecoder, type KeyEvent } from "../tui/keys.ts";

const encoder = new TextEncoder();

function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Joins consecutive text events, which depend on how the input was split. */
function joinText(events: KeyEvent[]): KeyEvent[] {
  const joined: KeyEvent[] = [];
  for (const event of events) {
    const last = joined.at(-1);
    if (event.type === "text" && last?.type === "text") {
      joined[joined.length - 1] = { type: "text", text: last.text + event.text };
    } else {
      joined.push(event.type === "text" ? { ...event } : event);
    }
  }
  return joined;
}

/** Decodes the chunks in order, then flushes. */
function decodeChunks(chunks: Uint8Array[]): KeyEvent[] {
  const decoder = new KeyDecoder();
  const events: KeyEvent[] = [];
  for (const chunk of chunks) events.push(...decoder.decode(chunk));
  events.push(...decoder.flush());
  assert.equal(decoder.pending, false);
  return joinText(events);
}

/** Every way of cutting `input` in two, plus one byte at a time. */
function splits(input: Uint8Array): Uint8Array[][] {
  const result: Uint8Array[][] = [[input]];
  for (let cut = 0; cut <= input.length; cut++) {
    result.push([input.subarray(0, cut), input.subarray(cut)]);
  }
  result.push([...input].map((byte) => new Uint8Array([byte])));
  return result;
}

const cases: [name: string, input: string | Uint8Array, expected: KeyEvent[]][] = [
  ["ASCII text", "hello", [{ type: "text", text: "hello" }]],
  ["Chinese", "你好世界", [{ type: "text", text: "你好世界" }]],
  ["Japanese", "こんにちは、世界", [{ type: "text", text: "こんにちは、世界" }]],
  ["emoji sequences", "👨‍👩‍👧👍🏽🇨🇳", [{ type: "text", text: "👨‍👩‍👧👍🏽🇨🇳" }]],
  ["combining mark", "e\u0301", [{ type: "text", text: "e\u0301" }]],
  ["carriage return", "\r", [{ type: "enter" }]],
  ["line feed", "\n", [{ type: "enter" }]],
  ["carriage return and line feed as one enter", "\r\n", [{ type: "enter" }]],
  ["two carriage returns", "\r\r", [{ type: "enter" }, { type: "enter" }]],
  ["two line feeds", "\n\n", [{ type: "enter" }, { type: "enter" }]],
  ["two CRLF pairs", "\r\n\r\n", [{ type: "enter" }, { type: "enter" }]],
  ["line feed then carriage return", "\n\r", [{ type: "enter" }, { type: "enter" }]],
  ["text around enter", "a\r\nb", [
    { type: "text", text: "a" },
    { type: "enter" },
    { type: "text", text: "b" },
  ]],
  ["DEL as backspace", "\x7f", [{ type: "backspace" }]],
  ["BS as backspace", "\b", [{ type: "backspace" }]],
  ["delete", "\x1b[3~", [{ type: "delete" }]],
  ["up", "\x1b[A", [{ type: "up" }]],
  ["down", "\x1b[B", [{ type: "down" }]],
  ["right", "\x1b[C", [{ type: "right" }]],
  ["left", "\x1b[D", [{ type: "left" }]],
  ["application up", "\x1bOA", [{ type: "up" }]],
  ["application down", "\x1bOB", [{ type: "down" }]],
  ["application right", "\x1bOC", [{ type: "right" }]],
  ["application left", "\x1bOD", [{ type: "left" }]],
  ["home as CSI H", "\x1b[H", [{ type: "home" }]],
  ["end as CSI F", "\x1b[F", [{ type: "end" }]],
  ["home as CSI 1 tilde", "\x1b[1~", [{ type: "home" }]],
  ["end as CSI 4 tilde", "\x1b[4~", [{ type: "end" }]],
  ["home as CSI 7 tilde", "\x1b[7~", [{ type: "home" }]],
  ["end as CSI 8 tilde", "\x1b[8~", [{ type: "end" }]],
  ["application home", "\x1bOH", [{ type: "home" }]],
  ["application end", "\x1bOF", [{ type: "end" }]],
  ["insert", "\x1b[2~", [{ type: "insert" }]],
  ["page up", "\x1b[5~", [{ type: "page-up" }]],
  ["page down", "\x1b[6~", [{ type: "page-down" }]],
  ["Ctrl-A", "\x01", [{ type: "ctrl", key: "a" }]],
  ["Ctrl-E", "\x05", [{ type: "ctrl", key: "e" }]],
  ["Ctrl-U", "\x15", [{ type: "ctrl", key: "u" }]],
  ["Ctrl-K", "\x0b", [{ type: "ctrl", key: "k" }]],
  ["Ctrl-W", "\x17", [{ type: "ctrl", key: "w" }]],
  ["Ctrl-L", "\x0c", [{ type: "ctrl", key: "l" }]],
  ["Ctrl-C", "\x03", [{ type: "ctrl", key: "c" }]],
  ["Ctrl-D", "\x04", [{ type: "ctrl", key: "d" }]],
  ["Ctrl-Z", "\x1a", [{ type: "ctrl", key: "z" }]],
  ["Ctrl-Space", "\x00", [{ type: "ctrl", key: "@" }]],
  ["Ctrl-backslash", "\x1c", [{ type: "ctrl", key: "\\" }]],
  ["Ctrl-underscore", "\x1f", [{ type: "ctrl", key: "_" }]],
  ["tab", "\t", [{ type: "tab" }]],
  ["Shift-Tab", "\x1b[Z", [{ type: "tab", shift: true }]],
  ["Alt-b", "\x1bb", [{ type: "alt", key: "b" }]],
  ["Alt-f", "\x1bf", [{ type: "alt", key: "f" }]],
  ["Alt with a non-ASCII letter", "\x1bé", [{ type: "alt", key: "é" }]],
  ["Ctrl-Left", "\x1b[1;5D", [{ type: "left", ctrl: true }]],
  ["Ctrl-Right", "\x1b[1;5C", [{ type: "right", ctrl: true }]],
  ["Alt-Left", "\x1b[1;3D", [{ type: "left", alt: true }]],
  ["Shift-Up", "\x1b[1;2A", [{ type: "up", shift: true }]],
  ["Ctrl-Shift-Home", "\x1b[1;6H", [{ type: "home", ctrl: true, shift: true }]],
  ["Ctrl-Delete", "\x1b[3;5~", [{ type: "delete", ctrl: true }]],
  ["rxvt Ctrl-Left", "\x1bOd", [{ type: "left", ctrl: true }]],
  ["rxvt Shift-Right", "\x1b[c", [{ type: "right", shift: true }]],
  ["rxvt Ctrl-Delete", "\x1b[3^", [{ type: "delete", ctrl: true }]],
  ["ESC before an arrow as Alt", "\x1b\x1b[D", [{ type: "left", alt: true }]],
  ["Alt-Backspace", "\x1b\x7f", [{ type: "backspace", alt: true }]],
  ["Alt-Enter", "\x1b\r", [{ type: "enter", alt: true }]],
  ["Ctrl-Alt-A", "\x1b\x01", [{ type: "ctrl", key: "a", alt: true }]],
  ["lone escape", "\x1b", [{ type: "escape" }]],
  ["Alt-Escape", "\x1b\x1b", [{ type: "escape", alt: true }]],
  ["keypad enter", "\x1bOM", [{ type: "enter" }]],
  ["keypad digits", "\x1bOq\x1bOr", [{ type: "text", text: "12" }]],
  ["function key F5 is dropped", "\x1b[15~", []],
  ["SS3 F1 is dropped", "\x1bOP", []],
  ["Linux console F1 is dropped", "\x1b[[A", []],
  ["device attributes reply is dropped", "\x1b[?1;2c", []],
  ["cursor position report is dropped", "\x1b[12;40R", []],
  ["SGR mouse report is dropped", "\x1b[<0;10;20M", []],
  ["X10 mouse report is dropped", "\x1b[M !!x", [{ type: "text", text: "x" }]],
  ["focus events are dropped", "\x1b[I\x1b[O", []],
  ["kitty keyboard report is dropped", "\x1b[97;5u", []],
  ["sequence with an intermediate byte is dropped", "\x1b[1 q", []],
  ["malformed sequence is dropped up to the control byte", "\x1b[1;\r", [{ type: "enter" }]],
  ["keys between text", "ab\x1b[Dc\x7f", [
    { type: "text", text: "ab" },
    { type: "left" },
    { type: "text", text: "c" },
    { type: "backspace" },
  ]],
  ["bracketed paste", "\x1b[200~line one\r\nline two\rline three\nend\x1b[201~", [
    { type: "paste", text: "line one\nline two\nline three\nend" },
  ]],
  ["paste of wide text", "\x1b[200~你好 👨‍👩‍👧 e\u0301\x1b[201~", [
    { type: "paste", text: "你好 👨‍👩‍👧 e\u0301" },
  ]],
  ["paste keeps escape sequences as text", "\x1b[200~a\x1b[31mb\x1b[20c\x1b[201~", [
    { type: "paste", text: "a\x1b[31mb\x1b[20c" },
  ]],
  ["empty paste", "\x1b[200~\x1b[201~", [{ type: "paste", text: "" }]],
  ["keys after a paste", "x\x1b[200~a\tb\x1b[201~y\r", [
    { type: "text", text: "x" },
    { type: "paste", text: "a\tb" },
    { type: "text", text: "y" },
    { type: "enter" },
  ]],
  ["stray paste end is dropped", "\x1b[201~", []],
  ["invalid UTF-8", new Uint8Array([0xff, 0x61, 0xe4, 0x0d]), [
    { type: "text", text: "\uFFFDa\uFFFD" },
    { type: "enter" },
  ]],
];

Deno.test("KeyDecoder decodes terminal input however it is split", async (t) => {
  for (const [name, input, expected] of cases) {
    await t.step(name, () => {
      const raw = typeof input === "string" ? bytes(input) : input;
      for (const chunks of splits(raw)) {
        const message = `split as ${JSON.stringify(chunks.map((chunk) => [...chunk]))}`;
        assert.deepEqual(decodeChunks(chunks), expected, message);
      }
    });
  }
});

Deno.test("KeyDecoder joins consecutive text into one event", () => {
  const decoder = new KeyDecoder();
  assert.deepEqual(decoder.decode(bytes("hello 世界")), [{ type: "text", text: "hello 世界" }]);
});

Deno.test("KeyDecoder holds an incomplete UTF-8 character until the next read", () => {
  const decoder = new KeyDecoder();
  const input = bytes("a世");
  assert.deepEqual(decoder.decode(input.subarray(0, 2)), [{ type: "text", text: "a" }]);
  assert.equal(decoder.pending, true);
  assert.deepEqual(decoder.decode(input.subarray(2, 3)), []);
  assert.deepEqual(decoder.decode(input.subarray(3)), [{ type: "text", text: "世" }]);
  assert.equal(decoder.pending, false);
});

Deno.test("KeyDecoder reports a lone escape only when flushed", () => {
  const decoder = new KeyDecoder();
  assert.deepEqual(decoder.decode(bytes("\x1b")), []);
  assert.equal(decoder.pending, true);
  assert.deepEqual(decoder.flush(), [{ type: "escape" }]);
  assert.equal(decoder.pending, false);
  assert.deepEqual(decoder.flush(), []);
});

Deno.test("KeyDecoder reads an escape and the rest of its sequence from separate reads", () => {
  const decoder = new KeyDecoder();
  assert.deepEqual(decoder.decode(bytes("\x1b")), []);
  assert.deepEqual(decoder.decode(bytes("[")), []);
  assert.deepEqual(decoder.decode(bytes("1;5")), []);
  assert.deepEqual(decoder.decode(bytes("D")), [{ type: "left", ctrl: true }]);
});

Deno.test("KeyDecoder flushes pending input as keys", async (t) => {
  const cases: [name: string, input: Uint8Array, expected: KeyEvent[]][] = [
    ["escape and bracket as Alt-[", bytes("\x1b["), [{ type: "alt", key: "[" }]],
    ["escape and O as Alt-O", bytes("\x1bO"), [{ type: "alt", key: "O" }]],
    ["incomplete sequence is dropped", bytes("\x1b[1;5"), []],
    ["incomplete character as U+FFFD", bytes("世").subarray(0, 2), [
      { type: "text", text: "\uFFFD" },
    ]],
    ["escape before an incomplete character", bytes("\x1b世").subarray(0, 3), [
      { type: "alt", key: "\uFFFD" },
    ]],
  ];
  for (const [name, input, expected] of cases) {
    await t.step(name, () => {
      const decoder = new KeyDecoder();
      assert.deepEqual(decoder.decode(input), []);
      assert.equal(decoder.pending, true);
      assert.deepEqual(decoder.flush(), expected);
      assert.equal(decoder.pending, false);
    });
  }
});

Deno.test("KeyDecoder treats CR and LF split across reads as one enter", () => {
  const decoder = new KeyDecoder();
  assert.deepEqual(decoder.decode(bytes("hi\r")), [{ type: "text", text: "hi" }, {
    type: "enter",
  }]);
  assert.deepEqual(decoder.decode(bytes("\n")), []);
  assert.deepEqual(decoder.decode(bytes("\n")), [{ type: "enter" }]);
});

Deno.test("KeyDecoder delivers a paste split across many reads as one event", () => {
  const text = "first line\r\nsecond 你好 👍🏽\rthird\n" + "x".repeat(5000);
  const input = bytes(`\x1b[200~${text}\x1b[201~\r`);
  const decoder = new KeyDecoder();
  const events: KeyEvent[] = [];
  // Deterministic chunk sizes from 1 to 7 bytes, cutting the markers and characters anywhere.
  for (let offset = 0, size = 1; offset < input.length; offset += size, size = size % 7 + 1) {
    events.push(...decoder.decode(input.subarray(offset, offset + size)));
    if (offset + size < input.length - 7 && offset > 6) {
      assert.equal(decoder.pasting, true);
      assert.equal(decoder.pending, false);
      // A timed flush in the middle of a paste must not end it.
      assert.deepEqual(decoder.flush(), []);
    }
  }
  assert.deepEqual(events, [
    { type: "paste", text: text.replace(/\r\n?/g, "\n") },
    { type: "enter" },
  ]);
  assert.equal(decoder.pasting, false);
});

Deno.test("KeyDecoder cuts a paste at the size limit on a character boundary", async (t) => {
  await t.step("ASCII", () => {
    const decoder = new KeyDecoder({ maxPasteBytes: 4 });
    assert.deepEqual(decoder.decode(bytes("\x1b[200~abcdef\x1b[201~")), [
      { type: "paste", text: "abcd" },
    ]);
  });
  await t.step("Chinese", () => {
    const decoder = new KeyDecoder({ maxPasteBytes: 4 });
    assert.deepEqual(decoder.decode(bytes("\x1b[200~你好\x1b[201~")), [
      { type: "paste", text: "你" },
    ]);
  });
});

Deno.test("KeyDecoder never types an unknown escape sequence as text", () => {
  const unknown = [
    "\x1b[15~",
    "\x1b[24;5~",
    "\x1b[?1;2c",
    "\x1b[>0;95;0c",
    "\x1b[<35;1;1m",
    "\x1b[1;2P",
    "\x1b[57399u",
    "\x1bOS",
    "\x1b[[E",
  ];
  for (const sequence of unknown) {
    for (const chunks of splits(bytes(sequence + "ok"))) {
      assert.deepEqual(decodeChunks(chunks), [{ type: "text", text: "ok" }], sequence);
    }
  }
});

Deno.test("KeyDecoder drops an overlong sequence instead of holding it forever", () => {
  const decoder = new KeyDecoder();
  assert.deepEqual(decoder.decode(bytes("\x1b[" + "1".repeat(100))), []);
  assert.equal(decoder.pending, false);
});
