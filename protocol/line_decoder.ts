/**
 * Splits a byte stream into newline-terminated lines, whatever the chunk
 * boundaries, without ever buffering more than the frame limit.
 *
 * @module
 */

/** One line out of a {@linkcode LineDecoder}, or the reason it was rejected. */
export type DecodedLine =
  | { ok: true; text: string }
  | { ok: false; code: "frame_too_large" | "bad_utf8"; message: string };

/** Options for {@linkcode LineDecoder}. */
export interface LineDecoderOptions {
  /**
   * Longest line in bytes, newline excluded. A longer line is reported once as
   * `frame_too_large` and its bytes are skipped up to the next newline.
   */
  maxBytes: number;
  /**
   * Whether invalid UTF-8 rejects the line (`bad_utf8`). When `false`, invalid
   * bytes become U+FFFD, which suits people typing into `nc`.
   *
   * @default {true}
   */
  fatal?: boolean;
}

const LF = 0x0a;
// Lines are decoded whole, so every decoder can share these two (no stream state).
const FATAL = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const LENIENT = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
const CR = 0x0d;
const SHRINK_ABOVE = 16 * 1024;
/** Holds nothing: the buffer of every decoder with no partial line, shared. */
const NONE = new Uint8Array(0);

/**
 * Incremental line splitter. Lines are split on the byte `\n` (which never
 * occurs inside a multi-byte UTF-8 sequence), so a character split between two
 * reads is decoded whole. A trailing `\r` is removed, so `\r\n` works too.
 *
 * @example Decode a frame that arrives in two pieces
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { LineDecoder } from "./line_decoder.ts";
 *
 * const decoder = new LineDecoder({ maxBytes: 1024 });
 * const bytes = new TextEncoder().encode("你好\n");
 * deepEqual(decoder.push(bytes.subarray(0, 2)), []);
 * deepEqual(decoder.push(bytes.subarray(2)), [{ ok: true, text: "你好" }]);
 * ```
 */
export class LineDecoder {
  #maxBytes: number;
  #decoder: TextDecoder;
  #buffer = NONE;
  #length = 0;
  #discarding = false;

  /**
   * Creates a decoder.
   *
   * @param options The line limit and how to treat invalid UTF-8.
   */
  constructor(options: LineDecoderOptions) {
    this.#maxBytes = options.maxBytes;
    this.#decoder = options.fatal ?? true ? FATAL : LENIENT;
  }

  /** Bytes held for a line whose end has not arrived yet. */
  get pendingBytes(): number {
    return this.#length;
  }

  /**
   * Feeds bytes in and returns the lines they complete, in order. The chunk may
   * be reused by the caller as soon as this returns.
   *
   * @param chunk The bytes just read.
   * @returns The complete lines, or errors in their place.
   */
  push(chunk: Uint8Array): DecodedLine[] {
    const lines: DecodedLine[] = [];
    let start = 0;
    // The end of a line begun in an earlier chunk.
    if (this.#length > 0 || this.#discarding) {
      const end = chunk.indexOf(LF);
      if (end === -1) {
        this.#hold(chunk, lines);
        return lines;
      }
      this.#finish(chunk.subarray(0, end), lines);
      start = end + 1;
    }
    // The lines complete in this chunk, then the start of the next one.
    const last = chunk.lastIndexOf(LF);
    if (last >= start) {
      this.#finishAll(chunk.subarray(start, last), lines);
      start = last + 1;
    }
    if (start < chunk.length) this.#hold(chunk.subarray(start), lines);
    return lines;
  }

  /** Lines joined by `\n`, each whole: decoded in one go when all are within the limit and valid. */
  #finishAll(part: Uint8Array, lines: DecodedLine[]): void {
    let fits = true;
    for (let from = 0;;) {
      const end = part.indexOf(LF, from);
      const stop = end === -1 ? part.length : end;
      const length = stop > from && part[stop - 1] === CR ? stop - from - 1 : stop - from;
      if (length > this.#maxBytes) {
        fits = false;
        break;
      }
      if (end === -1) break;
      from = end + 1;
    }
    let text: string | undefined;
    if (fits) {
      try {
        text = this.#decoder.decode(part);
      } catch {
        // Some line is not valid UTF-8: each is decoded on its own, to tell which.
      }
    }
    if (text !== undefined) {
      for (const line of text.split("\n")) {
        lines.push({ ok: true, text: line.endsWith("\r") ? line.slice(0, -1) : line });
      }
      return;
    }
    for (let from = 0;;) {
      const end = part.indexOf(LF, from);
      this.#finish(part.subarray(from, end === -1 ? part.length : end), lines);
      if (end === -1) break;
      from = end + 1;
    }
  }

  #tooLarge(lines: DecodedLine[]): void {
    lines.push({
      ok: false,
      code: "frame_too_large",
      message: `Frame is longer than the limit of ${this.#maxBytes} bytes`,
    });
    this.#length = 0;
    if (this.#buffer.length > SHRINK_ABOVE) this.#buffer = NONE;
  }

  #hold(part: Uint8Array, lines: DecodedLine[]): void {
    if (this.#discarding) return;
    const length = this.#length + part.length;
    // One byte more than the limit may be a "\r" that belongs to the line end.
    if (length > this.#maxBytes + 1) {
      this.#discarding = true;
      this.#tooLarge(lines);
      return;
    }
    if (length > this.#buffer.length) {
      const grown = new Uint8Array(
        Math.min(Math.max(length, this.#buffer.length * 2, 256), this.#maxBytes + 1),
      );
      grown.set(this.#buffer.subarray(0, this.#length));
      this.#buffer = grown;
    }
    this.#buffer.set(part, this.#length);
    this.#length = length;
  }

  #finish(part: Uint8Array, lines: DecodedLine[]): void {
    if (this.#discarding) {
      this.#discarding = false;
      return;
    }
    let line = part;
    if (this.#length > 0) {
      const length = this.#length + part.length;
      if (length > this.#maxBytes + 1) return this.#tooLarge(lines);
      this.#hold(part, lines);
      line = this.#buffer.subarray(0, length);
      this.#length = 0;
    }
    if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
    if (line.length > this.#maxBytes) return this.#tooLarge(lines);
    try {
      lines.push({ ok: true, text: this.#decoder.decode(line) });
    } catch {
      lines.push({ ok: false, code: "bad_utf8", message: "Frame is not valid UTF-8" });
    }
    if (this.#buffer.length > SHRINK_ABOVE) this.#buffer = NONE;
  }
}
