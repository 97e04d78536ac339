/**
 * An event on its way out: a server frame with its encodings, made at most
 * once however many peers receive it.
 *
 * @module
 */

import type { ServerFrame } from "../protocol/frames.ts";
import { formatFrame } from "../protocol/text_format.ts";
import { ircEvent, ircEventText } from "./doors/irc_lines.ts";

const encoder = new TextEncoder();
const LF = 0x0a;

/**
 * Frames as lines of JSON in one string. JSON has no raw newline inside a
 * line, so the lines can be found again in the bytes. Joined, not added up:
 * a string built by `+=` is a tree that costs ten times as much to encode.
 */
function jsonLines(frames: readonly ServerFrame[]): string {
  const lines = frames.map((frame) => JSON.stringify(frame));
  lines.push("");
  return lines.join("\n");
}

/** The frame as text lines for `nc` users, ended by CRLF, or `undefined` when there are none. */
function textLines(frame: ServerFrame, room: string | undefined): string | undefined {
  const text = formatFrame(frame, { room });
  return text === undefined ? undefined : text.replaceAll("\n", "\r\n") + "\r\n";
}

function render(frame: ServerFrame, room: string | undefined): Uint8Array | null {
  const text = textLines(frame, room);
  return text === undefined ? null : encoder.encode(text);
}

/**
 * A server frame with its encodings, made at most once however many peers
 * receive it.
 */
export class Outbound {
  /** The frame. */
  readonly frame: ServerFrame;
  #json: Uint8Array | undefined;
  #text: Uint8Array | null | undefined;
  /** A room message as text with its room named, for readers typing into another room. */
  #tagged: Uint8Array | null | undefined;
  /** IRC lines, by the tags their readers negotiated. */
  #irc: (Uint8Array | null)[] | undefined;
  #webSocketText: string | undefined;

  /** Whether its JSON goes into the shared buffer for answers (it has one reader). */
  #single: boolean;

  /**
   * Wraps a frame.
   *
   * @param frame The frame to send.
   * @param single Whether one peer alone receives it (an answer): its JSON is
   * then laid into a buffer shared with other answers rather than one of its own.
   */
  constructor(frame: ServerFrame, single = false) {
    this.frame = frame;
    this.#single = single;
  }

  /**
   * Answers to many requests, their JSON laid end to end into the buffer
   * shared by answers in one go.
   *
   * @param frames The answers.
   * @returns Each one wrapped, in order.
   */
  static answers(frames: readonly ServerFrame[]): Outbound[] {
    const placed = newPlaced(frames.length);
    SINGLES.placeLines(jsonLines(frames), placed);
    return frames.map((frame, i) => {
      const out = new Outbound(frame, true);
      out.#json = placed.bases[i]!.subarray(placed.from[i], placed.to[i]);
      return out;
    });
  }

  /** The frame as one line of JSON. */
  get json(): Uint8Array {
    return this.#json ??= this.encodeJson();
  }

  /**
   * The frame as one line of JSON, made afresh unless it was made before;
   * not kept.
   *
   * @returns The bytes.
   */
  encodeJson(): Uint8Array {
    if (this.#json !== undefined) return this.#json;
    const text = JSON.stringify(this.frame) + "\n";
    return this.#single ? SINGLES.encode(text) : encoder.encode(text);
  }

  /** The frame as the text of one WebSocket message (JSON, no newline). */
  get webSocketText(): string {
    return this.#webSocketText ??= JSON.stringify(this.frame);
  }

  /**
   * The frame as text lines for `nc` users, or `null` when there is nothing to
   * show. A room message is tagged with its room unless the reader types into
   * that room; each of the two forms is rendered at most once.
   *
   * @param room The room the reader types into.
   * @returns The bytes to send.
   */
  text(room: string | undefined): Uint8Array | null {
    const frame = this.frame;
    if (frame.type === "message" && frame.room !== room) {
      if (this.#tagged === undefined) this.#tagged = render(frame, "");
      return this.#tagged;
    }
    if (this.#text === undefined) {
      this.#text = render(frame, frame.type === "message" ? frame.room : undefined);
    }
    return this.#text;
  }

  /**
   * The event as IRC lines, or `null` when an IRC client has no line for it;
   * made at most once for each set of tags readers negotiated.
   *
   * @param variant The tags: a sum of `SERVER_TIME` and `MESSAGE_TAGS` (irc_lines.ts).
   * @returns The bytes to send.
   */
  irc(variant: number): Uint8Array | null {
    const cache = this.#irc ??= [];
    let bytes = cache[variant];
    if (bytes === undefined) cache[variant] = bytes = ircEvent(this.frame, variant);
    return bytes;
  }
}

/** The size of one shared buffer that encodings of runs are laid into. */
const ARENA_BYTES = 64 * 1024;
/** Encodings larger than this get a buffer of their own. */
const ARENA_LARGEST = 16 * 1024;

/**
 * Lays encodings end to end into shared buffers, so that the events a reader
 * gets one after another, even across runs, are adjacent bytes: its queue
 * grows one view instead of gathering pieces to copy.
 */
export class Arena {
  #buffer = new Uint8Array(ARENA_BYTES);
  #used = 0;

  /**
   * Encodes lines in, each ending with `\n` and holding no other, and notes
   * where each one is.
   *
   * @param text The lines.
   * @param at Where to note the buffer and each line's bounds, in order.
   */
  placeLines(text: string, at: Placed): void {
    const { base, from: start, end } = this.#encodeAll(text);
    for (let i = 0, from = start; from < end; i++) {
      const next = base.indexOf(LF, from);
      const to = next === -1 || next >= end ? end : next + 1;
      at.bases[i] = base;
      at.from[i] = from;
      at.to[i] = from = to;
    }
  }

  /**
   * Encodes texts in, end to end, and notes where each one is.
   *
   * @param texts The texts.
   * @param at Where to note the buffer and each text's bounds, in order.
   */
  placeTexts(texts: readonly string[], at: Placed): void {
    const text = texts.join("");
    const { base, from, end } = this.#encodeAll(text);
    // As many bytes as characters: all ASCII, and each text's length is its size.
    const ascii = end - from === text.length;
    let to = from;
    for (let i = 0; i < texts.length; i++) {
      at.bases[i] = base;
      at.from[i] = to;
      at.to[i] = to += ascii ? texts[i]!.length : utf8Length(texts[i]!);
    }
  }

  /** Encodes text in, into a buffer of its own when it is large. */
  #encodeAll(text: string): { base: Uint8Array; from: number; end: number } {
    // A UTF-16 code unit takes at most 3 bytes.
    if (text.length * 3 > ARENA_LARGEST) {
      const base = encoder.encode(text);
      return { base, from: 0, end: base.length };
    }
    if (this.#used + text.length * 3 > this.#buffer.length) {
      this.#buffer = new Uint8Array(ARENA_BYTES);
      this.#used = 0;
    }
    const from = this.#used;
    this.#used += encoder.encodeInto(text, this.#buffer.subarray(from)).written;
    return { base: this.#buffer, from, end: this.#used };
  }

  /**
   * Encodes text in and returns its bytes, a view of the shared buffer.
   *
   * @param text The text.
   * @returns The bytes.
   */
  encode(text: string): Uint8Array {
    const { base, from, end } = this.#encodeAll(text);
    return base.subarray(from, end);
  }
}

/**
 * Where answers are encoded: one shared buffer for many small ones instead of
 * a buffer each. (Events to many readers keep their own: a reader that lags
 * would hold the whole shared buffer for one of them.)
 */
const SINGLES = new Arena();

/** One encoding of a run: where each item's bytes are. */
interface Placed {
  bases: Uint8Array[];
  from: Uint32Array;
  to: Uint32Array;
}

/** The arenas of one server, one per encoding. */
export class Arenas {
  /** JSON lines. */
  readonly json: Arena = new Arena();
  /** Text lines for readers who type into the message's room. */
  readonly text: Arena = new Arena();
  /** Text lines tagged with their room. */
  readonly tagged: Arena = new Arena();
  /** IRC lines, by the tags their readers negotiated; made when an IRC reader first needs one. */
  #irc: Arena[] = [];

  /**
   * The arena of IRC lines with the given tags.
   *
   * @param variant The tags (see {@linkcode Outbound.irc}).
   * @returns The arena.
   */
  irc(variant: number): Arena {
    return this.#irc[variant] ??= new Arena();
  }
}

/** Receives stretches of bytes: a buffer and the bounds within it (a send queue is one). */
export interface ViewSink {
  /** Takes `base.subarray(from, to)`. */
  pushView(base: Uint8Array, from: number, to: number): unknown;
}

function newPlaced(length: number): Placed {
  return { bases: new Array(length), from: new Uint32Array(length), to: new Uint32Array(length) };
}

/** Hands `sink` items `start` to `end` (excluded), adjacent ones as one stretch. */
function visit(placed: Placed, start: number, end: number, sink: ViewSink): void {
  const { bases, from, to } = placed;
  let i = start;
  while (i < end) {
    const base = bases[i]!;
    const first = from[i]!;
    let last = to[i]!;
    i++;
    while (i < end && bases[i] === base && from[i] === last) last = to[i++]!;
    sink.pushView(base, first, last);
  }
}

/**
 * Consecutive events with the same audience (the messages of one room
 * committed together), each encoding made once and laid into the server's
 * shared buffers. A reader gets any stretch of it as views of those buffers:
 * a burst to many readers costs one copy in all, not one per reader and
 * event.
 */
export class OutboundRun {
  /** The events, in order. */
  readonly items: readonly Outbound[];
  #arenas: Arenas;
  #json: Placed | undefined;
  #text: Placed | undefined;
  #tagged: Placed | undefined;
  /** The events as lines of JSON in one string, where each ends, and its size in bytes. */
  #webSocket: { text: string; ends: number[]; byteEnds: number[] } | undefined;
  /** IRC lines, by the tags their readers negotiated. */
  #irc: Placed[] | undefined;

  /**
   * Wraps events.
   *
   * @param items The events, in the order they are delivered, all messages to one room.
   * @param arenas Where their encodings are laid.
   */
  constructor(items: readonly Outbound[], arenas: Arenas) {
    this.items = items;
    this.#arenas = arenas;
  }

  /**
   * Hands `sink` events `start` to `end` (excluded) as JSON lines.
   *
   * @param start The first event.
   * @param end After the last event.
   * @param sink Where the stretches of bytes go.
   */
  json(start: number, end: number, sink: ViewSink): void {
    if (this.#json === undefined) {
      const items = this.items;
      // One string and one encoding for the whole run.
      this.#json = newPlaced(items.length);
      this.#arenas.json.placeLines(jsonLines(items.map((item) => item.frame)), this.#json);
    }
    visit(this.#json, start, end, sink);
  }

  /** The UTF-8 length of the whole run as WebSocket text (made by {@linkcode OutboundRun.webSocketText}). */
  get webSocketBytes(): number {
    return this.#webSocket?.byteEnds.at(-1) ?? 0;
  }

  /**
   * Events `start` to `end` (excluded) as the text of one WebSocket message,
   * a line of JSON each: a slice of one string made once for all readers.
   *
   * @param start The first event.
   * @param end After the last event.
   * @returns The text and its size in UTF-8.
   */
  webSocketText(start: number, end: number): { text: string; bytes: number } {
    if (this.#webSocket === undefined) {
      const ends: number[] = [];
      const byteEnds: number[] = [];
      let chars = 0;
      let bytes = 0;
      const texts = this.items.map((item) => {
        const text = item.webSocketText;
        chars += text.length + 1;
        bytes += utf8Length(text) + 1;
        ends.push(chars);
        byteEnds.push(bytes);
        return text;
      });
      this.#webSocket = { text: texts.join("\n") + "\n", ends, byteEnds };
    }
    const { text, ends, byteEnds } = this.#webSocket;
    const from = start === 0 ? 0 : ends[start - 1]!;
    const fromBytes = start === 0 ? 0 : byteEnds[start - 1]!;
    // Without the newline after the last one: the message's lines are joined, not ended.
    return {
      text: text.slice(from, ends[end - 1]! - 1),
      bytes: byteEnds[end - 1]! - 1 - fromBytes,
    };
  }

  /**
   * Hands `sink` events `start` to `end` (excluded) as text lines for a
   * reader who types into `room` (see {@linkcode Outbound.text}).
   *
   * @param room The room the reader types into.
   * @param start The first event.
   * @param end After the last event.
   * @param sink Where the stretches of bytes go.
   */
  text(room: string | undefined, start: number, end: number, sink: ViewSink): void {
    const first = this.items[0]?.frame;
    // As {@linkcode Outbound.text} renders them, all in one go.
    const placed = first?.type === "message" && first.room !== room
      ? this.#tagged ??= this.#placeTexts(this.#arenas.tagged, () => "")
      : this.#text ??= this.#placeTexts(
        this.#arenas.text,
        (frame) => frame.type === "message" ? frame.room : undefined,
      );
    visit(placed, start, end, sink);
  }

  #placeTexts(arena: Arena, roomOf: (frame: ServerFrame) => string | undefined): Placed {
    const placed = newPlaced(this.items.length);
    arena.placeTexts(this.items.map(({ frame }) => textLines(frame, roomOf(frame)) ?? ""), placed);
    return placed;
  }

  /**
   * Hands `sink` events `start` to `end` (excluded) as IRC lines with the
   * given tags (see {@linkcode Outbound.irc}).
   *
   * @param variant The tags the reader negotiated.
   * @param start The first event.
   * @param end After the last event.
   * @param sink Where the stretches of bytes go.
   */
  irc(variant: number, start: number, end: number, sink: ViewSink): void {
    const cache = this.#irc ??= [];
    let placed = cache[variant];
    if (placed === undefined) {
      placed = cache[variant] = newPlaced(this.items.length);
      this.#arenas.irc(variant).placeTexts(
        this.items.map(({ frame }) => ircEventText(frame, variant)),
        placed,
      );
    }
    visit(placed, start, end, sink);
  }
}

/** The length of text in UTF-8, without encoding it. */
function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0x80) bytes += code >= 0x800 && (code < 0xd800 || code > 0xdfff) ? 2 : 1;
  }
  return bytes;
}
