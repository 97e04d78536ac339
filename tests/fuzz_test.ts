import { deepEqual, equal, fail, match, ok } from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { type ChatClient, connect, createIdentity, ProtocolError, serve } from "../mod.ts";
import { parseCommand } from "../protocol/commands.ts";
import { checkName } from "../protocol/names.ts";
import {
  type ClientFrame,
  parseClientFrame,
  type RequestId,
  requestIdOf,
} from "../protocol/frames.ts";
import { DEFAULT_LIMITS } from "../protocol/limits.ts";
import { type DecodedLine, LineDecoder } from "../protocol/line_decoder.ts";
import { Prng } from "./_prng.ts";
import { RawPeer } from "./_raw.ts";
import { concat, flipBit, local } from "./_helpers.ts";

const SEED = 0x5eed_c4a7;
const SEED_NAME = `0x${SEED.toString(16)}`;
const encoder = new TextEncoder();
const MAX_FRAME = DEFAULT_LIMITS.maxFrameBytes;
const MIB = 1024 * 1024;

/**
 * Runs a full garbage collection, so memory figures count what is kept rather than what has
 * not been collected yet.
 */
function collectGarbage(): void {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

// ---------------------------------------------------------------------------
// What the server may send back.

const CLIENT_TYPES = [
  "hello",
  "send",
  "dm",
  "nick",
  "who",
  "join",
  "part",
  "rooms",
  "topic",
  "history",
  "quit",
  "ping",
  "pong",
  "auth",
  "whois",
  "kick",
  "ban",
  "unban",
  "mute",
  "offer",
  "accept",
  "decline",
  "cancel",
  "received",
  "data",
];
const DECODE_CODES = new Set(["frame_too_large", "bad_utf8"]);
const PARSE_CODES = new Set(["bad_json", "bad_request", "unknown_type"]);
const SERVER_CODES = new Set([
  "frame_too_large",
  "bad_utf8",
  "bad_json",
  "bad_request",
  "unknown_type",
  "unsupported_version",
  "not_registered",
  "already_registered",
  "invalid_name",
  "name_taken",
  "invalid_room",
  "not_in_room",
  "no_such_user",
  "invalid_text",
  "shutting_down",
  "storage_failed",
  "unauthorized",
  "name_claimed",
  "banned",
  "muted",
  "not_operator",
  "auth_failed",
  "no_such_transfer",
  "transfer_refused",
  "rate_limited",
  "too_many_rooms",
]);
/** Frames that answer one request. */
const ANSWER_TYPES = new Set(["ack", "error", "welcome", "challenge"]);

// ---------------------------------------------------------------------------
// Hostile input.

const PUBLIC_KEY = new Uint8Array(32).fill(7).toBase64();
const SIGNATURE = new Uint8Array(64).fill(9).toBase64();
const SHA256 = "ab".repeat(32);

/** A valid frame of every client type, and a few variants. */
const TEMPLATES: Record<string, unknown>[] = [
  { type: "hello", id: 1, v: 1, name: "fuzz", client: "fuzz/1", reconnect: true, history: 2 },
  { type: "hello", id: "h", v: 1, name: "fuzzkey", key: PUBLIC_KEY },
  { type: "hello", id: 1, v: 1, name: "fuzz", key: PUBLIC_KEY, resume: "token", password: "pw" },
  { type: "auth", id: "h", signature: SIGNATURE },
  { type: "send", id: 2, room: "#lobby", text: "hello", key: "k1" },
  { type: "send", id: 3, room: "#lobby", text: "waves", action: true },
  { type: "dm", id: 4, to: "alice", text: "psst", key: "d1" },
  { type: "nick", id: 5, name: "fuzz2" },
  { type: "who", id: 6, room: "#lobby" },
  { type: "who", id: 7 },
  { type: "join", id: 8, room: "#fuzz", history: 3 },
  { type: "join", id: 9, room: "#lobby" },
  { type: "part", id: 10, room: "#fuzz" },
  { type: "rooms", id: 11 },
  { type: "topic", id: 12, room: "#lobby", topic: "fuzzing" },
  { type: "topic", id: 13, room: "#lobby" },
  { type: "history", id: 14, room: "#lobby", before: 10, after: 0, limit: 5 },
  { type: "quit", id: 15 },
  { type: "ping", id: 16 },
  { type: "pong" },
  { type: "whois", id: 17, name: "alice" },
  { type: "kick", id: 18, name: "alice", reason: "because" },
  { type: "ban", id: 19, target: "ip:127.0.0.1", duration: 60, reason: "because" },
  { type: "unban", id: 20, target: "key:SHA256:abc" },
  { type: "mute", id: 21, name: "alice", duration: 0 },
  {
    type: "offer",
    id: 22,
    to: "alice",
    name: "notes.txt",
    size: 10,
    mime: "text/plain",
    sha256: SHA256,
  },
  { type: "offer", id: 23, to: "#lobby", name: "../../.bashrc", size: 2 ** 32, sha256: SHA256 },
  { type: "accept", id: 24, transfer: "t1" },
  { type: "decline", id: 25, transfer: "t1" },
  { type: "cancel", id: 26, transfer: "t1" },
  { type: "received", id: 27, transfer: "t1", ok: true },
  { type: "data", token: "t1" },
];

const DEPTH = 10_000;
const DEEP_ARRAY = "[".repeat(DEPTH) + "]".repeat(DEPTH);
const DEEP_OBJECT = '{"a":'.repeat(DEPTH) + "0" + "}".repeat(DEPTH);

/** JSON texts of values that are out of range, of the wrong type, or nasty. */
const HOSTILE_VALUES = [
  "1e308",
  "-1e308",
  "1e309",
  "-1e309",
  "-0",
  "0",
  "-1",
  "0.5",
  "1e-400",
  String(2 ** 53),
  String(2 ** 53 - 1),
  "18446744073709551616",
  "-9007199254740993",
  "null",
  "true",
  "false",
  "[]",
  "{}",
  "[1]",
  '""',
  '" "',
  '"NaN"',
  '"Infinity"',
  '"-0"',
  '"1e308"',
  String.raw`"\u0000"`,
  String.raw`"\ud800"`,
  String.raw`"\udfff"`,
  String.raw`"\udfff\ud800"`,
  String.raw`"a\ud800b"`,
  String.raw`"a\nb"`,
  String.raw`"\r\n"`,
  String.raw`"\u001b[2J\u001b]0;owned\u0007"`,
  String.raw`"\u202egnp.exe"`,
  String.raw`"\u2028"`,
  '"#lobby"',
  '"#"',
  '"# lobby"',
  String.raw`"#\u0000"`,
  '"alice"',
  '"ALICE"',
  String.raw`"\uff41lice"`,
  '"key:"',
  '"ip:"',
  '"ip:127.0.0.1"',
  '"__proto__"',
  '"constructor"',
  '{"__proto__":{"polluted":1}}',
  '{"constructor":{"prototype":{"polluted":1}}}',
  '{"#lobby":-0}',
  '{"#lobby":1e308}',
  '{"#lobby":"1"}',
  JSON.stringify("x".repeat(65)),
  JSON.stringify("😀".repeat(64)),
  JSON.stringify("😀".repeat(65)),
  JSON.stringify("é".repeat(33)),
  JSON.stringify("x".repeat(9000)),
  JSON.stringify("A".repeat(43) + "="),
  JSON.stringify("A".repeat(86) + "=="),
];
const HOSTILE_KEYS = [
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "valueOf",
  "hasOwnProperty",
  "type",
  "id",
  "",
  "\u0000",
];
const HOSTILE_TYPES = [
  "",
  "HELLO",
  "Ping",
  "ping ",
  " ping",
  "ping\u0000",
  "__proto__",
  "constructor",
  "toString",
  "hasOwnProperty",
  "valueOf",
  "message",
  "welcome",
  "ack",
  "error",
  "bye",
  "challenge",
  "x".repeat(1000),
  ...CLIENT_TYPES,
];
const HOSTILE_IDS = [
  '""',
  JSON.stringify("x".repeat(64)),
  JSON.stringify("x".repeat(65)),
  JSON.stringify("😀".repeat(64)),
  JSON.stringify("😀".repeat(65)),
  "-1",
  "1.5",
  "-0",
  "9007199254740991",
  "9007199254740992",
  "1e308",
  "null",
  "true",
  "[]",
  "{}",
  '"0"',
  String.raw`"\ud800"`,
];
/** Invalid UTF-8: overlong forms, encoded surrogates, beyond U+10FFFF, stray and cut sequences. */
const BAD_UTF8 = [
  [0xc0, 0x80],
  [0xc1, 0xbf],
  [0xe0, 0x80, 0xaf],
  [0xf0, 0x80, 0x80, 0xaf],
  [0xed, 0xa0, 0x80],
  [0xed, 0xbf, 0xbf],
  [0xf4, 0x90, 0x80, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xff],
  [0xfe],
  [0x80],
  [0xbf],
  [0xe2, 0x82],
  [0xf0, 0x9f, 0x98],
].map((bytes) => new Uint8Array(bytes));
const JSON_PIECES = ['"', "\\", "{", "}", "[", "]", ",", ":", "\\u", "\\ud800", "\u00e9", "😀"].map(
  (piece) => encoder.encode(piece),
);

type Entry = [key: string, json: string];

function entriesOf(frame: Record<string, unknown>): Entry[] {
  return Object.entries(frame).map(([key, value]) => [key, JSON.stringify(value)]);
}

/** Writes entries as a JSON object, keeping duplicates and keys such as `__proto__`. */
function serialize(entries: Entry[]): string {
  return "{" + entries.map(([key, json]) => `${JSON.stringify(key)}:${json}`).join(",") + "}";
}

function setAll(entries: Entry[], key: string, json: string): Entry[] {
  const kept = entries.filter(([name]) => name !== key);
  kept.splice(Math.min(1, kept.length), 0, [key, json]);
  return kept;
}

function mutateEntries(prng: Prng, entries: Entry[]): Entry[] {
  const out = [...entries];
  const at = prng.int(out.length);
  const entry = out[at];
  switch (prng.int(9)) {
    case 0:
      out.splice(at, 1);
      return out;
    case 1:
      if (entry !== undefined) out[at] = [entry[0], prng.pick(HOSTILE_VALUES)];
      return out;
    case 2:
      if (entry !== undefined) {
        const json = prng.chance(0.5) ? entry[1] : prng.pick(HOSTILE_VALUES);
        out.splice(prng.int(out.length + 1), 0, [entry[0], json]);
      }
      return out;
    case 3:
      out.splice(prng.int(out.length + 1), 0, [prng.pick(HOSTILE_KEYS), prng.pick(HOSTILE_VALUES)]);
      return out;
    case 4:
      return setAll(out, "type", JSON.stringify(prng.pick(HOSTILE_TYPES)));
    case 5:
      return setAll(out, "id", prng.pick(HOSTILE_IDS));
    case 6: {
      const other = entriesOf(prng.pick(TEMPLATES));
      const field = prng.pick(other);
      return setAll(out, field[0], field[1]);
    }
    case 7:
      if (entry !== undefined) {
        out[at] = [
          entry[0],
          prng.chance(0.1) ? prng.pick([DEEP_ARRAY, DEEP_OBJECT]) : `[${entry[1]}]`,
        ];
      }
      return out;
    default:
      for (let i = out.length - 1; i > 0; i--) {
        const j = prng.int(i + 1);
        [out[i], out[j]] = [out[j]!, out[i]!];
      }
      return out;
  }
}

function splice(bytes: Uint8Array, at: number, remove: number, insert: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length - remove + insert.length);
  out.set(bytes.subarray(0, at));
  out.set(insert, at);
  out.set(bytes.subarray(at + remove), at + insert.length);
  return out;
}

function mutateBytes(prng: Prng, bytes: Uint8Array): Uint8Array {
  const at = prng.int(bytes.length + 1);
  const inside = Math.min(at, bytes.length - 1);
  switch (prng.int(10)) {
    case 0:
      if (bytes.length === 0) return bytes;
      return flipBit(bytes, inside * 8 + prng.int(8));
    case 1:
      return splice(bytes, at, 0, prng.bytes(1));
    case 2:
      return bytes.length === 0 ? bytes : splice(bytes, inside, 1, new Uint8Array(0));
    case 3:
      return bytes.length === 0 ? bytes : splice(bytes, inside, 1, prng.bytes(1));
    case 4:
      return bytes.subarray(0, at);
    case 5: {
      const start = prng.int(bytes.length + 1);
      const piece = bytes.slice(start, start + prng.int(40));
      return splice(bytes, at, 0, piece);
    }
    case 6:
      return splice(bytes, at, 0, prng.pick(BAD_UTF8));
    case 7:
      return splice(bytes, at, 0, new Uint8Array(prng.range(1, 3)));
    case 8:
      return splice(bytes, at, 0, new Uint8Array([0x0d]));
    default:
      return splice(bytes, at, 0, prng.pick(JSON_PIECES));
  }
}

/** Lines every decoder run sees at least once: limits, nesting, non-objects, prototype keys. */
function specialLines(maxBytes: number): Uint8Array[] {
  const ping = '{"type":"ping","id":1}';
  return [
    "",
    " ",
    "\t",
    "\r",
    DEEP_ARRAY,
    DEEP_OBJECT,
    `{"type":"send","id":1,"room":"#lobby","text":"deep","extra":${DEEP_ARRAY}}`,
    `{"type":"hello","id":1,"v":1,"name":"deep","last":${DEEP_OBJECT}}`,
    `{"type":"send","id":1,"room":"#lobby","text":${DEEP_ARRAY}}`,
    "\uFEFF" + ping,
    ping + ping,
    ping + "   ",
    ping + "\u0000",
    '"just a string"',
    "42",
    "null",
    "[]",
    "true",
    "{",
    "}",
    '{"type":"ping","id":1,"__proto__":{"polluted":true}}',
    '{"__proto__":{"type":"ping"},"id":1}',
    '{"type":"__proto__","id":1}',
    '{"type":"constructor","id":1}',
    '{"type":"toString","id":1}',
    '{"type":"hello","id":1,"v":1e309,"name":"x"}',
    '{"type":"hello","id":1,"v":-0,"name":"x"}',
    '{"type":"join","id":1,"room":"#a","history":1e308}',
    '{"type":"history","id":1,"room":"#lobby","before":18446744073709551616}',
    String.raw`{"type":"send","id":1,"room":"#lobby","text":"\ud800"}`,
    String.raw`{"type":"send","id":1,"room":"#lobby","text":"\udc00\ud800"}`,
    String.raw`{"type":"nick","id":1,"name":"\ud83d"}`,
    "x".repeat(maxBytes - 1),
    "x".repeat(maxBytes),
    "x".repeat(maxBytes) + "\r",
    "x".repeat(maxBytes + 1),
    ping.padEnd(maxBytes, " "),
    ping.padEnd(maxBytes + 1, " "),
    "x".repeat(maxBytes * 3),
  ].map((line) => encoder.encode(line));
}

/** One hostile line, without its line feed (it may contain line feeds of its own). */
function hostileLine(prng: Prng, specials: Uint8Array[]): Uint8Array {
  const roll = prng.next();
  if (roll < 0.08) return prng.bytes(prng.int(120));
  if (roll < 0.1) return prng.pick(specials);
  let entries = entriesOf(prng.pick(TEMPLATES));
  for (let i = prng.int(4); i > 0; i--) entries = mutateEntries(prng, entries);
  let bytes: Uint8Array = encoder.encode(serialize(entries));
  if (prng.chance(0.4)) {
    for (let i = prng.range(1, 4); i > 0; i--) bytes = mutateBytes(prng, bytes);
  }
  return bytes;
}

const LF = new Uint8Array([0x0a]);
const CRLF = new Uint8Array([0x0d, 0x0a]);

/** The lines, each ended by `\n` or `\r\n`. */
function joinLines(prng: Prng, lines: Uint8Array[]): Uint8Array {
  return concat(...lines.flatMap((line) => [line, prng.chance(0.1) ? CRLF : LF]));
}

// ---------------------------------------------------------------------------
// Checks shared by both parts.

function isRequestId(value: unknown): boolean {
  if (typeof value === "string") {
    return value.length > 0 && [...value].length <= 64;
  }
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

type Summary = [ok: boolean, textOrCode: string];

function summary(line: DecodedLine): Summary {
  return line.ok ? [true, line.text] : [false, line.code];
}

/** The lines of a stream, split the obvious way, all at once: what the decoder must agree with. */
function referenceLines(stream: Uint8Array, maxBytes: number): Summary[] {
  const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const lines: Summary[] = [];
  for (let start = 0;;) {
    const end = stream.indexOf(0x0a, start);
    if (end === -1) return lines;
    let line = stream.subarray(start, end);
    if (line.at(-1) === 0x0d) line = line.subarray(0, -1);
    if (line.length > maxBytes) lines.push([false, "frame_too_large"]);
    else {
      try {
        lines.push([true, utf8.decode(line)]);
      } catch {
        lines.push([false, "bad_utf8"]);
      }
    }
    start = end + 1;
  }
}

/** Parses a decoded line as the server does, and says what became of it. */
function outcome(line: DecodedLine): string {
  if (!line.ok) {
    ok(DECODE_CODES.has(line.code), `unknown decoder code "${line.code}"`);
    return line.code;
  }
  try {
    const frame = parseClientFrame(line.text);
    ok(CLIENT_TYPES.includes(frame.type), `parsed an unknown type "${frame.type}"`);
    if (frame.type !== "pong" && frame.type !== "data") {
      ok(isRequestId(frame.id), `parsed a bad id ${String(frame.id)}`);
    }
    return frame.type;
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    ok(PARSE_CODES.has(error.code), `unknown parser code "${error.code}"`);
    const id = requestIdOf(error);
    ok(id === undefined || isRequestId(id));
    return error.code;
  }
}

Deno.test(`decoder and parser turn 100,000 hostile frames into frames or known errors (seed ${SEED_NAME})`, () => {
  const seen = new Map<string, number>();
  let frames = 0;
  for (const [maxBytes, count] of [[MAX_FRAME, 60_000], [300, 40_000]] as const) {
    const prng = new Prng(SEED + maxBytes);
    const specials = specialLines(maxBytes);
    const scratch = new Uint8Array(4 * maxBytes + 64);
    for (let done = 0; done < count;) {
      const lines = done === 0 ? [...specials] : [];
      while (lines.length < 1000) lines.push(hostileLine(prng, specials));
      done += lines.length;
      frames += lines.length;
      const stream = joinLines(prng, lines);
      const decoder = new LineDecoder({ maxBytes });
      const decoded: DecodedLine[] = [];
      for (let at = 0; at < stream.length;) {
        const size = prng.chance(0.9) ? prng.range(1, 64) : prng.range(1, scratch.length);
        const chunk = stream.subarray(at, at + size);
        // The decoder may not keep the chunk: it is overwritten as soon as push returns.
        scratch.set(chunk);
        decoded.push(...decoder.push(scratch.subarray(0, chunk.length)));
        scratch.fill(0x0a, 0, chunk.length);
        ok(decoder.pendingBytes <= maxBytes + 1, `holds ${decoder.pendingBytes} bytes`);
        at += chunk.length;
      }
      equal(decoder.pendingBytes, 0);
      deepEqual(decoded.map(summary), referenceLines(stream, maxBytes));
      for (const line of decoded) {
        const what = outcome(line);
        seen.set(what, (seen.get(what) ?? 0) + 1);
      }
    }
  }
  ok(frames >= 100_000);
  // Every client type got through whole, and every kind of rejection happened.
  for (const what of [...CLIENT_TYPES, ...DECODE_CODES, ...PARSE_CODES]) {
    ok((seen.get(what) ?? 0) > 0, `never saw "${what}"`);
  }
  equal(({} as Record<string, unknown>).polluted, undefined);
  equal(Object.prototype.hasOwnProperty.call(Object.prototype, "polluted"), false);
});

// ---------------------------------------------------------------------------
// Live server.

/** Reads every line a raw peer receives, in the background. */
class Tap {
  readonly lines: string[] = [];
  readonly done: Promise<void>;
  #eof = false;
  #wake: (() => void) | undefined;

  constructor(peer: RawPeer) {
    this.done = this.#read(peer);
  }

  async #read(peer: RawPeer): Promise<void> {
    while (true) {
      const line = await peer.line();
      if (line === null) break;
      this.lines.push(line);
      this.#notify();
    }
    this.#eof = true;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** The index of the first line from `from` on that passes `test`, or -1 at EOF. */
  async find(test: (line: string) => boolean, from: number, timeout = 20_000): Promise<number> {
    const deadline = performance.now() + timeout;
    for (let index = from;;) {
      for (; index < this.lines.length; index++) {
        if (test(this.lines[index]!)) return index;
      }
      if (this.#eof) return -1;
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new Error(`No awaited line within ${timeout} ms; the last was ${this.lines.at(-1)}`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }
}

function answerTo(id: string): (line: string) => boolean {
  return (line) => {
    if (!line.includes(id)) return false;
    const frame = JSON.parse(line);
    return ANSWER_TYPES.has(frame.type) && frame.id === id;
  };
}

function ping(id: string): Uint8Array {
  return encoder.encode(JSON.stringify({ type: "ping", id }) + "\n");
}

/** Writes in a few random pieces, so the server sees other boundaries than ours. */
async function writeInPieces(peer: RawPeer, bytes: Uint8Array, prng: Prng): Promise<void> {
  for (let at = 0; at < bytes.length;) {
    const size = prng.range(1, Math.max(1, bytes.length >> 1));
    await peer.write(bytes.subarray(at, at + size));
    at += size;
  }
}

/**
 * Whether a line may go to the live server: lines that would end the connection on purpose do
 * not, nor, for a peer that must stay a stranger, a "hello" that could let it in.
 */
function liveSafe(line: Uint8Array, stranger: boolean): boolean {
  const decoder = new LineDecoder({ maxBytes: MAX_FRAME });
  for (const decoded of decoder.push(concat(line, LF))) {
    if (!decoded.ok) continue;
    let frame;
    try {
      frame = parseClientFrame(decoded.text);
    } catch {
      continue;
    }
    // "quit" is answered and then closes; each peer quits once, at its end.
    if (frame.type === "quit") return false;
    // Without a key, or with one and a resume token (unknown, so ignored), "hello" may succeed.
    if (stranger && frame.type === "hello" && (frame.key === undefined || frame.resume)) {
      return false;
    }
  }
  return true;
}

function liveLines(
  prng: Prng,
  specials: Uint8Array[],
  count: number,
  stranger: boolean,
): Uint8Array[] {
  const lines: Uint8Array[] = [];
  while (lines.length < count) {
    const line = hostileLine(prng, specials);
    if (liveSafe(line, stranger)) lines.push(line);
  }
  return lines;
}

/** A raw JSON peer sending hostile batches, with what each batch must be answered by. */
class HostilePeer {
  readonly label: string;
  #peer: RawPeer;
  #tap: Tap;
  #seen = 0;
  /** The same decoder the server runs on this connection, to know what it will read. */
  #mirror = new LineDecoder({ maxBytes: MAX_FRAME });
  /** Whether a "hello" got its welcome. */
  #registered = false;
  /** The id of a "hello" with a key whose challenge is open. */
  #challenge: RequestId | undefined;
  /** The server's port: a key proof must name it. */
  #port: number;

  private constructor(label: string, peer: RawPeer, port: number) {
    this.label = label;
    this.#peer = peer;
    this.#port = port;
    this.#tap = new Tap(peer);
  }

  static async open(port: number, label: string): Promise<HostilePeer> {
    const hostile = new HostilePeer(label, await RawPeer.connect(port), port);
    try {
      // The first byte is "{", so the connection speaks JSON from here on.
      await hostile.#peer.write(ping(`zz-open-${label}`));
      hostile.#seen = 1 + await hostile.#expect(`zz-open-${label}`);
      return hostile;
    } catch (error) {
      await hostile.close();
      throw error;
    }
  }

  async #expect(id: string): Promise<number> {
    const index = await this.#tap.find(answerTo(id), this.#seen);
    if (index === -1) {
      fail(`${this.label}: the server closed the connection after ${this.#tap.lines.at(-1)}`);
    }
    return index;
  }

  /**
   * Sends the lines and checks that each one got its answer, in order: the decoder's and the
   * parser's errors with their code and id, one answer with the request's id for each frame,
   * a challenge for a "hello" with a key and "auth_failed" for the frame after it, and nothing
   * for "pong". Returns how many hostile lines were sent.
   */
  async batch(n: number, lines: Uint8Array[], prng: Prng): Promise<number> {
    const last = `zz-sync-${n}-b`;
    // Two pings: if a "hello" with a key left a challenge open, the first one answers it.
    const bytes = concat(joinLines(prng, lines), ping(`zz-sync-${n}-a`), ping(last));
    const decoded = this.#mirror.push(bytes);
    await writeInPieces(this.#peer, bytes, prng);
    const end = await this.#expect(last);
    const frames = this.#tap.lines.slice(this.#seen, end + 1).map((line) => {
      try {
        return JSON.parse(line);
      } catch {
        return fail(`${this.label}: the server sent a line that is not JSON: ${line}`);
      }
    });
    this.#seen = end + 1;
    const where = `${this.label}, batch ${n}`;
    ok(!frames.some((frame) => frame.type === "bye"), `${where}: said bye`);
    const answers = frames.filter((frame) => ANSWER_TYPES.has(frame.type));
    let next = 0;
    const answer = (line: DecodedLine, ...expected: unknown[]): Record<string, unknown> => {
      const got = answers[next++];
      const request = line.ok ? line.text.slice(0, 200) : `(${line.code})`;
      ok(got !== undefined, `${where}: no answer to ${request}`);
      if (got.type === "error") ok(SERVER_CODES.has(got.code), `${where}: code "${got.code}"`);
      if (expected.length > 0) {
        // Through JSON, as the server sends them: an id of -0 comes back as 0.
        equal(
          JSON.stringify([got.type, got.id, got.code].slice(0, expected.length)),
          JSON.stringify(expected),
          `${where}: the answer to ${request} was ${JSON.stringify(got).slice(0, 200)}`,
        );
      }
      return got;
    };
    let sends: [DecodedLine, RequestId][] = [];
    const settle = () => {
      if (sends.length === 0) return;
      const got = sends.map(([line]) => answer(line));
      for (const one of got) {
        ok(one.type === "ack" || one.type === "error", `${where}: ${one.type}`);
      }
      const ids = (list: unknown[]) => list.map((id) => JSON.stringify(id)).sort();
      deepEqual(ids(got.map((one) => one.id)), ids(sends.map(([, id]) => id)), `${where}: sends`);
      sends = [];
    };
    for (const line of decoded) {
      if (line.ok && line.text.trim() === "") continue;
      let frame: ClientFrame | undefined;
      let refusal: ProtocolError | undefined;
      if (line.ok) {
        try {
          frame = parseClientFrame(line.text);
        } catch (error) {
          if (!(error instanceof ProtocolError)) throw error;
          refusal = error;
        }
      }
      // A frame other than "auth" while a challenge is open ends it ("auth_failed" for the
      // "hello"), then is handled as usual.
      if (frame !== undefined && this.#challenge !== undefined) {
        settle();
        answer(line, "error", this.#challenge, "auth_failed");
        this.#challenge = undefined;
        if (frame.type === "auth") continue;
      }
      if (frame?.type === "pong") continue;
      if (frame?.type === "send") {
        sends.push([line, frame.id]);
        continue;
      }
      // Anything else commits the sends before it, so their answers come first.
      settle();
      if (frame === undefined) {
        if (refusal === undefined) {
          answer(line, "error", undefined, (line as { code: string }).code);
        } else answer(line, "error", requestIdOf(refusal), refusal.code);
      } else if (frame.type === "data") {
        answer(line, "error", undefined, "bad_request");
      } else if (frame.type === "hello" && frame.key !== undefined && !this.#registered) {
        // Resume tokens here are made up, so the key must be proven; the name is checked
        // first, then that the proof would be for this server.
        if (!checkName(frame.name).ok) answer(line, "error", frame.id, "invalid_name");
        else if (
          typeof frame.server === "string" && frame.server.endsWith(`:${this.#port}`) &&
          (frame.tls ?? "") === ""
        ) {
          answer(line, "challenge", frame.id);
          this.#challenge = frame.id;
        } else answer(line, "error", frame.id, "auth_failed");
      } else {
        const got = answer(line);
        const id = (frame as { id?: RequestId }).id;
        equal(JSON.stringify(got.id), JSON.stringify(id), `${where}: the id in the answer`);
        ok(["ack", "error", "welcome"].includes(got.type as string), `${where}: ${got.type}`);
        if (got.type === "welcome") this.#registered = true;
      }
    }
    settle();
    equal(next, answers.length, `${where}: more answers than requests`);
    return lines.length;
  }

  /** Quits (or closes, if it never got a name) and waits for the end. */
  async finish(): Promise<void> {
    await this.#peer.write(concat(ping("zz-last-a"), ping("zz-last-b")));
    this.#seen = 1 + await this.#expect("zz-last-b");
    await this.#peer.send({ type: "quit", id: "zz-quit" });
    const index = await this.#expect("zz-quit");
    const answer = JSON.parse(this.#tap.lines[index]!);
    if (answer.type === "ack") await this.#tap.done;
    else equal(answer.code, "not_registered");
    await this.close();
  }

  async close(): Promise<void> {
    this.#peer.close();
    await this.#tap.done;
  }
}

/** Terminal control that must never reach an `nc` user. */
const UNSAFE_FOR_TERMINALS = /[\p{Cc}\u202A-\u202E\u2066-\u2069]/v;

const TEXT_SNIPPETS = [
  "hello",
  "\u001b[2J\u001b[H",
  "\u001b]0;owned\u0007",
  "\u001b]8;;http://x\u0007link\u001b]8;;\u0007",
  "\u009b31m",
  "\u202egnp.exe",
  "\u2066\u2069",
  "\u200b",
  "\u0000\u0007\u0008\u007f",
  "\t",
  "\r",
  "你好",
  "👨‍👩‍👧",
  "é",
  "e\u0301",
];
const TEXT_COMMANDS = [
  "/join #fuzz",
  "/join",
  "/join lobby",
  "/join #" + "x".repeat(60),
  "/leave #nowhere",
  "/switch #nowhere",
  "/nick",
  "/nick bad name",
  "/nick alice",
  "/msg alice hi",
  "/msg nobody hi",
  "/msg",
  "/me waves",
  "/topic",
  "/topic \u001b[31mred",
  "/who",
  "/who #nowhere",
  "/rooms",
  "/whois alice",
  "/whois",
  "/kick alice",
  "/ban alice 99999999999999w spam",
  "/ban ip:127.0.0.1",
  "/unban alice",
  "/mute alice 10m",
  "/unmute alice",
  "/help",
  "/?",
  "/clear",
  "/bogus \u001b[2J",
  "//slash",
  "/JOIN #CAPS",
  "/send alice /etc/passwd",
  "/accept x",
  "/decline",
  "/cancel x",
];

function textLine(prng: Prng): Uint8Array {
  const roll = prng.next();
  if (roll < 0.1) return prng.bytes(prng.int(80));
  if (roll < 0.12) return encoder.encode("y".repeat(MAX_FRAME + prng.int(100)));
  let text = prng.chance(0.3) ? prng.pick(TEXT_COMMANDS) : "";
  for (let i = prng.int(4); i >= 0; i--) text += prng.pick(TEXT_SNIPPETS);
  let bytes: Uint8Array = encoder.encode(text);
  if (prng.chance(0.2)) bytes = splice(bytes, prng.int(bytes.length + 1), 0, prng.pick(BAD_UTF8));
  return bytes;
}

function textLines(prng: Prng, count: number): Uint8Array[] {
  const lines: Uint8Array[] = [];
  while (lines.length < count) {
    const line = textLine(prng);
    const decoder = new LineDecoder({ maxBytes: MAX_FRAME, fatal: false });
    const quits = decoder.push(concat(line, LF)).some((decoded) =>
      decoded.ok && decoded.text.trim() !== "" && parseCommand(decoded.text).kind === "quit"
    );
    if (!quits) lines.push(line);
  }
  return lines;
}

/** A plain-text peer, as `nc` would be: every line it is sent must be safe for a terminal. */
class TextPeer {
  #peer: RawPeer;
  #tap: Tap;
  #seen = 0;
  #label: string;

  private constructor(label: string, peer: RawPeer) {
    this.#label = label;
    this.#peer = peer;
    this.#tap = new Tap(peer);
  }

  static async open(port: number, label: string): Promise<TextPeer> {
    const text = new TextPeer(label, await RawPeer.connect(port));
    try {
      await text.#peer.write(`${label}\n`);
      text.#seen = 1 + await text.#expect((line) => line.startsWith(`*** You are ${label} `));
      return text;
    } catch (error) {
      await text.close();
      throw error;
    }
  }

  async #expect(test: (line: string) => boolean): Promise<number> {
    const index = await this.#tap.find(test, this.#seen);
    if (index === -1) fail(`${this.#label}: closed; the last line was ${this.#tap.lines.at(-1)}`);
    for (const line of this.#tap.lines.slice(this.#seen, index + 1)) {
      ok(!UNSAFE_FOR_TERMINALS.test(line), `${this.#label}: unsafe line ${JSON.stringify(line)}`);
    }
    return index;
  }

  async batch(n: number, lines: Uint8Array[], prng: Prng): Promise<number> {
    const token = `zzsync${this.#label}x${n}`;
    const bytes = joinLines(prng, [...lines, encoder.encode(`/whois ${token}`)]);
    await writeInPieces(this.#peer, bytes, prng);
    this.#seen = 1 + await this.#expect((line) => line.includes(token));
    return lines.length;
  }

  async finish(): Promise<void> {
    await this.#peer.write("/quit\n");
    this.#seen = 1 + await this.#expect((line) => line === "*** Bye");
    await this.#tap.done;
    await this.close();
  }

  async close(): Promise<void> {
    this.#peer.close();
    await this.#tap.done;
  }
}

/** Requests that are well formed but wrong, each with the one answer it must get. */
function strictCases(name: string): [frame: Record<string, unknown>, answer: string][] {
  const cases: [Record<string, unknown>, string][] = [
    [{ type: "send", room: "#lobby", text: "too early" }, "not_registered"],
    [{ type: "ping" }, "not_registered"],
    [{ type: "auth", signature: SIGNATURE }, "not_registered"],
    [{ type: "hello", v: 2, name }, "unsupported_version"],
    [{ type: "hello", v: 1, name: "bad name" }, "invalid_name"],
    [{ type: "hello", v: 1, name: "x".repeat(33) }, "invalid_name"],
    [{ type: "hello", v: 1, name: "ALICE" }, "name_taken"],
    [{ type: "hello", v: 1, name, history: 0 }, "welcome"],
    [{ type: "hello", v: 1, name }, "already_registered"],
    [{ type: "send", room: "lobby", text: "x" }, "invalid_room"],
    [{ type: "send", room: "#nowhere", text: "x" }, "not_in_room"],
    [{ type: "send", room: "#lobby", text: " \n " }, "invalid_text"],
    [{ type: "send", room: "#lobby", text: "x".repeat(8001) }, "invalid_text"],
    [{ type: "send", room: "#lobby", text: `${name} was here` }, "ack"],
    [{ type: "dm", to: "nobody", text: "x" }, "no_such_user"],
    [{ type: "dm", to: "alice", text: "" }, "invalid_text"],
    [{ type: "nick", name: "bad name" }, "invalid_name"],
    [{ type: "nick", name: "Alice" }, "name_taken"],
    [{ type: "who", room: "#nowhere" }, "not_in_room"],
    [{ type: "join", room: "#" }, "invalid_room"],
    [{ type: "join", room: "#" + "x".repeat(50) }, "invalid_room"],
    [{ type: "part", room: "#nowhere" }, "not_in_room"],
    [{ type: "topic", room: "#nowhere" }, "not_in_room"],
    [{ type: "topic", room: "#lobby", topic: "x".repeat(301) }, "invalid_text"],
    [{ type: "history", room: "#nowhere" }, "not_in_room"],
    [{ type: "whois", name: "nobody" }, "no_such_user"],
    [{ type: "kick", name: "alice" }, "not_operator"],
    [{ type: "ban", target: "alice" }, "not_operator"],
    [{ type: "unban", target: "alice" }, "not_operator"],
    [{ type: "mute", name: "alice" }, "not_operator"],
    [{ type: "auth", signature: SIGNATURE }, "bad_request"],
    [{ type: "send", room: "#lobby", text: 5 }, "bad_request"],
    [{ type: "send", room: "#lobby", text: "x", key: "" }, "bad_request"],
    [{ type: "history", room: "#lobby", limit: -1 }, "bad_request"],
    [{ type: "join", room: "#lobby", history: 1.5 }, "bad_request"],
    [{ type: "offer", to: "nobody", name: "f", size: 1, sha256: SHA256 }, "no_such_user"],
    [{ type: "offer", to: "#nowhere", name: "f", size: 1, sha256: SHA256 }, "not_in_room"],
    [
      { type: "offer", to: "alice", name: "f", size: 2 ** 53 - 1, sha256: SHA256 },
      "transfer_refused",
    ],
    [{ type: "offer", to: "alice", name: "f", size: 1, sha256: "xyz" }, "bad_request"],
    [{ type: "offer", to: "alice", name: " ", size: 1, sha256: SHA256 }, "bad_request"],
    [{ type: "offer", to: "alice", name: "f", size: -1, sha256: SHA256 }, "bad_request"],
    [{ type: "accept", transfer: "nope" }, "no_such_transfer"],
    [{ type: "decline", transfer: "nope" }, "no_such_transfer"],
    [{ type: "cancel", transfer: "nope" }, "no_such_transfer"],
    [{ type: "received", transfer: "nope", ok: true }, "no_such_transfer"],
    [{ type: "nope" }, "unknown_type"],
    [{ type: "ping" }, "ack"],
    [{ type: "who" }, "ack"],
    [{ type: "rooms" }, "ack"],
    [{ type: "whois", name: "alice" }, "ack"],
    [{ type: "join", room: "#strict" }, "ack"],
    [{ type: "topic", room: "#strict", topic: "strict" }, "ack"],
    [{ type: "history", room: "#strict" }, "ack"],
    [{ type: "part", room: "#strict" }, "ack"],
    [{ type: "pong" }, "none"],
  ];
  return cases.map(([frame, answer], i) => [{ ...frame, id: `s${i}` }, answer]);
}

/** Well-formed but wrong requests: each gets exactly its one answer, in order. */
async function strictPeer(port: number, name: string): Promise<number> {
  await using peer = await RawPeer.connect(port);
  const tap = new Tap(peer);
  try {
    const cases = strictCases(name);
    // An invalid id cannot be echoed: the error has none.
    const lines = [
      ...cases.map(([frame]) => JSON.stringify(frame)),
      '{"type":"ping","id":-1}',
      '{"type":"ping","id":""}',
      '{"type":"data","token":"nope"}',
      JSON.stringify({ type: "quit", id: "s-quit" }),
    ];
    await peer.write(lines.join("\n") + "\n");
    await tap.done;
    const answers = tap.lines.map((line) => JSON.parse(line)).filter((frame) =>
      ANSWER_TYPES.has(frame.type)
    );
    const expected = [
      ...cases.filter(([, answer]) => answer !== "none").map(([frame, answer]) =>
        answer === "ack" || answer === "welcome"
          ? [answer, frame.id, undefined]
          : ["error", frame.id, answer]
      ),
      ["error", undefined, "bad_request"],
      ["error", undefined, "bad_request"],
      ["error", undefined, "bad_request"],
      ["ack", "s-quit", undefined],
    ];
    deepEqual(answers.map((answer) => [answer.type, answer.id, answer.code]), expected);
    return lines.length;
  } finally {
    peer.close();
    await tap.done;
  }
}

/** A 100 MiB line without a line feed: refused once, then the connection works. */
async function hugeLine(port: number, name: string): Promise<void> {
  await using peer = await RawPeer.connect(port);
  const tap = new Tap(peer);
  try {
    await peer.send({ type: "hello", id: "big", v: 1, name, history: 0 });
    const welcome = await tap.find((line) => line.startsWith('{"type":"welcome"'), 0);
    ok(welcome !== -1);
    const chunk = new Uint8Array(MIB).fill(0x78);
    const head = chunk.slice();
    head.set(encoder.encode('{"type":"send","id":"huge","room":"#lobby","text":"'));
    for (let i = 0; i < 100; i++) await peer.write(i === 0 ? head : chunk);
    await peer.write('\n{"type":"ping","id":"after-huge"}\n');
    const end = await tap.find(answerTo("after-huge"), welcome + 1);
    ok(end !== -1, "closed after the huge line");
    const answers = tap.lines.slice(welcome + 1, end + 1).map((line) => JSON.parse(line))
      .filter((frame) => ANSWER_TYPES.has(frame.type));
    deepEqual(answers.map((answer) => [answer.type, answer.id, answer.code]), [
      ["error", undefined, "frame_too_large"],
      ["ack", "after-huge", undefined],
    ]);
    await peer.send({ type: "quit", id: "huge-quit" });
    await tap.done;
    ok(tap.lines.some(answerTo("huge-quit")));
  } finally {
    peer.close();
    await tap.done;
  }
}

/** Hostile tokens nobody was given. */
const DATA_TOKENS = [
  "",
  "x",
  "t1",
  "__proto__",
  "constructor",
  "toString",
  "\ud800",
  "a".repeat(10_000),
];

/** New connections whose first frame is `data` with a token nobody was given: refused and closed. */
async function dataConnections(port: number): Promise<number> {
  for (const token of DATA_TOKENS) {
    await using peer = await RawPeer.connect(port);
    await peer.write(
      JSON.stringify({ type: "data", token }) + "\n" + JSON.stringify({ type: "ping", id: 1 }) +
        "\n",
    );
    const answer = JSON.parse((await peer.line())!);
    deepEqual([answer.type, answer.code], ["error", "no_such_transfer"]);
    equal(await peer.line(), null);
  }
  return 2 * DATA_TOKENS.length;
}

/** A message from one library client reaches the other, past whatever the fuzzing caused. */
async function relays(from: ChatClient, to: ChatClient, text: string): Promise<void> {
  await from.send(text);
  while (true) {
    const message = await to.next("message", { timeout: 10_000 });
    if (message.from === from.name && message.text === text) return;
  }
}

const HOSTILE_PEERS = 4;
const BATCHES = 26;
const BATCH_LINES = 100;

/** One round of the live fuzz; returns how many hostile frames were sent. */
async function hostileRound(
  port: number,
  round: number,
  alice: ChatClient,
  bob: ChatClient,
): Promise<number> {
  const prng = new Prng(SEED + round);
  const specials = specialLines(MAX_FRAME);
  const peers: HostilePeer[] = [];
  let text: TextPeer | undefined;
  const side: Promise<unknown>[] = [];
  let frames = 0;
  try {
    for (let i = 0; i < HOSTILE_PEERS; i++) {
      peers.push(await HostilePeer.open(port, `r${round}p${i}`));
    }
    text = await TextPeer.open(port, `nc${round}`);
    // The huge line streams while the others fuzz.
    const huge = hugeLine(port, `huge${round}`);
    huge.catch(() => {});
    side.push(huge);
    for (let n = 0; n < BATCHES; n++) {
      // The last peer never gets in: it stays where "hello", challenges and "auth" are read.
      const work = peers.map((peer, i) => {
        const lines = liveLines(prng, specials, BATCH_LINES, i === peers.length - 1);
        return peer.batch(n, lines, new Prng(prng.int(2 ** 32)));
      });
      work.push(text.batch(n, textLines(prng, 40), new Prng(prng.int(2 ** 32))));
      for (const count of await Promise.all(work)) frames += count;
      const [from, to] = n % 2 === 0 ? [alice, bob] : [bob, alice];
      await relays(from, to, `round ${round}, batch ${n}`);
    }
    frames += await strictPeer(port, `strict${round}`);
    frames += await dataConnections(port);
    for (const peer of peers) await peer.finish();
    await text.finish();
    await Promise.all(side);
  } finally {
    await Promise.allSettled([...side, ...peers.map((peer) => peer.close()), text?.close()]);
  }
  return frames;
}

Deno.test(`server answers hostile frames from raw peers while two clients keep chatting (seed ${SEED_NAME})`, async (t) => {
  await using server = await serve({
    ...local,
    // Let the volume through: the rate limits are tested elsewhere (and below).
    rateLimit: 1e6,
    rateBurst: 1e6,
    connectRate: 1e6,
    historyOnJoin: 5,
    maxHistoryPage: 20,
  });
  const { port } = server.addr;
  await using alice = await connect({ port, name: "alice" });
  await using bob = await connect({ port, name: "bob" });
  collectGarbage();
  const memory = [Deno.memoryUsage()];
  for (const round of [1, 2]) {
    await t.step(`round ${round}: 10,000 hostile frames, a 100 MiB line, an nc user`, async () => {
      const frames = await hostileRound(port, round, alice, bob);
      ok(frames >= 10_000, `${frames} frames`);
      await relays(alice, bob, `after round ${round}`);
      equal(server.users, 2);
    });
    collectGarbage();
    memory.push(Deno.memoryUsage());
  }
  // The second round runs on the memory the first one gave back.
  const [, first, second] = memory as [unknown, Deno.MemoryUsage, Deno.MemoryUsage];
  const growth = (second.rss - first.rss) / MIB;
  ok(growth < 64, `the process grew by ${growth.toFixed(1)} MiB in the second round`);
  const kept = (second.heapUsed + second.external - first.heapUsed - first.external) / MIB;
  ok(kept < 2, `the heap grew by ${kept.toFixed(1)} MiB in the second round`);
  deepEqual((await alice.who()).toSorted(), ["alice", "bob"]);
  equal(server.users, 2);
});

Deno.test("a flood on the default limits is paced: every request is accepted in turn, none cut off", async () => {
  await using server = await serve(local);
  const { port } = server.addr;
  await using alice = await connect({ port, name: "alice" });
  await using peer = await RawPeer.connect(port);
  const tap = new Tap(peer);
  try {
    await peer.send({ type: "hello", id: "flood", v: 1, name: "flood", history: 0 });
    // More lines than the burst: the rest are read as the budget refills, not refused.
    const count = DEFAULT_LIMITS.rateBurst + 5;
    const flood = Array.from(
      { length: count },
      (_, i) => JSON.stringify({ type: "send", id: i, room: "#lobby", text: `flood ${i}` }),
    );
    await peer.write(flood.join("\n") + "\n");
    await peer.send({ type: "ping", id: "after-flood" });
    const end = await tap.find(answerTo("after-flood"), 0);
    ok(end !== -1, "closed by the flood");
    const answers = tap.lines.slice(0, end + 1).map((line) => JSON.parse(line))
      .filter((frame) => ANSWER_TYPES.has(frame.type));
    deepEqual(
      answers.filter((answer) => answer.type === "ack" && typeof answer.id === "number")
        .map((answer) => answer.id),
      flood.map((_, i) => i),
    );
    equal(answers.filter((answer) => answer.type === "error").length, 0);
    deepEqual(await alice.who(), ["alice", "flood"]);
    await peer.send({ type: "quit", id: "flood-quit" });
    await tap.done;
    ok(tap.lines.some(answerTo("flood-quit")));
  } finally {
    peer.close();
    await tap.done;
  }
});

Deno.test("half a handshake and then silence ends with bye timeout and EOF", async () => {
  await using server = await serve({ ...local, handshakeTimeout: 200 });
  await using alice = await connect({ port: server.addr.port, name: "alice" });
  await using peer = await RawPeer.connect(server.addr.port);
  await peer.write('{"type":"hello","id":1,"v":1,"na');
  const bye = await peer.frame("bye");
  equal(bye.reason, "timeout");
  equal(await peer.line(), null);
  deepEqual(await alice.who(), ["alice"]);
});

Deno.test("answers keep request order around sends waiting for their commit", async (t) => {
  await using server = await serve({ ...local, rateLimit: 1e6, rateBurst: 1e6 });

  /** Registers, stores a message with the key "k", then sends the frames in one write. */
  async function answerIds(name: string, frames: Record<string, unknown>[]): Promise<unknown[]> {
    await using peer = await RawPeer.connect(server.addr.port);
    await peer.send({ type: "hello", id: "hello", v: 1, name, history: 0 });
    await peer.frame("welcome");
    await peer.send({ type: "send", id: "stored", room: "#lobby", text: "once", key: "k" });
    await peer.frame("ack");
    await peer.write(frames.map((frame) => JSON.stringify(frame) + "\n").join(""));
    const ids = [];
    while (ids.length < frames.length) {
      const frame = JSON.parse((await peer.line())!);
      if (ANSWER_TYPES.has(frame.type)) ids.push(frame.id);
    }
    return ids;
  }

  await t.step("a refused send is answered after the sends before it", async () => {
    deepEqual(
      await answerIds("order1", [
        { type: "send", id: 1, room: "#lobby", text: "a" },
        { type: "send", id: 2, room: "#nowhere", text: "b" },
        { type: "ping", id: 3 },
      ]),
      [1, 2, 3],
    );
  });
  await t.step({
    name: "a duplicate send is answered after the sends before it",
    fn: async () => {
      deepEqual(
        await answerIds("order2", [
          { type: "send", id: 1, room: "#lobby", text: "a" },
          { type: "send", id: 2, room: "#lobby", text: "once", key: "k" },
          { type: "ping", id: 3 },
        ]),
        [1, 2, 3],
      );
    },
  });
});

Deno.test("file-transfer data connections are refused without a token and capped", async (t) => {
  await using server = await serve({ ...local, maxConnectionsPerIp: 4 });
  const { port } = server.addr;
  await t.step("a data frame with a token nobody was given is refused and closed", async () => {
    await dataConnections(port);
  });
  await t.step({
    name: "open data connections count against maxConnectionsPerIp",
    fn: async () => {
      await using a = await RawPeer.connect(port);
      await using b = await RawPeer.connect(port);
      await a.send({ type: "hello", id: 1, v: 1, name: "a", history: 0 });
      await a.frame("welcome");
      await b.send({ type: "hello", id: 1, v: 1, name: "b", history: 0 });
      await b.frame("welcome");
      await a.send({ type: "offer", id: 2, to: "b", name: "f", size: 10, sha256: SHA256 });
      const offer = await b.frame("offer");
      await b.send({ type: "accept", id: 3, transfer: offer.transfer });
      const accepted = await b.frame("ack");
      const started = await a.frame("transfer");
      await using sending = await RawPeer.connect(port);
      await sending.send({ type: "data", token: started.token });
      deepEqual(JSON.parse((await sending.line())!), { type: "data", ok: true });
      await using receiving = await RawPeer.connect(port);
      await receiving.send({ type: "data", token: accepted.token });
      deepEqual(JSON.parse((await receiving.line())!), { type: "data", ok: true });
      // Four sockets from 127.0.0.1 are open: the next one is over the limit.
      await using fifth = await RawPeer.connect(port);
      match((await fifth.line())!, /^! Too many connections from 127\.0\.0\.1 \(at most 4\)$/);
    },
  });
});

Deno.test("the server's log carries no terminal controls from peers", async (t) => {
  const log: string[] = [];
  await using server = await serve({ ...local, onLog: (line) => log.push(line) });
  const { port } = server.addr;

  await t.step("joins, renames and leaves are logged as plain text", async () => {
    await using peer = await RawPeer.connect(port);
    const client = "\u001b]0;owned\u0007\u001b[2J\u202e";
    await peer.send({ type: "hello", id: 1, v: 1, name: "logged", client, history: 0 });
    await peer.frame("welcome");
    await peer.send({ type: "nick", id: 2, name: "logged2" });
    await peer.frame("ack");
    await peer.send({ type: "quit", id: 3 });
    await peer.eof();
    ok(log.length >= 3, log.join("\n"));
    for (const line of log) ok(!UNSAFE_FOR_TERMINALS.test(line), JSON.stringify(line));
  });
  await t.step({
    name: "a file offer's name is logged as plain text",
    fn: async () => {
      await using a = await RawPeer.connect(port);
      await using b = await RawPeer.connect(port);
      await a.send({ type: "hello", id: 1, v: 1, name: "sender", history: 0 });
      await a.frame("welcome");
      await b.send({ type: "hello", id: 1, v: 1, name: "receiver", history: 0 });
      await b.frame("welcome");
      const name = "\u001b]0;owned\u0007\u001b[2Jnotes.txt";
      await a.send({ type: "offer", id: 2, to: "receiver", name, size: 1, sha256: SHA256 });
      await a.frame("ack");
      for (const line of log) ok(!UNSAFE_FOR_TERMINALS.test(line), JSON.stringify(line));
    },
  });
});

Deno.test("hostile key handshakes and moderation requests are answered", async (t) => {
  const operator = await createIdentity();
  await using server = await serve({ ...local, operators: [operator.fingerprint] });
  const { port } = server.addr;
  const user = await createIdentity();

  async function handshake(hello: Record<string, unknown>, next: string): Promise<unknown[]> {
    await using peer = await RawPeer.connect(port);
    await peer.send({ ...hello, server: `127.0.0.1:${port}` });
    const challenge = await peer.frame("challenge");
    equal(challenge.id, hello.id);
    await peer.write(next + "\n");
    const line = await peer.line();
    ok(line !== null, "closed without an answer");
    const answer = JSON.parse(line);
    return [answer.type, answer.id, answer.code];
  }

  await t.step("a signature that does not verify gets auth_failed", async () => {
    deepEqual(
      await handshake(
        { type: "hello", id: 1, v: 1, name: "keyed", key: user.publicKey },
        JSON.stringify({ type: "auth", id: 1, nonce: "mine", signature: SIGNATURE }),
      ),
      ["error", 1, "auth_failed"],
    );
  });
  await t.step("a key that is not an Ed25519 key gets auth_failed", async () => {
    for (const key of ["not base64!", PUBLIC_KEY.slice(0, -4), "A".repeat(64), "😀"]) {
      deepEqual(
        await handshake(
          { type: "hello", id: 2, v: 1, name: "keyed", key },
          JSON.stringify({ type: "auth", id: 2, signature: SIGNATURE }),
        ),
        ["error", 2, "auth_failed"],
      );
    }
  });
  await t.step("a frame other than auth after the challenge gets auth_failed", async () => {
    for (
      const next of [
        '{"type":"pong"}',
        '{"type":"ping","id":3}',
        '{"type":"auth","id":4,"signature":"x"}',
      ]
    ) {
      deepEqual(
        await handshake({ type: "hello", id: 3, v: 1, name: "keyed", key: user.publicKey }, next),
        ["error", 3, "auth_failed"],
      );
    }
  });
  await t.step({
    name: "a line feed in the name of a hello with a key gets an error, not a silent close",
    fn: async () => {
      // The name goes into the signed bytes, so it is checked before any challenge.
      await using raw = await RawPeer.connect(port);
      await raw.send({ type: "hello", id: 5, v: 1, name: "a\nb", key: user.publicKey });
      const error = await raw.frame("error");
      deepEqual([error.id, error.code], [5, "invalid_name"]);
      // Still connected, and can try again.
      await raw.send({ type: "hello", id: 6, v: 1, name: "ab" });
      equal((await raw.frame("welcome")).name, "ab");
    },
  });
  await t.step({
    name: "an operator's ban or mute longer than the calendar is answered",
    fn: async () => {
      await using op = await connect({ port, name: "op", identity: operator });
      await using victim = await connect({ port, name: "victim" });
      for (
        const request of [
          () => op.ban("victim", { duration: 2 ** 53 - 1 }),
          () => op.mute("victim", { duration: 2 ** 53 - 1 }),
        ]
      ) {
        try {
          await request();
        } catch (error) {
          ok(error instanceof ProtocolError && error.code !== "closed", String(error));
        }
        ok(op.connected, "the operator was disconnected");
      }
      equal(victim.name, "victim");
      // The ban also holds for users without a key from the victim's address: lift it.
      await op.unban("victim");
    },
  });
  await t.step({
    name: "a ban that ends after the year 9999 holds",
    fn: async () => {
      await using op = await connect({ port, name: "op", identity: operator });
      {
        await using victim = await connect({ port, name: "victim2" });
        await op.ban("victim2", { duration: 600_000 * 7 * 86_400 });
        equal((await victim.next("bye", { timeout: 5000 })).reason, "banned");
      }
      let refused: unknown;
      try {
        await (await connect({ port, name: "victim2" })).close();
      } catch (error) {
        refused = error;
      }
      ok(refused instanceof ProtocolError && refused.code === "banned", String(refused));
    },
  });
});
