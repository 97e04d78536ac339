/**
 * The smart filter, as irssi and WeeChat have it: joins, leaves and renames
 * of people who have not spoken recently are noise, and are hidden; those of
 * people in the conversation are shown. Pure, with the clock passed in.
 *
 * @module
 */

import type { ChatEvent } from "../client.ts";

/** How long after speaking a person's joins, leaves and renames are still shown: 10 minutes. */
export const SMART_FILTER_MS = 10 * 60 * 1000;

/** Options for {@linkcode SmartFilter}. */
export interface SmartFilterOptions {
  /**
   * How long after speaking a person's joins, leaves and renames are shown, in ms.
   *
   * @default {600000}
   */
  window?: number;
  /**
   * The clock, in ms.
   *
   * @default {Date.now}
   */
  now?: () => number;
}

/** How names compare. */
function keyOf(name: string): string {
  return name.normalize("NFC").toLowerCase();
}

/**
 * Tells which joins, leaves and renames to show.
 *
 * @example Hide a lurker's leave, show a speaker's
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { SmartFilter } from "./smart_filter.ts";
 *
 * const filter = new SmartFilter({ now: () => Date.parse("2026-01-01T12:00:00Z") });
 * const ts = "2026-01-01T11:58:00Z";
 * filter.observe({ type: "message", room: "#lobby", from: "bob", text: "hi", ts, seq: 1 });
 * equal(filter.shows({ type: "leave", room: "#lobby", name: "bob", reason: "quit", ts }), true);
 * equal(filter.shows({ type: "leave", room: "#lobby", name: "eve", reason: "quit", ts }), false);
 * ```
 */
export class SmartFilter {
  /** Whether joins, leaves and renames of quiet people are hidden. */
  enabled = true;
  #window: number;
  #now: () => number;
  #spoke = new Map<string, number>();

  /**
   * Creates a filter that remembers nobody yet.
   *
   * @param options How long speaking counts, and the clock.
   */
  constructor(options: SmartFilterOptions = {}) {
    this.#window = options.window ?? SMART_FILTER_MS;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Notes who speaks (room messages, replayed ones at their time, and private
   * messages), and carries a rename over to the new name.
   *
   * @param event Any event.
   */
  observe(event: ChatEvent): void {
    if (event.type === "message" || event.type === "dm") {
      const at = event.type === "message" && event.history ? Date.parse(event.ts) : this.#now();
      const key = keyOf(event.from);
      if (Number.isFinite(at) && at > (this.#spoke.get(key) ?? -Infinity)) {
        this.#spoke.set(key, at);
      }
    } else if (event.type === "nick") {
      const at = this.#spoke.get(keyOf(event.from));
      if (at !== undefined) this.#spoke.set(keyOf(event.to), at);
    }
    this.#prune();
  }

  /**
   * Tells whether to show an event: everything but the joins, leaves and
   * renames of people who have not spoken within the window, while the
   * filter is on.
   *
   * @param event Any event.
   * @returns Whether to show it.
   */
  shows(event: ChatEvent): boolean {
    if (!this.enabled) return true;
    const name = event.type === "join" || event.type === "leave" || event.type === "away"
      ? event.name
      : event.type === "nick"
      ? event.from
      : undefined;
    if (name === undefined) return true;
    // A kick or a ban is news whoever it is.
    if (event.type === "leave" && (event.reason === "kicked" || event.reason === "banned")) {
      return true;
    }
    const at = this.#spoke.get(keyOf(name));
    return at !== undefined && this.#now() - at <= this.#window;
  }

  /** Forgets those who spoke too long ago, so the map stays as small as the conversation. */
  #prune(): void {
    if (this.#spoke.size < 1024) return;
    const oldest = this.#now() - this.#window;
    for (const [key, at] of this.#spoke) if (at < oldest) this.#spoke.delete(key);
  }
}
