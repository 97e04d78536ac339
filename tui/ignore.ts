/**
 * The people a user ignores: their messages, private messages, actions and
 * file offers are not shown, nor their joins, leaves and renames. Names are
 * compared as the server compares them (ignoring case). Pure, with the file
 * format (one name per line) read and written here.
 *
 * @module
 */

import type { ChatEvent } from "../client.ts";
import { checkName } from "../protocol/names.ts";

/** Most names ignored at once. */
export const MAX_IGNORED = 1000;

function keyOf(name: string): string {
  return name.normalize("NFC").toLowerCase();
}

/**
 * A list of ignored names.
 *
 * @example Ignore someone, then read the list back from its file
 * ```ts
 * import { deepEqual, equal } from "node:assert/strict";
 * import { IgnoreList } from "./ignore.ts";
 *
 * const list = new IgnoreList();
 * list.add("Spammer");
 * const ts = new Date().toISOString();
 * equal(list.hides({ type: "dm", from: "spammer", to: "me", text: "buy", ts }), true);
 * deepEqual(IgnoreList.parse(list.format()).names, ["Spammer"]);
 * ```
 */
export class IgnoreList {
  #names = new Map<string, string>();

  /**
   * Reads a list from its file: one name per line; blank lines, lines
   * starting with `#` and names that cannot be names are skipped.
   *
   * @param text The file's text.
   * @returns The list.
   */
  static parse(text: string): IgnoreList {
    const list = new IgnoreList();
    for (const line of text.split(/\r?\n/)) {
      const name = line.trim();
      if (name === "" || name.startsWith("#")) continue;
      list.add(name);
    }
    return list;
  }

  /** The names, in the order they were added. */
  get names(): string[] {
    return [...this.#names.values()];
  }

  /**
   * Ignores a name.
   *
   * @param name The name.
   * @returns `"added"`, `"already"` when it was ignored already, `"invalid"`
   * for text that cannot be a name, or `"full"` past {@linkcode MAX_IGNORED}.
   */
  add(name: string): "added" | "already" | "invalid" | "full" {
    const checked = checkName(name);
    if (!checked.ok) return "invalid";
    const key = keyOf(checked.name);
    if (this.#names.has(key)) return "already";
    if (this.#names.size >= MAX_IGNORED) return "full";
    this.#names.set(key, checked.name);
    return "added";
  }

  /**
   * Stops ignoring a name.
   *
   * @param name The name.
   * @returns Whether it was ignored.
   */
  remove(name: string): boolean {
    return this.#names.delete(keyOf(name));
  }

  /**
   * Tells whether a name is ignored.
   *
   * @param name The name.
   * @returns Whether it is.
   */
  has(name: string): boolean {
    return this.#names.size > 0 && this.#names.has(keyOf(name));
  }

  /**
   * Tells whether an event comes from, or is about, someone ignored: room
   * messages and actions, private messages, file offers, joins, leaves and
   * renames.
   *
   * @param event The event.
   * @returns Whether to leave it out.
   */
  hides(event: ChatEvent): boolean {
    switch (event.type) {
      case "message":
      case "dm":
      case "offer":
        return this.has(event.from);
      case "join":
      case "leave":
      case "away":
        return this.has(event.name);
      case "nick":
        return this.has(event.from);
      default:
        return false;
    }
  }

  /**
   * The list as its file holds it.
   *
   * @returns The text: one name per line.
   */
  format(): string {
    return this.names.map((name) => name + "\n").join("");
  }
}
