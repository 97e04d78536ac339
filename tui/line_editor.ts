/**
 * A terminal line editor as a pure state machine: key events in, buffer, cursor and the rows
 * to draw out. It never touches the terminal itself.
 *
 * @module
 */

import {
  bufferCells,
  type Cell,
  type EditorView,
  layout,
  type RenderOptions,
} from "./_editor_layout.ts";
import type { KeyEvent } from "./keys.ts";
import { displayWidth, graphemes } from "./width.ts";

export type { EditorView, RenderOptions };

/**
 * What the caller should do after {@linkcode LineEditor.handle}:
 *
 * - `none`: nothing changed (for example Left at the start of the line).
 * - `redraw`: the buffer or the cursor changed; draw {@linkcode LineEditor.render} again.
 * - `submit`: Enter was pressed; `text` is the whole buffer, which is now empty.
 * - `complete`: Tab was pressed; call {@linkcode LineEditor.complete} with the candidates.
 * - `interrupt`: Ctrl-C was pressed; the buffer is left as it was.
 * - `eof`: Ctrl-D was pressed on an empty buffer.
 * - `clear-screen`: Ctrl-L was pressed; clear the screen and redraw.
 */
export type EditorAction =
  | { type: "none" }
  | { type: "redraw" }
  | { type: "submit"; text: string }
  | { type: "complete" }
  | { type: "interrupt" }
  | { type: "eof" }
  | { type: "clear-screen" };

/** Options for {@linkcode LineEditor}. */
export interface LineEditorOptions {
  /**
   * Most lines kept in the history; the oldest are dropped first.
   *
   * @default {500}
   */
  historySize?: number;
  /** Lines to start the history with, oldest first. */
  history?: readonly string[];
}

/** Options for {@linkcode LineEditor.complete}. */
export interface CompleteOptions {
  /**
   * Match candidates regardless of letter case: `al` completes to `Alice`.
   *
   * @default {true}
   */
  ignoreCase?: boolean;
}

/** The outcome of {@linkcode LineEditor.complete}. */
export interface Completion {
  /** The word before the cursor that was completed. */
  word: string;
  /** The candidates that start with `word`, in the order given, without duplicates. */
  matches: string[];
  /** Whether the buffer changed, so it needs a redraw. */
  changed: boolean;
}

/** The word before the cursor, see {@linkcode LineEditor.wordAtCursor}. */
export interface CursorWord {
  /** The characters from the previous whitespace (or the start) up to the cursor. */
  text: string;
  /** Grapheme index where the word starts; `0` means at the start of the buffer. */
  start: number;
}

const _NONE: EditorAction = Object.freeze({ type: "none" });
const _REDRAW: EditorAction = Object.freeze({ type: "redraw" });

const _WHITESPACE = /^\s+$/u;
const _WORD = /^[\p{L}\p{N}\p{M}_]/u;

function _isWhitespace(grapheme: string | undefined): boolean {
  return grapheme !== undefined && _WHITESPACE.test(grapheme);
}

/** Whether `grapheme` belongs to a word; `false` past either end of the buffer. */
function _isWordCharacter(grapheme: string | undefined): boolean {
  return grapheme !== undefined && _WORD.test(grapheme);
}

function _normaliseLineBreaks(text: string): string {
  return text.includes("\r") ? text.replace(/\r\n?/g, "\n") : text;
}

/** Longest common start of `words`, compared grapheme by grapheme, spelled as in the first. */
function _commonPrefix(words: readonly string[], ignoreCase: boolean): string {
  const same = (a: string | undefined, b: string | undefined) =>
    a !== undefined && b !== undefined &&
    (ignoreCase ? a.toLowerCase() === b.toLowerCase() : a === b);
  const [first = "", ...others] = words;
  let prefix = graphemes(first);
  for (const word of others) {
    const other = graphemes(word);
    let k = 0;
    while (same(prefix[k], other[k])) k++;
    prefix = prefix.slice(0, k);
  }
  return prefix.join("");
}

/**
 * Edits one message: insertion and deletion by grapheme, word and line movements, history
 * recall, Tab completion and layout on terminal rows with wide characters.
 *
 * Keys, as decoded by `KeyDecoder` from `tui/keys.ts`:
 *
 * - Enter submits the whole buffer; Alt-Enter inserts a line break. A paste is inserted as
 *   is, line breaks included, so a multi-line paste is sent as one message.
 * - Left, Right, Ctrl-B, Ctrl-F move by grapheme; Ctrl or Alt with Left or Right, Alt-B and
 *   Alt-F by word; Home, End, Ctrl-A, Ctrl-E to the start or end of the line; Ctrl-Home and
 *   Ctrl-End to the start or end of the buffer.
 * - Backspace and Delete remove a grapheme; with Ctrl or Alt, and Alt-D, a word. Ctrl-W
 *   removes the whitespace-delimited word before the cursor, Ctrl-U everything before the
 *   cursor on its line, Ctrl-K everything after it (or the line break at its end).
 * - Up, Down, Ctrl-P, Ctrl-N move between the lines of a multi-line buffer, then through the
 *   history. Edits to recalled lines and the line being written are kept while browsing.
 * - Ctrl-D deletes forward, or reports end of input on an empty buffer. Ctrl-C, Ctrl-L and
 *   Tab are reported to the caller.
 *
 * @example Edit and submit a line
 * ```ts
 * import assert from "node:assert/strict";
 * import { LineEditor } from "./line_editor.ts";
 *
 * const editor = new LineEditor();
 * editor.handle({ type: "text", text: "hello 世界" });
 * editor.handle({ type: "ctrl", key: "w" });
 * editor.handle({ type: "text", text: "world" });
 * assert.equal(editor.text, "hello world");
 * assert.deepEqual(editor.render("> ", 80), {
 *   lines: ["> hello world"],
 *   cursorRow: 0,
 *   cursorColumn: 13,
 * });
 * assert.deepEqual(editor.handle({ type: "enter" }), { type: "submit", text: "hello world" });
 * assert.deepEqual(editor.history, ["hello world"]);
 * ```
 *
 * @example Complete a name at the start of the line
 * ```ts
 * import assert from "node:assert/strict";
 * import { LineEditor } from "./line_editor.ts";
 *
 * const editor = new LineEditor();
 * editor.handle({ type: "text", text: "al" });
 * assert.deepEqual(editor.handle({ type: "tab" }), { type: "complete" });
 * const completion = editor.complete(["alice", "bob", "/msg"]);
 * assert.deepEqual(completion.matches, ["alice"]);
 * assert.equal(editor.text, "alice: ");
 * ```
 */
export class LineEditor {
  #graphemes: string[] = [];
  #text = "";
  #cursor = 0;
  #history: string[] = [];
  #historySize: number;
  /** Position in the history; `#history.length` while writing a new line. */
  #historyIndex = 0;
  /** Unsubmitted text for history positions left while browsing. */
  #edits = new Map<number, string>();
  #cells: Cell[] | undefined;

  /**
   * Creates an editor with an empty buffer.
   *
   * @param options The history size and initial history.
   * @throws {RangeError} If `historySize` is not a positive integer.
   */
  constructor(options?: LineEditorOptions) {
    const size = options?.historySize ?? 500;
    if (!Number.isInteger(size) || size < 1) {
      throw new RangeError(
        `Cannot create a line editor with history size "${size}": expected a positive integer`,
      );
    }
    this.#historySize = size;
    for (const line of options?.history ?? []) this.addHistory(line);
  }

  /**
   * The text being edited.
   *
   * @returns The whole buffer; lines are separated by `"\n"`.
   */
  get text(): string {
    return this.#text;
  }

  /**
   * The cursor position, counted in graphemes from the start of the buffer.
   *
   * @returns A grapheme index from 0 to the number of graphemes.
   */
  get cursor(): number {
    return this.#cursor;
  }

  /**
   * The submitted lines, oldest first.
   *
   * @returns A copy of the history.
   */
  get history(): string[] {
    return [...this.#history];
  }

  /**
   * Replaces the buffer, for example to restore a draft. The history is not touched.
   *
   * @param text The new text; `"\r\n"` and `"\r"` become `"\n"`.
   * @param cursor Grapheme index for the cursor, clamped to the text; the end by default.
   */
  setText(text: string, cursor?: number): void {
    this.#set(_normaliseLineBreaks(text), Infinity);
    if (cursor !== undefined) {
      this.#cursor = Math.max(0, Math.min(Math.trunc(cursor) || 0, this.#graphemes.length));
    }
  }

  /**
   * Inserts text at the cursor and moves the cursor after it.
   *
   * @param text The text to insert; `"\r\n"` and `"\r"` become `"\n"`.
   */
  insert(text: string): void {
    this.#replace(this.#cursor, this.#cursor, _normaliseLineBreaks(text));
  }

  /** Empties the buffer and stops browsing the history. */
  clear(): void {
    this.#set("", 0);
    this.#historyIndex = this.#history.length;
    this.#edits.clear();
  }

  /**
   * Appends a line to the history unless it is blank or repeats the latest entry. Browsing
   * starts again from the newest entry.
   *
   * @param line The line to remember.
   */
  addHistory(line: string): void {
    if (line.trim() !== "" && this.#history.at(-1) !== line) {
      this.#history.push(line);
      if (this.#history.length > this.#historySize) {
        this.#history.splice(0, this.#history.length - this.#historySize);
      }
    }
    this.#historyIndex = this.#history.length;
    this.#edits.clear();
  }

  /**
   * Applies one key event.
   *
   * @param event A key event from `KeyDecoder`.
   * @returns What the caller should do next.
   */
  handle(event: KeyEvent): EditorAction {
    switch (event.type) {
      case "text":
      case "paste":
        return this.#edit(() => this.insert(event.text));
      case "enter":
        return event.alt ? this.#edit(() => this.insert("\n")) : this.#submit();
      case "tab":
        return event.shift ? _NONE : { type: "complete" };
      case "backspace":
        return event.alt || event.ctrl
          ? this.#edit(() => this.#replace(this.#wordStart(), this.#cursor, ""))
          : this.#edit(() => this.#replace(Math.max(0, this.#cursor - 1), this.#cursor, ""));
      case "delete":
        return event.alt || event.ctrl
          ? this.#edit(() => this.#replace(this.#cursor, this.#wordEnd(), ""))
          : this.#edit(() => this.#replace(this.#cursor, this.#cursor + 1, ""));
      case "left":
        return this.#move(event.alt || event.ctrl ? this.#wordStart() : this.#cursor - 1);
      case "right":
        return this.#move(event.alt || event.ctrl ? this.#wordEnd() : this.#cursor + 1);
      case "home":
        return this.#move(event.ctrl ? 0 : this.#lineStart());
      case "end":
        return this.#move(event.ctrl ? this.#graphemes.length : this.#lineEnd());
      case "up":
        return this.#up();
      case "down":
        return this.#down();
      case "ctrl":
        return this.#ctrl(event.key);
      case "alt":
        return this.#alt(event.key);
      default:
        return _NONE;
    }
  }

  #ctrl(key: string): EditorAction {
    switch (key) {
      case "a":
        return this.#move(this.#lineStart());
      case "e":
        return this.#move(this.#lineEnd());
      case "b":
        return this.#move(this.#cursor - 1);
      case "f":
        return this.#move(this.#cursor + 1);
      case "p":
        return this.#up();
      case "n":
        return this.#down();
      case "u":
        return this.#edit(() => this.#replace(this.#lineStart(), this.#cursor, ""));
      case "k": {
        const end = this.#lineEnd();
        return this.#edit(() =>
          this.#replace(this.#cursor, end === this.#cursor ? end + 1 : end, "")
        );
      }
      case "w": {
        let start = this.#cursor;
        while (start > 0 && _isWhitespace(this.#graphemes[start - 1])) start--;
        while (start > 0 && !_isWhitespace(this.#graphemes[start - 1])) start--;
        return this.#edit(() => this.#replace(start, this.#cursor, ""));
      }
      case "d":
        if (this.#text === "") return { type: "eof" };
        return this.#edit(() => this.#replace(this.#cursor, this.#cursor + 1, ""));
      case "c":
        return { type: "interrupt" };
      case "l":
        return { type: "clear-screen" };
      default:
        return _NONE;
    }
  }

  #alt(key: string): EditorAction {
    switch (key) {
      case "b":
        return this.#move(this.#wordStart());
      case "f":
        return this.#move(this.#wordEnd());
      case "d":
        return this.#edit(() => this.#replace(this.#cursor, this.#wordEnd(), ""));
      default:
        return _NONE;
    }
  }

  /**
   * Finds the word before the cursor, the one {@linkcode LineEditor.complete} would complete,
   * so the caller can choose candidates: commands when it starts with `/` at the start of the
   * buffer, names otherwise.
   *
   * @returns The word and where it starts.
   */
  wordAtCursor(): CursorWord {
    let start = this.#cursor;
    while (start > 0 && !_isWhitespace(this.#graphemes[start - 1])) start--;
    return { text: this.#graphemes.slice(start, this.#cursor).join(""), start };
  }

  /**
   * Completes the word before the cursor from `candidates`.
   *
   * With one match the word is replaced by it, followed by `": "` when it is a name at the
   * start of the buffer (`ali` becomes `alice: `) or by a space otherwise (`/ms` becomes
   * `/msg `). With several matches the word is extended to their longest common start and
   * the matches are returned for display. With none, nothing changes.
   *
   * @param candidates Names and commands (starting with `/`) that could be meant.
   * @param options Whether letter case matters.
   * @returns The word, its matches and whether the buffer changed.
   */
  complete(candidates: Iterable<string>, options?: CompleteOptions): Completion {
    const ignoreCase = options?.ignoreCase ?? true;
    const { text: word, start } = this.wordAtCursor();
    const fold = (text: string) => ignoreCase ? text.toLowerCase() : text;
    const folded = fold(word);
    const matches = [...new Set(candidates)].filter((candidate) =>
      candidate !== "" && fold(candidate).startsWith(folded)
    );
    const [match] = matches;
    if (match === undefined) return { word, matches, changed: false };
    if (matches.length === 1) {
      let suffix = start === 0 && !match.startsWith("/") ? ": " : " ";
      // Reuse a space that already follows the cursor.
      const spaceFollows = this.#graphemes[this.#cursor] === " ";
      if (spaceFollows) suffix = suffix.slice(0, -1);
      const text = this.#text;
      const cursor = this.#cursor;
      this.#replace(start, this.#cursor, match + suffix);
      if (spaceFollows) this.#cursor++;
      return { word, matches, changed: this.#text !== text || this.#cursor !== cursor };
    }
    const prefix = _commonPrefix(matches, ignoreCase);
    if (graphemes(prefix).length <= graphemes(word).length) {
      return { word, matches, changed: false };
    }
    this.#replace(start, this.#cursor, prefix);
    return { word, matches, changed: true };
  }

  /**
   * Lays out the prompt and the buffer on rows of `columns` terminal columns and finds the
   * cursor. Wide characters take two columns and move to the next row when they do not fit
   * at the end of one; combining marks take none. Line breaks in the buffer start a new row.
   * Control and invisible characters are shown as placeholders (`^[`, `<U+202E>`) from
   * `sanitize()`, tabs as four spaces; the prompt is sanitized too.
   *
   * @param prompt Text shown before the buffer.
   * @param columns The terminal width, at least 1.
   * @param options Styles for the prompt and for placeholders.
   * @returns The rows to draw and the cursor position.
   * @throws {RangeError} If `columns` is not a positive integer.
   */
  render(prompt: string, columns: number, options?: RenderOptions): EditorView {
    if (!Number.isInteger(columns) || columns < 1) {
      throw new RangeError(`Cannot render the line editor in "${columns}" columns`);
    }
    return layout(prompt, this.#bufferCells(), this.#cursor, columns, options);
  }

  #bufferCells(): Cell[] {
    this.#cells ??= bufferCells(this.#text, this.#graphemes);
    return this.#cells;
  }

  #edit(change: () => void): EditorAction {
    const text = this.#text;
    const cursor = this.#cursor;
    change();
    return text === this.#text && cursor === this.#cursor ? _NONE : _REDRAW;
  }

  #move(cursor: number): EditorAction {
    const clamped = Math.max(0, Math.min(cursor, this.#graphemes.length));
    if (clamped === this.#cursor) return _NONE;
    this.#cursor = clamped;
    return _REDRAW;
  }

  #submit(): EditorAction {
    const text = this.#text;
    this.addHistory(text);
    this.#set("", 0);
    return { type: "submit", text };
  }

  #up(): EditorAction {
    const start = this.#lineStart();
    if (start > 0) return this.#move(this.#atColumn(this.#lineStart(start - 1), this.#column()));
    if (this.#historyIndex === 0) return _NONE;
    this.#recall(this.#historyIndex - 1);
    return _REDRAW;
  }

  #down(): EditorAction {
    const end = this.#lineEnd();
    if (end < this.#graphemes.length) return this.#move(this.#atColumn(end + 1, this.#column()));
    if (this.#historyIndex >= this.#history.length) return _NONE;
    this.#recall(this.#historyIndex + 1);
    return _REDRAW;
  }

  /** Leaves the current history position, keeping its edits, and shows another. */
  #recall(index: number): void {
    const original = this.#history[this.#historyIndex];
    if (original === undefined || this.#text !== original) {
      this.#edits.set(this.#historyIndex, this.#text);
    } else {
      this.#edits.delete(this.#historyIndex);
    }
    this.#historyIndex = index;
    this.#set(this.#edits.get(index) ?? this.#history[index] ?? "", Infinity);
  }

  /** Display column of the cursor within its line of the buffer. */
  #column(): number {
    return displayWidth(this.#graphemes.slice(this.#lineStart(), this.#cursor).join(""));
  }

  /** The grapheme index on the line starting at `start` closest to `column` from the left. */
  #atColumn(start: number, column: number): number {
    let index = start;
    let width = 0;
    for (let grapheme = this.#graphemes[index]; grapheme !== undefined && grapheme !== "\n";) {
      width += displayWidth(grapheme);
      if (width > column) break;
      grapheme = this.#graphemes[++index];
    }
    return index;
  }

  #lineStart(from = this.#cursor): number {
    let index = from;
    while (index > 0 && this.#graphemes[index - 1] !== "\n") index--;
    return index;
  }

  #lineEnd(): number {
    let index = this.#cursor;
    while (index < this.#graphemes.length && this.#graphemes[index] !== "\n") index++;
    return index;
  }

  /** Start of the word before the cursor, skipping anything that is not a word first. */
  #wordStart(): number {
    let index = this.#cursor;
    while (index > 0 && !_isWordCharacter(this.#graphemes[index - 1])) index--;
    while (index > 0 && _isWordCharacter(this.#graphemes[index - 1])) index--;
    return index;
  }

  /** End of the word after the cursor, skipping anything that is not a word first. */
  #wordEnd(): number {
    let index = this.#cursor;
    const size = this.#graphemes.length;
    while (index < size && !_isWordCharacter(this.#graphemes[index])) index++;
    while (index < size && _isWordCharacter(this.#graphemes[index])) index++;
    return index;
  }

  /** Replaces the graphemes in `[start, end)` by `text` and puts the cursor after it. */
  #replace(start: number, end: number, text: string): void {
    const size = this.#graphemes.length;
    start = Math.max(0, Math.min(start, size));
    end = Math.max(start, Math.min(end, size));
    if (start === end && text === "") {
      this.#cursor = start;
      return;
    }
    const before = this.#graphemes.slice(0, start).join("");
    const after = this.#graphemes.slice(end).join("");
    this.#set(before + text + after, before.length + text.length);
  }

  /**
   * Sets the buffer and puts the cursor at the first grapheme boundary at or after `offset`
   * (in UTF-16 code units). Re-segmenting keeps graphemes right when an edit joins or splits
   * them, as when a combining mark is typed after its base letter.
   */
  #set(text: string, offset: number): void {
    if (text !== this.#text) {
      this.#text = text;
      this.#graphemes = graphemes(text);
      this.#cells = undefined;
    }
    let index = 0;
    let position = 0;
    for (const grapheme of this.#graphemes) {
      if (position >= offset) break;
      position += grapheme.length;
      index++;
    }
    this.#cursor = index;
  }
}
