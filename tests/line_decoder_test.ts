import { deepEqual, equal, ok } from "node:assert/strict";
import { type DecodedLine, LineDecoder } from "../protocol/line_decoder.ts";
import { concat } from "./_helpers.ts";
import { Prng } from "./_prng.ts";

const encoder = new TextEncoder();

const FRAMES = [
  "你好世界",
  "👨‍👩‍👧",
  "👍🏽 thumbs",
  "e\u0301",
  "",
  '{"type":"send","id":1,"room":"#lobby","text":"你好 👍🏽 e\u0301"}',
  "plain ascii",
];

const TOO_LARGE = { ok: false, code: "frame_too_large" } as const;
const BAD_UTF8 = { ok: false, code: "bad_utf8" } as const;

/** Drops the human-readable message so results compare by code. */
function summarize(lines: DecodedLine[]): Array<{ ok: boolean; text?: string; code?: string }> {
  return lines.map((line) => line.ok ? line : { ok: false, code: line.code });
}

function said(...texts: string[]): Array<{ ok: true; text: string }> {
  return texts.map((text) => ({ ok: true, text }));
}

function bytesOf(...frames: string[]): Uint8Array {
  return encoder.encode(frames.map((frame) => frame + "\n").join(""));
}

/** Feeds the chunks in order and collects every line they produce. */
function decode(decoder: LineDecoder, chunks: Iterable<Uint8Array>) {
  const lines: DecodedLine[] = [];
  for (const chunk of chunks) lines.push(...decoder.push(chunk));
  return summarize(lines);
}

function* splitAt(bytes: Uint8Array, ...cuts: number[]): Generator<Uint8Array> {
  let start = 0;
  for (const cut of cuts) {
    yield bytes.subarray(start, cut);
    start = cut;
  }
  yield bytes.subarray(start);
}

function* inChunksOf(bytes: Uint8Array, size: number): Generator<Uint8Array> {
  for (let start = 0; start < bytes.length; start += size) {
    yield bytes.subarray(start, start + size);
  }
}

function* inRandomChunks(
  bytes: Uint8Array,
  prng: Prng,
  maxSize: number,
): Generator<Uint8Array> {
  let start = 0;
  while (start < bytes.length) {
    const size = prng.int(maxSize + 1);
    yield bytes.subarray(start, start + size);
    start += size;
  }
}

Deno.test("decoder returns multi-byte frames whole when split at every byte boundary", () => {
  const bytes = bytesOf(...FRAMES);
  const expected = said(...FRAMES);
  for (let cut = 0; cut <= bytes.length; cut++) {
    const decoder = new LineDecoder({ maxBytes: 1024 });
    deepEqual(decode(decoder, splitAt(bytes, cut)), expected, `split at byte ${cut}`);
    equal(decoder.pendingBytes, 0);
  }
});

Deno.test("decoder returns multi-byte frames whole when split at every pair of byte boundaries", () => {
  const bytes = bytesOf("你好世界", "👨‍👩‍👧", "👍🏽", "e\u0301");
  const expected = said("你好世界", "👨‍👩‍👧", "👍🏽", "e\u0301");
  for (let first = 0; first <= bytes.length; first++) {
    for (let second = first; second <= bytes.length; second++) {
      const decoder = new LineDecoder({ maxBytes: 1024 });
      deepEqual(
        decode(decoder, splitAt(bytes, first, second)),
        expected,
        `split at bytes ${first} and ${second}`,
      );
    }
  }
});

Deno.test("decoder returns multi-byte frames whole when fed one byte at a time", () => {
  const decoder = new LineDecoder({ maxBytes: 1024 });
  deepEqual(decode(decoder, inChunksOf(bytesOf(...FRAMES), 1)), said(...FRAMES));
  equal(decoder.pendingBytes, 0);
});

Deno.test("decoder returns the same lines for random chunk sizes from a seeded generator", () => {
  const bytes = bytesOf(...FRAMES, ...FRAMES.toReversed(), ...FRAMES);
  const expected = said(...FRAMES, ...FRAMES.toReversed(), ...FRAMES);
  for (const seed of [1, 2, 3, 42, 1234, 0xc0ffee]) {
    const prng = new Prng(seed);
    for (let round = 0; round < 200; round++) {
      const decoder = new LineDecoder({ maxBytes: 1024 });
      deepEqual(
        decode(decoder, inRandomChunks(bytes, prng, 13)),
        expected,
        `seed ${seed}, round ${round}`,
      );
    }
  }
});

Deno.test("decoder keeps its own copy of a partial line when the caller reuses the chunk", () => {
  const decoder = new LineDecoder({ maxBytes: 1024 });
  const bytes = bytesOf("你好世界", "👨‍👩‍👧");
  const buffer = new Uint8Array(5);
  const lines: DecodedLine[] = [];
  for (let start = 0; start < bytes.length; start += buffer.length) {
    const part = bytes.subarray(start, start + buffer.length);
    buffer.set(part);
    lines.push(...decoder.push(buffer.subarray(0, part.length)));
    buffer.fill(0xff);
  }
  deepEqual(summarize(lines), said("你好世界", "👨‍👩‍👧"));
});

Deno.test("decoder holds an unfinished line until its newline arrives", () => {
  const decoder = new LineDecoder({ maxBytes: 1024 });
  deepEqual(decoder.push(encoder.encode("你好")), []);
  equal(decoder.pendingBytes, 6);
  deepEqual(decoder.push(encoder.encode("世界")), []);
  equal(decoder.pendingBytes, 12);
  deepEqual(decoder.push(encoder.encode("\n")), said("你好世界"));
  equal(decoder.pendingBytes, 0);
  deepEqual(decoder.push(new Uint8Array(0)), []);
});

Deno.test("decoder handles CRLF line endings", async (t) => {
  const cases: Array<[string, string[], string[]]> = [
    ["CRLF in one chunk", ["a\r\nb\r\n"], ["a", "b"]],
    ["CR and LF in different chunks", ["你好\r", "\n世界\r\n"], ["你好", "世界"]],
    ["CRLF alone is an empty line", ["\r\n"], [""]],
    ["mixed LF and CRLF", ["a\nb\r\nc\n"], ["a", "b", "c"]],
    ["a CR inside a line is kept", ["a\rb\n"], ["a\rb"]],
    ["only one trailing CR is removed", ["a\r\r\n"], ["a\r"]],
  ];
  for (const [name, chunks, expected] of cases) {
    await t.step(name, () => {
      const decoder = new LineDecoder({ maxBytes: 1024 });
      deepEqual(decode(decoder, chunks.map((chunk) => encoder.encode(chunk))), said(...expected));
    });
  }
  await t.step("CRLF split at every byte boundary", () => {
    const bytes = encoder.encode("你好\r\n👍🏽\r\n\r\ne\u0301\r\n");
    for (let cut = 0; cut <= bytes.length; cut++) {
      const decoder = new LineDecoder({ maxBytes: 1024 });
      deepEqual(
        decode(decoder, splitAt(bytes, cut)),
        said("你好", "👍🏽", "", "e\u0301"),
        `split at byte ${cut}`,
      );
    }
  });
});

Deno.test("decoder returns empty lines as empty text", () => {
  const decoder = new LineDecoder({ maxBytes: 8 });
  deepEqual(decode(decoder, [encoder.encode("\n\na\n\n")]), said("", "", "a", ""));
});

Deno.test("decoder accepts a frame exactly at the limit and rejects one byte more", async (t) => {
  // "你好ab" is 8 bytes; "你好abc" is 9.
  await t.step("at the limit", () => {
    const decoder = new LineDecoder({ maxBytes: 8 });
    deepEqual(decode(decoder, [bytesOf("你好ab")]), said("你好ab"));
  });
  await t.step("one byte over, in one chunk", () => {
    const decoder = new LineDecoder({ maxBytes: 8 });
    deepEqual(decode(decoder, [bytesOf("你好abc", "next")]), [TOO_LARGE, ...said("next")]);
  });
  await t.step("the error names the limit", () => {
    const [line] = new LineDecoder({ maxBytes: 8 }).push(bytesOf("你好abc"));
    ok(line && !line.ok);
    ok(line.message.includes("8 bytes"), line.message);
  });
  await t.step("at, over and after the limit, split at every byte boundary", () => {
    const bytes = bytesOf("你好ab", "你好abc", "after", "😀😀");
    for (let cut = 0; cut <= bytes.length; cut++) {
      const decoder = new LineDecoder({ maxBytes: 8 });
      deepEqual(
        decode(decoder, splitAt(bytes, cut)),
        [...said("你好ab"), TOO_LARGE, ...said("after", "😀😀")],
        `split at byte ${cut}`,
      );
      equal(decoder.pendingBytes, 0);
    }
  });
  await t.step("at, over and after the limit, one byte at a time", () => {
    const decoder = new LineDecoder({ maxBytes: 8 });
    deepEqual(
      decode(decoder, inChunksOf(bytesOf("你好ab", "你好abc", "after"), 1)),
      [...said("你好ab"), TOO_LARGE, ...said("after")],
    );
  });
});

Deno.test("decoder discards a long frame arriving in many chunks without buffering it", () => {
  const limit = 16;
  const long = "x".repeat(1000) + "你好".repeat(100);
  const bytes = bytesOf("first", long, "你好 after", long, long, "last");
  const expected = [...said("first"), TOO_LARGE, ...said("你好 after"), TOO_LARGE, TOO_LARGE];
  for (const size of [1, 2, 3, 7, 16, 17, 100]) {
    const decoder = new LineDecoder({ maxBytes: limit });
    const lines: DecodedLine[] = [];
    for (const chunk of inChunksOf(bytes, size)) {
      lines.push(...decoder.push(chunk));
      // One byte of slack: it may be the "\r" of a "\r\n" line end.
      ok(
        decoder.pendingBytes <= limit + 1,
        `holds ${decoder.pendingBytes} bytes, chunks of ${size}`,
      );
    }
    deepEqual(summarize(lines), [...expected, ...said("last")], `chunks of ${size}`);
  }
  const prng = new Prng(7);
  for (let round = 0; round < 200; round++) {
    const decoder = new LineDecoder({ maxBytes: limit });
    const lines: DecodedLine[] = [];
    for (const chunk of inRandomChunks(bytes, prng, 40)) {
      lines.push(...decoder.push(chunk));
      ok(decoder.pendingBytes <= limit + 1, `holds ${decoder.pendingBytes} bytes, round ${round}`);
    }
    deepEqual(summarize(lines), [...expected, ...said("last")], `round ${round}`);
  }
});

Deno.test("decoder reports a long frame once even when its newline never arrives", () => {
  const decoder = new LineDecoder({ maxBytes: 16 });
  const lines: DecodedLine[] = [];
  for (let i = 0; i < 1000; i++) {
    lines.push(...decoder.push(encoder.encode("0123456789")));
    ok(decoder.pendingBytes <= 16);
  }
  deepEqual(summarize(lines), [TOO_LARGE]);
  deepEqual(summarize(decoder.push(encoder.encode("\nok\n"))), said("ok"));
});

Deno.test({
  name: "decoder accepts a frame exactly at the limit when it ends in CRLF",
  fn() {
    const bytes = encoder.encode("你好ab\r\nnext\r\n");
    for (let cut = 0; cut <= bytes.length; cut++) {
      const decoder = new LineDecoder({ maxBytes: 8 });
      deepEqual(decode(decoder, splitAt(bytes, cut)), said("你好ab", "next"), `split at ${cut}`);
    }
  },
});

const INVALID_UTF8: Array<[string, number[], string]> = [
  ["lone continuation byte", [0x61, 0x80, 0x62], "a\uFFFDb"],
  ["truncated sequence", [0xe4, 0xbd], "\uFFFD"],
  ["truncated sequence before a valid character", [0xf0, 0x9f, 0x98, 0x61], "\uFFFDa"],
  ["overlong encoding C0 AF", [0xc0, 0xaf], "\uFFFD\uFFFD"],
  ["surrogate ED A0 80", [0xed, 0xa0, 0x80], "\uFFFD\uFFFD\uFFFD"],
  ["byte FF", [0xff], "\uFFFD"],
];

Deno.test("decoder rejects invalid UTF-8 with bad_utf8 and goes on with the next line", async (t) => {
  for (const [name, invalid] of INVALID_UTF8) {
    await t.step(name, () => {
      const bytes = concat(new Uint8Array([...invalid, 0x0a]), bytesOf("你好"));
      for (let cut = 0; cut <= bytes.length; cut++) {
        const decoder = new LineDecoder({ maxBytes: 64 });
        deepEqual(
          decode(decoder, splitAt(bytes, cut)),
          [BAD_UTF8, ...said("你好")],
          `split at byte ${cut}`,
        );
      }
    });
  }
});

Deno.test("decoder replaces invalid UTF-8 with U+FFFD when not fatal", async (t) => {
  for (const [name, invalid, replaced] of INVALID_UTF8) {
    await t.step(name, () => {
      const bytes = concat(new Uint8Array([...invalid, 0x0a]), bytesOf("你好"));
      for (let cut = 0; cut <= bytes.length; cut++) {
        const decoder = new LineDecoder({ maxBytes: 64, fatal: false });
        deepEqual(
          decode(decoder, splitAt(bytes, cut)),
          said(replaced, "你好"),
          `split at byte ${cut}`,
        );
      }
    });
  }
});

Deno.test("decoder does not let a truncated sequence swallow the next line", () => {
  const decoder = new LineDecoder({ maxBytes: 64, fatal: false });
  const bytes = concat(new Uint8Array([0xe4, 0xbd, 0x0a]), bytesOf("好"));
  deepEqual(decode(decoder, [bytes]), said("\uFFFD", "好"));
});

Deno.test("decoder gives the same lines for many lines in one chunk as for one byte at a time", () => {
  const long = "x".repeat(65);
  const parts = [
    bytesOf(...FRAMES),
    encoder.encode("crlf\r\n\uFEFFbom kept\r\n"),
    new Uint8Array([0xe4, 0xbd, 0x0a]),
    bytesOf(long, "x".repeat(64), ...FRAMES),
    encoder.encode("unfinished"),
  ];
  const bytes = concat(...parts);
  for (const fatal of [true, false]) {
    const whole = decode(new LineDecoder({ maxBytes: 64, fatal }), [bytes]);
    const byByte = decode(new LineDecoder({ maxBytes: 64, fatal }), inChunksOf(bytes, 1));
    deepEqual(whole, byByte, `fatal: ${fatal}`);
    equal(whole.length, 2 * FRAMES.length + 5);
    ok(whole.some((line) => line.ok && line.text === "\uFEFFbom kept"));
  }
  // All valid and within the limit: decoded together, each line still on its own.
  const valid = bytesOf(...FRAMES, "crlf\r");
  deepEqual(decode(new LineDecoder({ maxBytes: 1024 }), [valid]), said(...FRAMES, "crlf"));
});
