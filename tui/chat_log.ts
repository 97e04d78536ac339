/**
 * Plain-text logs of what the client sees (`chat connect --log DIR`): one
 * file per room or private conversation per day, `DIR/#room/YYYY-MM-DD.log`
 * and `DIR/name/YYYY-MM-DD.log`, in UTF-8, one line per event as the text
 * door shows it (`[21:06:45] <jane> hi`), sanitised, in local time.
 *
 * @module
 */

import type { ChatEvent } from "../client.ts";
import { formatFrame } from "../protocol/text_format.ts";

/** Names Windows keeps for devices, which cannot be file names there. */
const RESERVED = /^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$/i;

/** Longest folder name made from a room or a person, in UTF-16 code units. */
const MAX_PART = 64;

/**
 * The folder name for a room or a person: lower case (names differ by more
 * than case, and file systems may not), anything but letters, digits and
 * `# _ . -` replaced by `_`, never `.`, `..` or a Windows device name.
 *
 * @param target `#room` or a person's name.
 * @returns The folder name.
 */
export function logFolder(target: string): string {
  let name = target.normalize("NFC").toLowerCase().replace(/[^\p{L}\p{M}\p{N}#_.\-]/gu, "_");
  name = name.slice(0, MAX_PART).replace(/^\.+/, (dots) => "_".repeat(dots.length));
  if (name === "" || RESERVED.test(name)) name = `_${name}`;
  return name;
}

/**
 * The day of a time stamp in local time, `YYYY-MM-DD`.
 *
 * @param ts An ISO-8601 time stamp.
 * @returns The day, or `undefined` for a time stamp that does not parse.
 */
export function logDay(ts: string): string | undefined {
  const date = new Date(ts);
  if (Number.isNaN(date.getTime())) return undefined;
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/**
 * Where an event is logged, relative to the log folder, and its line; or
 * `undefined` for events not logged (replayed history, notices, transfers).
 *
 * @example Name a room's log file
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { logEntry } from "./chat_log.ts";
 *
 * const entry = logEntry(
 *   { type: "message", room: "#Dev", from: "bob", text: "hi", ts: "2026-11-25T12:00:00Z", seq: 1 },
 *   "alice",
 * );
 * equal(entry?.path.startsWith("#dev/2026-11-2"), true);
 * equal(entry?.line.endsWith("] <bob> hi"), true);
 * ```
 *
 * @param event The event, or a message the user sent (as a `message` or `dm` event).
 * @param self The user's name, to file a private message under the other person.
 * @returns The relative path (`/`-separated) and the line.
 */
export function logEntry(
  event: ChatEvent,
  self: string,
): { path: string; line: string } | undefined {
  let target: string;
  switch (event.type) {
    case "message":
      if (event.history) return undefined;
      target = event.room;
      break;
    case "dm":
      target = event.from === self ? event.to : event.from;
      break;
    case "join":
    case "leave":
    case "topic":
      target = event.room;
      break;
    default:
      return undefined;
  }
  const day = logDay(event.ts);
  if (day === undefined) return undefined;
  const line = formatFrame(event, { room: target });
  if (line === undefined) return undefined;
  return { path: `${logFolder(target)}/${day}.log`, line };
}

/** Appends lines to the log files under one folder, in order, creating what is missing. */
export class ChatLog {
  #dir: string;
  #chain: Promise<void> = Promise.resolve();
  #made = new Set<string>();
  #failed: (error: Error) => void;
  #reported = false;

  /**
   * Opens a log folder (created on the first line).
   *
   * @param dir The folder.
   * @param failed Told once when a line cannot be written.
   */
  constructor(dir: string, failed: (error: Error) => void) {
    this.#dir = dir.replace(/[\\/]+$/, "") || dir;
    this.#failed = failed;
  }

  /**
   * Logs an event, if it is one that is logged.
   *
   * @param event The event.
   * @param self The user's name.
   */
  write(event: ChatEvent, self: string): void {
    const entry = logEntry(event, self);
    if (entry === undefined) return;
    this.#chain = this.#chain.then(() => this.#append(entry.path, entry.line)).catch((error) => {
      if (this.#reported) return;
      this.#reported = true;
      this.#failed(error instanceof Error ? error : new Error(String(error)));
    });
  }

  /** Resolves once every line logged so far is written. */
  flush(): Promise<void> {
    return this.#chain;
  }

  async #append(path: string, line: string): Promise<void> {
    const folder = `${this.#dir}/${path.slice(0, path.lastIndexOf("/"))}`;
    if (!this.#made.has(folder)) {
      await Deno.mkdir(folder, { recursive: true, mode: 0o700 });
      this.#made.add(folder);
    }
    const file = await Deno.open(`${this.#dir}/${path}`, {
      append: true,
      create: true,
      mode: 0o600,
    });
    try {
      const bytes = new TextEncoder().encode(line.replaceAll("\r\n", "\n") + "\n");
      let written = 0;
      while (written < bytes.length) written += await file.write(bytes.subarray(written));
    } finally {
      file.close();
    }
  }
}
