/**
 * Lays out the line editor's prompt and buffer on terminal rows: wide characters, combining
 * marks, placeholders for control characters and line breaks in the buffer.
 *
 * @module
 */

import { isSafe, sanitize } from "../protocol/sanitize.ts";
import { displayWidth, graphemes } from "./width.ts";

/** Options for {@linkcode LineEditor.render}. */
export interface RenderOptions {
  /**
   * Styles the part of the prompt on each row, for example with colours. It runs after the
   * layout, so escape sequences it adds take no room.
   */
  stylePrompt?: (text: string) => string;
  /**
   * Styles each placeholder that stands for a control or invisible character in the buffer,
   * such as `^[` or `<U+202E>`, for example in inverse video.
   */
  stylePlaceholder?: (text: string) => string;
}

/** The prompt and buffer laid out on terminal rows by {@linkcode LineEditor.render}. */
export interface EditorView {
  /** The rows to draw, top to bottom, without line breaks; always more than `cursorRow`. */
  lines: string[];
  /** Row of the cursor, counted from 0 at the first row of the prompt. */
  cursorRow: number;
  /** Column of the cursor, counted from 0; always less than the number of columns. */
  cursorColumn: number;
}

/** One grapheme, or one piece of a wide placeholder, as drawn. */
export interface Cell {
  /** The text drawn. */
  text: string;
  /** Columns the text takes. */
  width: number;
  /** Grapheme index in the buffer; `-1` for the prompt. */
  index: number;
  /** Whether this is the first cell of its grapheme. */
  first: boolean;
  /** Whether the text stands for an unprintable character. */
  placeholder: boolean;
  /** Whether this ends a line of the buffer. */
  newline: boolean;
}

const _JOINERS = /[\u200C\u200D]$/;

/** Whether `grapheme` is white space; `false` past either end of the buffer. */
/** Sanitizes one grapheme, looking at the next one where a joiner at its end needs it. */
function _sanitizeGrapheme(grapheme: string, next: string | undefined): string {
  if (next !== undefined && _JOINERS.test(grapheme)) {
    const following = String.fromCodePoint(next.codePointAt(0)!);
    const joined = sanitize(grapheme + following);
    if (joined.endsWith(following)) return joined.slice(0, -following.length);
  }
  return sanitize(grapheme);
}

/**
 * The cells of a buffer, one per grapheme, sanitized.
 *
 * @param text The buffer.
 * @param parts The buffer's graphemes.
 * @returns The cells, in order.
 */
export function bufferCells(text: string, parts: readonly string[]): Cell[] {
  const cells: Cell[] = [];
  // Most buffers hold nothing to replace: then no grapheme needs sanitizing on its own.
  const safe = isSafe(text, { newlines: true });
  for (const [index, grapheme] of parts.entries()) {
    if (grapheme === "\n") {
      cells.push({ text: "", width: 0, index, first: true, placeholder: false, newline: true });
      continue;
    }
    const shown = safe ? grapheme : _sanitizeGrapheme(grapheme, parts[index + 1]);
    cells.push({
      text: shown,
      width: displayWidth(shown),
      index,
      first: true,
      placeholder: shown !== grapheme && grapheme !== "\t",
      newline: false,
    });
  }
  return cells;
}

/**
 * Lays out the prompt and the buffer's cells on rows of `columns` terminal columns and finds
 * the cursor.
 *
 * @param prompt Text shown before the buffer; it is sanitized here.
 * @param buffer The buffer's cells, from {@linkcode bufferCells}.
 * @param cursor The grapheme index of the cursor in the buffer.
 * @param columns The terminal width, at least 1.
 * @param options Styles for the prompt and for placeholders.
 * @returns The rows to draw and the cursor position.
 */
export function layout(
  prompt: string,
  buffer: readonly Cell[],
  cursor: number,
  columns: number,
  options?: RenderOptions,
): EditorView {
  const stylePrompt = options?.stylePrompt;
  const stylePlaceholder = options?.stylePlaceholder;
  const cells: Cell[] = [];
  for (const text of graphemes(sanitize(prompt))) {
    const width = displayWidth(text);
    cells.push({ text, width, index: -1, first: true, placeholder: false, newline: false });
  }
  for (const cell of buffer) {
    if (cell.placeholder && cell.width > columns) {
      // Too wide for any row: let it wrap like ordinary text.
      let first = true;
      for (const text of graphemes(cell.text)) {
        cells.push({ ...cell, text, width: displayWidth(text), first });
        first = false;
      }
    } else {
      cells.push(cell);
    }
  }

  let row = { prompt: "", buffer: "" };
  const rows = [row];
  const newRow = () => {
    row = { prompt: "", buffer: "" };
    rows.push(row);
  };
  let column = 0;
  let cursorRow = -1;
  let cursorColumn = 0;
  for (const cell of cells) {
    // Every cell, even one of no width, needs a column the cursor can stand on.
    if (column + Math.max(cell.width, 1) > columns && column > 0) {
      newRow();
      column = 0;
    }
    if (cell.first && cell.index === cursor) {
      cursorRow = rows.length - 1;
      cursorColumn = column;
    }
    if (cell.newline) {
      newRow();
      column = 0;
      continue;
    }
    if (cell.index === -1) row.prompt += cell.text;
    else if (cell.placeholder && stylePlaceholder) row.buffer += stylePlaceholder(cell.text);
    else row.buffer += cell.text;
    column += cell.width;
  }
  if (column >= columns) {
    newRow();
    column = 0;
  }
  if (cursorRow === -1) {
    cursorRow = rows.length - 1;
    cursorColumn = column;
  }
  const lines = rows.map(({ prompt, buffer }) =>
    (prompt !== "" && stylePrompt ? stylePrompt(prompt) : prompt) + buffer
  );
  return { lines, cursorRow, cursorColumn };
}
