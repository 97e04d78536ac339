/**
 * What the client shows for each event: lines with a local time, the
 * sender's name in its colour, and the text, sanitised so nothing from the
 * network can control the terminal. Pure functions, so they are testable.
 *
 * This is the output layer: every entry's body is sanitised when the entry is
 * made, whatever the caller passed, and line-mode output is written only as
 * {@linkcode Rendered} text, which only the functions here make.
 *
 * @module
 */

import type { ChatEvent, SentDm, SentMessage } from "../client.ts";
import { sanitize } from "../protocol/sanitize.ts";
import { clock } from "../protocol/text_format.ts";
import type { Style } from "./style.ts";
import { displayWidth, graphemes, wrap } from "./width.ts";

declare const rendered: unique symbol;

/**
 * Text ready for a terminal: sanitised, its only escape sequences the
 * client's own styles. Made only by {@linkcode flatten}, {@linkcode plain}
 * and {@linkcode jsonLine}.
 */
export type Rendered = string & { readonly [rendered]: true };

/**
 * Text of any origin made safe to print as it is (line feeds kept).
 *
 * @param text The text.
 * @returns The sanitised text.
 */
export function plain(text: string): Rendered {
  return sanitize(text, { newlines: true }) as Rendered;
}

/** What JSON leaves raw but a terminal may act on: C1 controls, bidi and invisible marks. */
const JSON_UNSAFE =
  /[\u007f-\u009f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/g;

/**
 * A value as one line of JSON that is safe on a terminal: the characters a
 * terminal may act on are escaped (`\u009b`), so the data stays exact.
 *
 * @param value The value.
 * @returns The JSON text.
 */
export function jsonLine(value: unknown): Rendered {
  return JSON.stringify(value).replace(
    JSON_UNSAFE,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
  ) as Rendered;
}

/** One thing shown in the log: a prefix (time, name) and a body that may wrap. */
export interface Entry {
  /** The styled prefix, including the time. */
  prefix: string;
  /** The prefix's width in columns. */
  prefixWidth: number;
  /** The body: sanitised, may hold `\n`. */
  body: string;
  /** How to style each row of the body. */
  bodyStyle?: (text: string) => string;
  /** Whether this entry mentions the user (for the bell). */
  mention?: boolean;
}

/** What {@linkcode entryFor} needs to know about the user. */
export interface EntryContext {
  /** The user's current name. */
  self: string;
  /** Whether the user is in more than one room (lines then show their room). */
  manyRooms?: boolean;
  /** The styles. */
  style: Style;
}

/** Why someone left, as the leave line says it after the room. */
const LEAVE_REASONS: Record<string, string> = {
  quit: "quit",
  part: "left the room",
  lost: "connection lost",
  flood: "sent too fast",
  timeout: "timed out",
  kicked: "kicked",
  banned: "banned",
  send_queue_exceeded: "too far behind",
  protocol_error: "protocol error",
};

/**
 * Sizes for people: `512 B`, `1.5 MiB`, `2.0 GiB` (powers of 1024, named as such).
 *
 * @param bytes The size.
 * @returns The text.
 */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Tells whether a text mentions a name as a whole word, ignoring case.
 *
 * @param text The message.
 * @param name The name to look for.
 * @returns Whether it is mentioned.
 */
export function mentions(text: string, name: string): boolean {
  if (name === "") return false;
  return new RegExp(`(^|[^\\p{L}\\p{N}_])@?${escapeRegExp(name)}($|[^\\p{L}\\p{N}_])`, "iu").test(
    text,
  );
}

function entry(
  style: Style,
  ts: string,
  label: string,
  labelWidth: number,
  body: string,
  bodyStyle?: (text: string) => string,
): Entry {
  const time = clock(ts);
  return {
    prefix: `${style.dim(time)} ${label}${label === "" ? "" : " "}`,
    prefixWidth: time.length + 1 + labelWidth + (label === "" ? 0 : 1),
    body: sanitize(body, { newlines: true }),
    bodyStyle,
  };
}

function who(name: string, context: EntryContext): string {
  return name === context.self ? context.style.self(name) : context.style.name(name);
}

/**
 * Turns an event into an entry, or `undefined` for events not shown.
 *
 * @param event The event.
 * @param context The user's name and the styles.
 * @returns The entry.
 */
export function entryFor(event: ChatEvent, context: EntryContext): Entry | undefined {
  const { style } = context;
  switch (event.type) {
    case "message": {
      const from = sanitize(event.from);
      const text = sanitize(event.text, { newlines: true });
      const mentioned = !event.history && event.from !== context.self &&
        mentions(event.text, context.self);
      const room = context.manyRooms ? sanitize(event.room) + " " : "";
      // A notice (a bot's, a service's) reads -name-, as IRC clients show it.
      const label = style.dim(room) +
        (event.action
          ? `* ${who(from, context)}`
          : event.notice
          ? `-${who(from, context)}-`
          : `<${who(from, context)}>`);
      const result = entry(
        style,
        event.ts,
        label,
        displayWidth(room) + 2 + displayWidth(from),
        text,
      );
      if (event.action) result.bodyStyle = style.italic;
      if (event.history) result.bodyStyle = style.dim;
      if (mentioned) {
        result.mention = true;
        result.bodyStyle = style.mention;
      }
      return result;
    }
    case "dm": {
      const from = sanitize(event.from);
      const label = `${style.private("[private]")} ${event.action ? "* " : ""}${
        event.notice && !event.action ? `-${style.name(from)}-` : `<${style.name(from)}>`
      }`;
      const width = 10 + (event.action ? 2 : 0) + 2 + displayWidth(from);
      const result = entry(style, event.ts, label, width, sanitize(event.text, { newlines: true }));
      result.mention = true;
      return result;
    }
    case "join":
      return entry(
        style,
        event.ts,
        "",
        0,
        `→ ${sanitize(event.name)} joined ${sanitize(event.room)}`,
        style.dim,
      );
    case "leave":
      return entry(
        style,
        event.ts,
        "",
        0,
        `← ${sanitize(event.name)} left ${sanitize(event.room)} (${
          LEAVE_REASONS[event.reason] ?? sanitize(event.reason)
        }${event.by ? ` by ${sanitize(event.by)}` : ""}${
          event.message ? `: ${sanitize(event.message)}` : ""
        })`,
        style.dim,
      );
    case "nick":
      return entry(
        style,
        event.ts,
        "",
        0,
        `${sanitize(event.from)} is now known as ${sanitize(event.to)}`,
        style.dim,
      );
    case "away":
      return entry(
        style,
        event.ts,
        "",
        0,
        event.message === ""
          ? `${sanitize(event.name)} is back`
          : `${sanitize(event.name)} is away: ${sanitize(event.message)}`,
        style.dim,
      );
    case "topic":
      return entry(
        style,
        event.ts,
        "",
        0,
        `${sanitize(event.from)} set the topic of ${sanitize(event.room)}: ${
          sanitize(event.topic) || "(none)"
        }`,
        style.dim,
      );
    case "reconnecting":
      return notice(
        style,
        event.attempt === 1
          ? `Connection lost (${sanitize(event.reason)}); reconnecting in ${
            (event.delay / 1000).toFixed(1)
          } s`
          : `Still reconnecting: attempt ${event.attempt} in ${(event.delay / 1000).toFixed(1)} s`,
        "error",
      );
    case "reconnected":
      return notice(
        style,
        `Reconnected${event.resumed ? "" : " as a new session"}` +
          (event.missed
            ? `; ${event.missed} missed message${event.missed === 1 ? "" : "s"} follow`
            : "; nothing was missed") +
          Object.entries(event.skipped ?? {}).map(([room, count]) =>
            `; ${count} earlier one${count === 1 ? "" : "s"} in ${room} ${
              count === 1 ? "was" : "were"
            } not fetched (/history ${room} to read them)`
          ).join(""),
      );
    case "offer":
      return notice(
        style,
        `${sanitize(event.from)} offers "${sanitize(event.name)}" (${formatBytes(event.size)}, ${
          sanitize(event.mime)
        })` +
          `${event.to.startsWith("#") ? ` to ${sanitize(event.to)}` : ""}: /accept ${
            event.transfer.slice(0, 6)
          } or /decline ${event.transfer.slice(0, 6)}`,
      );
    case "transfer":
      if (event.state === "accepted") {
        return notice(style, `${sanitize(event.by)} accepted; sending…`);
      }
      if (event.state === "declined") {
        return notice(style, `${sanitize(event.by)} declined the file`, "error");
      }
      if (event.state === "received") {
        return event.ok
          ? notice(style, `${sanitize(event.by)} received the file; the SHA-256 matched`)
          : notice(style, `${sanitize(event.by)} did not receive the file whole`, "error");
      }
      if (event.state === "expired") return notice(style, "A file offer expired", "error");
      return notice(
        style,
        `Transfer cancelled${event.reason ? `: ${sanitize(event.reason)}` : ""}`,
        "error",
      );
    case "bye":
      return notice(style, sanitize(event.message), "error");
    case "error":
      // The client's own findings are not the server's words.
      return event.code === "certificate_changed" || event.code === "invalid_frame"
        ? notice(style, event.message, "error")
        : notice(style, `Server: ${sanitize(event.message)}`, "error");
  }
}

/**
 * The entry for a message the user sent, as the server stored it.
 *
 * @param sent The stored message.
 * @param context The user's name and the styles.
 * @returns The entry.
 */
export function entryForSent(sent: SentMessage, context: EntryContext): Entry {
  return entryFor({ type: "message", ...sent }, context)!;
}

/**
 * The entry for a private message the user sent.
 *
 * @param sent The delivered message.
 * @param context The styles.
 * @returns The entry.
 */
export function entryForSentDm(sent: SentDm, context: EntryContext): Entry {
  const { style } = context;
  const to = sanitize(sent.to);
  const label = `${style.private(`[private → ${to}]`)}${
    sent.action ? ` * ${style.self(sanitize(sent.from))}` : ""
  }`;
  const width = 13 + displayWidth(to) + (sent.action ? 3 + displayWidth(sanitize(sent.from)) : 0);
  return entry(style, sent.ts, label, width, sanitize(sent.text, { newlines: true }));
}

/**
 * A notice from the client itself: `*** text` for information, `! text` for errors.
 * The text is sanitised here, so it may hold anything that came from the network.
 *
 * @param style The styles.
 * @param text The text.
 * @param kind Information or an error.
 * @returns The entry.
 */
export function notice(style: Style, text: string, kind: "info" | "error" = "info"): Entry {
  const mark = kind === "error" ? "!" : "***";
  return {
    prefix: (kind === "error" ? style.error(mark) : style.info(mark)) + " ",
    prefixWidth: mark.length + 1,
    body: sanitize(text, { newlines: true }),
    bodyStyle: kind === "error" ? style.error : style.info,
  };
}

/** Fewest columns the body gets beside the prefix; with less, it starts on the next row. */
const MIN_BODY_COLUMNS = 10;

/** Shortens a styled text (SGR sequences count no columns) to at most `columns` columns. */
function truncateStyled(text: string, columns: number): string {
  let result = "";
  let width = 0;
  // deno-lint-ignore no-control-regex
  for (const part of text.split(/(\x1b\[[0-9;]*m)/)) {
    if (part.startsWith("\x1b[")) {
      result += part;
      continue;
    }
    for (const grapheme of graphemes(part)) {
      const graphemeWidth = displayWidth(grapheme);
      if (width + graphemeWidth > columns) return result + "\x1b[0m";
      result += grapheme;
      width += graphemeWidth;
    }
  }
  return result;
}

/**
 * Lays an entry out on rows of a given width: the body wraps under itself
 * (a hanging indent), so names and times stay in a column. No row is wider
 * than `columns` (but for a single character wider than the terminal), so
 * nothing is lost to the terminal's own wrapping: when the prefix leaves too
 * little room, it gets a row of its own (shortened if need be) and the body
 * follows on the next rows.
 *
 * @param item The entry.
 * @param columns The terminal width.
 * @returns The styled rows.
 */
export function layout(item: Entry, columns: number): string[] {
  columns = Math.max(Math.trunc(columns), 1);
  const styleBody = item.bodyStyle ?? ((text: string) => text);
  const rows: string[] = [];
  let rest = item.body;
  let indent: number;
  if (columns - item.prefixWidth >= Math.min(MIN_BODY_COLUMNS, columns)) {
    const first = wrap(item.body, columns - item.prefixWidth)[0] ?? "";
    rows.push(item.prefix + styleBody(first));
    const after = item.body.slice(first.length);
    rest = after.startsWith("\n") ? after.slice(1) : after.replace(/^ +/, "");
    if (rest === "") return rows;
    indent = item.prefixWidth <= columns / 2 ? item.prefixWidth : 2;
  } else {
    rows.push(
      item.prefixWidth <= columns ? item.prefix : truncateStyled(item.prefix, columns),
    );
    indent = 2;
  }
  // In a very narrow terminal every column counts more than the indent.
  if (columns - indent < Math.min(MIN_BODY_COLUMNS, columns)) indent = 0;
  const pad = " ".repeat(indent);
  for (const row of wrap(rest, columns - indent)) rows.push(pad + styleBody(row));
  return rows;
}

/**
 * Renders an entry as one line for pipes and plain terminals: continuation
 * lines of a multi-line message are indented.
 *
 * @param item The entry.
 * @returns The text, lines separated by `\n`.
 */
export function flatten(item: Entry): Rendered {
  const styleBody = item.bodyStyle ?? ((text: string) => text);
  const pad = " ".repeat(Math.min(item.prefixWidth, 24));
  return (item.prefix + item.body.split("\n").map(styleBody).join("\n" + pad)) as Rendered;
}
