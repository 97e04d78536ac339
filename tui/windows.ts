/**
 * The windows of the full-screen client, as irssi and WeeChat have them: one
 * per room and one per private conversation, each with its own log, scroll
 * position, half-typed input and activity, and a "new messages" line where
 * the user last left it. Pure state, so it is testable without a terminal.
 *
 * @module
 */

import type { Entry } from "./entries.ts";
import { sanitize } from "../protocol/sanitize.ts";
import { truncate } from "./width.ts";

/**
 * What happened in a window the user is not looking at, least to most
 * pressing: nothing worth a mark, new messages, a message that mentions the
 * user (or any private message).
 */
export type Activity = "none" | "messages" | "mention";

const RANK: Record<Activity, number> = { none: 0, messages: 1, mention: 2 };

/** Most entries kept per window; older ones are dropped. */
export const MAX_WINDOW_ENTRIES = 5000;

/** Widest a window's name is shown in the window list, in columns. */
export const MAX_WINDOW_NAME_COLUMNS = 16;

/** One window: a room (`#name`), a private conversation (a person's name), or none (`""`). */
export class Window {
  #target: string;
  /** The log, oldest first. */
  readonly log: Entry[] = [];
  /** How many rows the log is scrolled up from the bottom. */
  scroll = 0;
  /** What the input line held when the user left the window. */
  draft = "";
  /** Where the cursor was in it (graphemes). */
  draftCursor = 0;
  #activity: Activity = "none";
  #marker: Entry | undefined;
  #markNext = false;

  /**
   * Creates a window.
   *
   * @param target The room or the person, `""` for none.
   */
  constructor(target: string) {
    this.#target = target;
  }

  /** The room (`#name`), the person, or `""`. */
  get target(): string {
    return this.#target;
  }

  /** Whether this is a private conversation. */
  get isPrivate(): boolean {
    return this.#target !== "" && !this.#target.startsWith("#");
  }

  /** What happened since the user last looked. */
  get activity(): Activity {
    return this.#activity;
  }

  /** The "new messages" line, when the log holds one. */
  get marker(): Entry | undefined {
    return this.#marker !== undefined && this.log.includes(this.#marker) ? this.#marker : undefined;
  }

  /**
   * Renames the window (a private conversation whose person changed name).
   *
   * @param target The new name.
   */
  rename(target: string): void {
    this.#target = target;
  }

  /** Called when the user leaves the window: the next new entry gets the line above it. */
  blur(): void {
    if (this.#marker !== undefined) {
      const at = this.log.indexOf(this.#marker);
      if (at >= 0) this.log.splice(at, 1);
      this.#marker = undefined;
    }
    this.#markNext = true;
  }

  /** Called when the user comes to the window: its activity is seen. */
  focus(): void {
    this.#activity = "none";
    this.#markNext = false;
  }

  /**
   * Adds an entry.
   *
   * @param entry The entry.
   * @param activity How much it matters, for a window the user is not looking at.
   * @param seen Whether the user is looking at the window.
   * @param marker Makes the "new messages" line, when one is needed.
   */
  add(entry: Entry, activity: Activity, seen: boolean, marker: () => Entry): void {
    if (!seen && this.#markNext && activity !== "none") {
      this.#marker = marker();
      this.log.push(this.#marker);
      this.#markNext = false;
    }
    this.log.push(entry);
    if (this.log.length > MAX_WINDOW_ENTRIES) {
      this.log.splice(0, this.log.length - MAX_WINDOW_ENTRIES);
    }
    if (!seen && RANK[activity] > RANK[this.#activity]) this.#activity = activity;
  }

  /** Empties the log (`/clear`). */
  clear(): void {
    this.log.length = 0;
    this.scroll = 0;
    this.#marker = undefined;
  }
}

/** How names compare: rooms and people alike, ignoring case. */
function keyOf(target: string): string {
  return target.normalize("NFC").toLowerCase();
}

/**
 * The list of windows and which one is shown. There is always at least one:
 * when the last is closed, an empty one (`""`, in no room) takes its place.
 *
 * @example Switch windows and see activity
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { Windows } from "./windows.ts";
 * import { notice } from "./entries.ts";
 * import { createStyle } from "./style.ts";
 *
 * const style = createStyle(false);
 * const windows = new Windows(() => notice(style, "new messages"));
 * windows.open("#lobby");
 * windows.open("#dev", { focus: true });
 * windows.add("#lobby", notice(style, "hi"), "messages");
 * equal(windows.bar(), "[2:#dev] 1:#lobby+");
 * windows.focusIndex(0);
 * equal(windows.bar(), "[1:#lobby]");
 * ```
 */
export class Windows {
  #list: Window[] = [new Window("")];
  #current = 0;
  #marker: () => Entry;

  /**
   * Creates the list with one empty window.
   *
   * @param marker Makes the "new messages" line.
   */
  constructor(marker: () => Entry) {
    this.#marker = marker;
  }

  /** The windows, in order (window 1 first). */
  get list(): readonly Window[] {
    return this.#list;
  }

  /** The window shown. */
  get current(): Window {
    return this.#list[this.#current]!;
  }

  /** The index of the window shown, 0-based. */
  get index(): number {
    return this.#current;
  }

  /**
   * The window of a room or a person.
   *
   * @param target The room or the person.
   * @returns The window, if one is open.
   */
  find(target: string): Window | undefined {
    const key = keyOf(target);
    return this.#list.find((window) => keyOf(window.target) === key);
  }

  /**
   * Opens a window, or finds the one already open.
   *
   * @param target The room or the person.
   * @param options Whether to show it.
   * @returns The window.
   */
  open(target: string, options: { focus?: boolean } = {}): Window {
    let window = this.find(target);
    if (window === undefined) {
      window = new Window(target);
      const only = this.#list[0]!;
      // The empty window gives way to the first real one, keeping what it showed.
      if (this.#list.length === 1 && only.target === "") {
        window.log.push(...only.log);
        window.draft = only.draft;
        window.draftCursor = only.draftCursor;
        this.#list[0] = window;
      } else {
        this.#list.push(window);
      }
    }
    if (options.focus) this.focusIndex(this.#list.indexOf(window));
    return window;
  }

  /**
   * Closes a window. When it was shown, the one before it is shown.
   *
   * @param target The room or the person.
   * @returns The window closed, if one was open.
   */
  close(target: string): Window | undefined {
    const window = this.find(target);
    if (window === undefined) return undefined;
    const at = this.#list.indexOf(window);
    const shown = at === this.#current;
    this.#list.splice(at, 1);
    if (this.#list.length === 0) {
      const empty = new Window("");
      empty.draft = window.draft;
      empty.draftCursor = window.draftCursor;
      this.#list.push(empty);
    }
    if (shown) {
      this.#current = Math.min(Math.max(at - 1, 0), this.#list.length - 1);
      this.current.focus();
    } else if (at < this.#current) {
      this.#current--;
    }
    return window;
  }

  /**
   * Shows window `index` (0-based); an index past the end is ignored.
   *
   * @param index The window.
   * @returns Whether the window shown changed.
   */
  focusIndex(index: number): boolean {
    if (index < 0 || index >= this.#list.length || index === this.#current) return false;
    this.current.blur();
    this.#current = index;
    this.current.focus();
    return true;
  }

  /**
   * Shows the next window (`step` 1) or the previous one (`-1`), round the end.
   *
   * @param step The direction.
   * @returns Whether the window shown changed.
   */
  step(step: 1 | -1): boolean {
    const count = this.#list.length;
    return this.focusIndex((this.#current + step + count) % count);
  }

  /**
   * Adds an entry to the window of a room or a person (opened if need be), or
   * to the window shown (`undefined`).
   *
   * @param target Where the entry belongs.
   * @param entry The entry.
   * @param activity How much it matters to a user looking elsewhere.
   * @returns The window it went to.
   */
  add(target: string | undefined, entry: Entry, activity: Activity = "none"): Window {
    const window = target === undefined ? this.current : this.open(target);
    window.add(entry, activity, window === this.current, this.#marker);
    return window;
  }

  /**
   * The window list for the status bar: the window shown in brackets, then
   * those with activity: `+` after new messages, `!` after a mention or a
   * private message. Names are sanitised and shortened by their width in
   * columns, so wide (Chinese, emoji) names keep the bar's layout.
   *
   * @returns The text.
   */
  bar(): string {
    const label = (window: Window, at: number) =>
      `${at + 1}:${
        window.target === ""
          ? "(no room)"
          : truncate(sanitize(window.target), MAX_WINDOW_NAME_COLUMNS)
      }`;
    const parts = [`[${label(this.current, this.#current)}]`];
    this.#list.forEach((window, at) => {
      if (at === this.#current || window.activity === "none") return;
      parts.push(label(window, at) + (window.activity === "mention" ? "!" : "+"));
    });
    return parts.join(" ");
  }
}
