/**
 * Display width of text on a terminal: grapheme clusters, column counts, wrapping and
 * truncation. Wide characters (CJK, most emoji) take two columns, combining marks and other
 * zero-width characters none.
 *
 * The functions expect printable text: run untrusted input through `sanitize()` from
 * `protocol/sanitize.ts` first. Control characters count as zero columns.
 *
 * @module
 */

import { stringWidth } from "./_deps_string_width.ts";

const _segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" });

/** Printable ASCII only: one grapheme and one column per code unit. */
const _PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/** Spaces at which a line may be broken. No-break spaces are not among them. */
const _BREAKING_SPACE = /^[ \u1680\u2000-\u2006\u2008-\u200a\u205f\u3000]$/;

/** Characters written without spaces between words, after which a line may break. */
const _IDEOGRAPHIC = /^[\p{sc=Han}\p{sc=Hiragana}\p{sc=Katakana}]/u;

/**
 * Splits text into grapheme clusters: what a reader sees as one character, such as `"é"`
 * written as `"e\u0301"`, `"👍🏽"` or `"🇨🇳"`.
 *
 * @param text The text to split.
 * @returns The grapheme clusters in order; joined, they give back `text`.
 *
 * @example Split text with emoji and a combining mark
 * ```ts
 * import assert from "node:assert/strict";
 * import { graphemes } from "./width.ts";
 *
 * assert.deepEqual(graphemes("e\u0301👨‍👩‍👧!"), ["e\u0301", "👨‍👩‍👧", "!"]);
 * ```
 */
export function graphemes(text: string): string[] {
  if (_PRINTABLE_ASCII.test(text)) return text.split("");
  const result: string[] = [];
  for (const { segment } of _segmenter.segment(text)) result.push(segment);
  return result;
}

/**
 * Counts the terminal columns that `text` takes on one line.
 *
 * @param text Printable text, without line breaks.
 * @returns The number of columns.
 *
 * @example Measure wide and zero-width characters
 * ```ts
 * import assert from "node:assert/strict";
 * import { displayWidth } from "./width.ts";
 *
 * assert.equal(displayWidth("abc"), 3);
 * assert.equal(displayWidth("你好"), 4);
 * assert.equal(displayWidth("e\u0301"), 1);
 * assert.equal(displayWidth("👍🏽"), 2);
 * ```
 */
export function displayWidth(text: string): number {
  if (_PRINTABLE_ASCII.test(text)) return text.length;
  return stringWidth(text);
}

function _isBreakingSpace(grapheme: string): boolean {
  return _BREAKING_SPACE.test(grapheme);
}

interface _Piece {
  text: string;
  width: number;
  space: boolean;
}

/** Splits one line into words, runs of spaces and single ideographs. */
function _pieces(line: string): _Piece[] {
  const pieces: _Piece[] = [];
  let current: _Piece | undefined;
  for (const grapheme of graphemes(line)) {
    const space = _isBreakingSpace(grapheme);
    const width = displayWidth(grapheme);
    if (!space && _IDEOGRAPHIC.test(grapheme)) {
      pieces.push({ text: grapheme, width, space });
      current = undefined;
    } else if (current !== undefined && current.space === space) {
      current.text += grapheme;
      current.width += width;
    } else {
      current = { text: grapheme, width, space };
      pieces.push(current);
    }
  }
  return pieces;
}

/** Wraps a line without line breaks, appending its rows to `rows`. */
function _wrapLine(line: string, columns: number, rows: string[]): void {
  let row = "";
  let rowWidth = 0;
  // Spaces seen since the last word: written only when another word follows on the same row.
  let spaces = "";
  let spacesWidth = 0;
  const breakRow = () => {
    rows.push(row);
    row = "";
    rowWidth = 0;
  };
  for (const piece of _pieces(line)) {
    if (piece.space) {
      spaces = piece.text;
      spacesWidth = piece.width;
      continue;
    }
    if (rowWidth + spacesWidth + piece.width <= columns) {
      row += spaces + piece.text;
      rowWidth += spacesWidth + piece.width;
    } else if (piece.width <= columns) {
      // The word fits on a row of its own: break before it, dropping the spaces.
      if (row !== "") breakRow();
      row = piece.text;
      rowWidth = piece.width;
    } else {
      // The word is wider than a row: fill the current row, then break between graphemes.
      const parts = graphemes(piece.text);
      const [first = ""] = parts;
      if (rowWidth + spacesWidth + displayWidth(first) <= columns) {
        row += spaces;
        rowWidth += spacesWidth;
      } else if (row !== "") {
        breakRow();
      }
      for (const grapheme of parts) {
        const width = displayWidth(grapheme);
        if (rowWidth + width > columns && row !== "") breakRow();
        row += grapheme;
        rowWidth += width;
      }
    }
    spaces = "";
    spacesWidth = 0;
  }
  // Trailing spaces stay as far as they fit.
  for (const grapheme of graphemes(spaces)) {
    const width = displayWidth(grapheme);
    if (rowWidth + width > columns) break;
    row += grapheme;
    rowWidth += width;
  }
  rows.push(row);
}

/**
 * Wraps text into rows of at most `columns` terminal columns.
 *
 * Rows break at spaces where possible (the spaces at a break are dropped) and between
 * Chinese or Japanese characters; a word wider than a row is broken between graphemes. A
 * grapheme is never split, and a wide character that does not fit at the end of a row moves
 * to the next. `"\n"` in the text starts a new row. A single grapheme wider than `columns`
 * gets a row of its own.
 *
 * @param text Printable text, possibly with `"\n"` line breaks.
 * @param columns The width of a row, at least 1.
 * @returns The rows, without line breaks; at least one.
 * @throws {RangeError} If `columns` is not a positive integer.
 *
 * @example Wrap a sentence
 * ```ts
 * import assert from "node:assert/strict";
 * import { wrap } from "./width.ts";
 *
 * assert.deepEqual(wrap("the quick brown fox", 10), ["the quick", "brown fox"]);
 * assert.deepEqual(wrap("你好世界你好世界", 10), ["你好世界你", "好世界"]);
 * ```
 */
export function wrap(text: string, columns: number): string[] {
  if (!Number.isInteger(columns) || columns < 1) {
    throw new RangeError(`Cannot wrap text to "${columns}" columns: expected a positive integer`);
  }
  const rows: string[] = [];
  for (const line of text.split("\n")) _wrapLine(line, columns, rows);
  return rows;
}

/** Options for {@linkcode truncate}. */
export interface TruncateOptions {
  /**
   * Text put at the end when something was cut off. It is left out when `columns` is too
   * narrow to hold it.
   *
   * @default {"…"}
   */
  ellipsis?: string;
}

/**
 * Shortens text to at most `columns` terminal columns, never splitting a grapheme. When text
 * is cut off, the ellipsis marks the cut.
 *
 * @param text Printable text, without line breaks.
 * @param columns The number of columns available.
 * @param options The ellipsis to use.
 * @returns `text` itself when it fits, otherwise its longest start that fits with the ellipsis.
 *
 * @example Truncate a long name
 * ```ts
 * import assert from "node:assert/strict";
 * import { truncate } from "./width.ts";
 *
 * assert.equal(truncate("hello world", 8), "hello w…");
 * assert.equal(truncate("你好世界", 6), "你好…");
 * assert.equal(truncate("short", 8), "short");
 * ```
 */
export function truncate(text: string, columns: number, options?: TruncateOptions): string {
  if (displayWidth(text) <= columns) return text;
  if (columns <= 0) return "";
  let ellipsis = options?.ellipsis ?? "…";
  let room = columns - displayWidth(ellipsis);
  if (room < 0) {
    ellipsis = "";
    room = columns;
  }
  let result = "";
  let width = 0;
  for (const grapheme of graphemes(text)) {
    const graphemeWidth = displayWidth(grapheme);
    if (width + graphemeWidth > room) break;
    result += grapheme;
    width += graphemeWidth;
  }
  return result + ellipsis;
}
