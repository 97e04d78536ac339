/**
 * Composes the full screen of the interactive client: the log of messages
 * above, a status bar, and the input line at the bottom. Pure: state in,
 * escape sequences out.
 *
 * @module
 */

import type { EditorView } from "./line_editor.ts";
import { type Entry, layout } from "./entries.ts";
import type { Style } from "./style.ts";
import { displayWidth, truncate } from "./width.ts";
import { sanitize } from "../protocol/sanitize.ts";

/** Everything needed to draw one frame. */
export interface ScreenState {
  columns: number;
  rows: number;
  /** The log, oldest first. */
  log: readonly Entry[];
  /** How many rows the log is scrolled up from the bottom. */
  scroll: number;
  /**
   * The text of the status bar (sanitised here: it holds room names from the
   * server), its parts separated by `" · "`; how far the log is scrolled goes
   * after the first part.
   */
  status: string;
  /**
   * Styles parts of the status bar once it is sanitised and fitted to the
   * width (it must not change the text, only add styles).
   */
  styleStatus?: (status: string) => string;
  /** The input, laid out by the line editor for `columns`. */
  input: EditorView;
  style: Style;
}

/** One drawn frame. */
export interface Frame {
  /** The rows, top to bottom, styled, each at most `columns` wide. */
  lines: string[];
  /** Cursor position, 0-based. */
  cursorRow: number;
  cursorColumn: number;
  /** The scroll actually applied: `state.scroll`, limited to the log's length. */
  scroll: number;
}

const layouts = new WeakMap<Entry, { columns: number; rows: string[] }>();

function rowsOf(entry: Entry, columns: number): string[] {
  const cached = layouts.get(entry);
  if (cached !== undefined && cached.columns === columns) return cached.rows;
  const rows = layout(entry, columns);
  layouts.set(entry, { columns, rows });
  return rows;
}

/**
 * How many rows an entry takes at a width.
 *
 * @param entry The entry.
 * @param columns The width.
 * @returns The number of rows.
 */
export function entryHeight(entry: Entry, columns: number): number {
  return rowsOf(entry, columns).length;
}

/**
 * Lays out a frame.
 *
 * @param state What to draw.
 * @returns The rows and the cursor.
 */
export function composeFrame(state: ScreenState): Frame {
  const { columns, rows, style, input } = state;
  const inputRows = Math.max(1, Math.min(input.lines.length, Math.floor(rows / 2)));
  const start = Math.min(
    Math.max(input.cursorRow - inputRows + 1, 0),
    input.lines.length - inputRows,
  );
  const inputLines = input.lines.slice(start, start + inputRows);
  const logRows = Math.max(rows - 1 - inputRows, 0);

  const collected: string[] = [];
  const want = logRows + state.scroll;
  for (let i = state.log.length - 1; i >= 0 && collected.length < want; i--) {
    const entryRows = rowsOf(state.log[i]!, columns);
    for (let j = entryRows.length - 1; j >= 0 && collected.length < want; j--) {
      collected.push(entryRows[j]!);
    }
  }
  const scroll = Math.min(state.scroll, Math.max(collected.length - logRows, 0));
  const visible = collected.slice(scroll, scroll + logRows).reverse();
  const lines = [...Array(logRows - visible.length).fill(""), ...visible];

  let status = ` ${sanitize(state.status)}`;
  if (scroll > 0) {
    // Right after the first part, so a narrow terminal still shows it.
    const cut = status.indexOf(" · ");
    const note = ` · ↑${scroll} PgDn`;
    status = cut < 0 ? status + note : status.slice(0, cut) + note + status.slice(cut);
  }
  status = truncate(status, columns);
  const pad = " ".repeat(Math.max(columns - displayWidth(status), 0));
  lines.push(style.inverse((state.styleStatus?.(status) ?? status) + pad));
  lines.push(...inputLines);
  return {
    lines: lines.slice(0, rows),
    cursorRow: Math.min(logRows + 1 + input.cursorRow - start, rows - 1),
    cursorColumn: input.cursorColumn,
    scroll,
  };
}

/**
 * Turns a frame into the bytes that draw it: every row rewritten in place,
 * inside a synchronized update so terminals that support it never show a
 * half-drawn screen.
 *
 * @param frame The frame.
 * @returns The escape sequences and text.
 */
export function paint(frame: Frame): string {
  let out = "\x1b[?2026h\x1b[?25l";
  for (let row = 0; row < frame.lines.length; row++) {
    out += `\x1b[${row + 1};1H\x1b[0m\x1b[2K${frame.lines[row]}\x1b[0m`;
  }
  out += `\x1b[${frame.cursorRow + 1};${frame.cursorColumn + 1}H\x1b[?25h\x1b[?2026l`;
  return out;
}
