/**
 * IRC lines: reading one that a client sent, writing ones for it, and the
 * core's events as IRC lines, which every IRC reader of an event shares.
 *
 * @module
 */

import type { LeaveReason, ServerFrame } from "../../protocol/frames.ts";
import { nickOf } from "./irc_names.ts";

/** The name the IRC door gives the server in its replies, unless it is given another. */
export const SERVER_NAME = "chat.server";
/** Most characters of the server's name (RFC 2812, section 1.1). */
export const MAX_SERVER_NAME_LENGTH = 63;
/** A host name with at least one dot: what IRC clients take for a server rather than a nick. */
const SERVER_NAME_SHAPE =
  /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$/;

/**
 * The name the IRC door gives the server: the one given, else the host name
 * the server listens on when it is a name with a dot (not an address), else
 * {@linkcode SERVER_NAME}.
 *
 * @param name The name given, if any.
 * @param hostname The host name the server listens on.
 * @returns The name.
 * @throws {TypeError} When the name given is no host name with a dot, or is
 * longer than 63 characters.
 */
export function ircServerName(name: string | undefined, hostname: string | undefined): string {
  if (name !== undefined) {
    if (name.length > MAX_SERVER_NAME_LENGTH || !SERVER_NAME_SHAPE.test(name)) {
      throw new TypeError(
        `Invalid IRC server name ${
          JSON.stringify(name.slice(0, 80))
        }: use a host name with a dot ` +
          `("chat.example.org"), up to ${MAX_SERVER_NAME_LENGTH} letters, digits, "-" and "."`,
      );
    }
    return name;
  }
  if (
    hostname !== undefined && hostname.length <= MAX_SERVER_NAME_LENGTH &&
    SERVER_NAME_SHAPE.test(hostname) && !/^[0-9.]+$/.test(hostname)
  ) return hostname;
  return SERVER_NAME;
}

/** Longest line without its tags, CR LF included (RFC 1459). */
export const MAX_LINE_BYTES = 512;
/** Longest tag section of a line, `@` and the space after it included (IRCv3 message-tags). */
export const MAX_TAG_BYTES = 8191;
/** Longest tag section a client may send, `@` and the space included (IRCv3 message-tags). */
export const MAX_CLIENT_TAG_BYTES = 4094;

/** Tags a reader negotiated: the bits of {@linkcode ircEvent}'s variant. */
export const SERVER_TIME = 1;
/** The `message-tags` capability: message ids, and the tags of events. */
export const MESSAGE_TAGS = 2;

const encoder = new TextEncoder();

/** One line from a client. */
export interface IrcMessage {
  /** The tags, unescaped. */
  tags: Map<string, string>;
  /** The command, upper case (or a numeric). */
  command: string;
  /** The parameters, the trailing one included. */
  params: string[];
}

const TAG_ESCAPES: Record<string, string> = { ":": ";", s: " ", "\\": "\\", r: "\r", n: "\n" };

/**
 * Reads a line (without its CR LF). The source a client gives is ignored.
 *
 * @param line The line.
 * @returns The message, or `undefined` for a line with no command.
 */
export function parseIrc(line: string): IrcMessage | undefined {
  let rest = line;
  const tags = new Map<string, string>();
  if (rest.startsWith("@")) {
    const space = rest.indexOf(" ");
    const raw = space === -1 ? rest.slice(1) : rest.slice(1, space);
    rest = space === -1 ? "" : rest.slice(space + 1);
    for (const tag of raw.split(";")) {
      if (tag === "") continue;
      const equals = tag.indexOf("=");
      const key = equals === -1 ? tag : tag.slice(0, equals);
      const value = equals === -1 ? "" : tag.slice(equals + 1).replace(
        /\\(.?)/g,
        (_, char: string) => TAG_ESCAPES[char] ?? char,
      );
      tags.set(key, value);
    }
  }
  rest = rest.replace(/^ +/, "");
  if (rest.startsWith(":")) {
    const space = rest.indexOf(" ");
    rest = space === -1 ? "" : rest.slice(space + 1);
  }
  const params: string[] = [];
  let command: string | undefined;
  while (rest !== "") {
    rest = rest.replace(/^ +/, "");
    if (rest === "") break;
    if (command !== undefined && rest.startsWith(":")) {
      params.push(rest.slice(1));
      break;
    }
    const space = rest.indexOf(" ");
    const word = space === -1 ? rest : rest.slice(0, space);
    rest = space === -1 ? "" : rest.slice(space + 1);
    if (command === undefined) command = word.toUpperCase();
    else params.push(word);
  }
  return command === undefined ? undefined : { tags, command, params };
}

/** What would end or break a line: text from others (a topic, a reason) never carries it. */
const LINE_BREAK = /[\r\n\0]/;
const LINE_BREAKS = /[\r\n\0]/g;

/**
 * One line: `:source COMMAND params`, the last parameter written as a
 * trailing one when it must be (empty, a space, a leading `:`) or when `text`
 * says it is text. CR, LF and NUL in a parameter become spaces, so that no
 * text can end the line and forge another.
 *
 * @param source Who it comes from.
 * @param command The command or numeric.
 * @param params The parameters.
 * @param text Whether the last parameter is text (always written trailing).
 * @returns The line, without CR LF.
 */
export function ircLine(
  source: string,
  command: string,
  params: readonly string[],
  text = false,
): string {
  let line = `:${source} ${command}`;
  params.forEach((raw, index) => {
    const param = LINE_BREAK.test(raw) ? raw.replace(LINE_BREAKS, " ") : raw;
    const last = index === params.length - 1;
    line += last && (text || param === "" || param.includes(" ") || param.startsWith(":"))
      ? ` :${param}`
      : ` ${param}`;
  });
  return line;
}

/**
 * Lines as bytes, each ended with CR LF.
 *
 * @param lines The lines.
 * @returns The bytes.
 */
export function ircBytes(lines: readonly string[]): Uint8Array {
  return encoder.encode(lines.map((line) => line + "\r\n").join(""));
}

/**
 * The source of a person's lines: `nick!user@host`.
 *
 * @param name Their chat name.
 * @returns The mask.
 */
export function maskOf(name: string): string {
  return `${nickOf(name)}!u@chat`;
}

function byteLength(text: string): number {
  return encoder.encode(text).length;
}

/**
 * Splits text into pieces of at most `budget` bytes, at character
 * boundaries, after splitting it into its lines.
 *
 * @param text The text.
 * @param budget Bytes per piece.
 * @returns The pieces (at least one).
 */
export function splitText(text: string, budget: number): string[] {
  const pieces: string[] = [];
  for (const line of text.replaceAll("\r\n", "\n").split(/[\n\r]/)) {
    // NUL cannot be sent, and a CTCP marker would make the text a request to the reader's client.
    const clean = line.replaceAll("\0", "").replaceAll("\x01", "");
    if (byteLength(clean) <= budget) {
      pieces.push(clean);
      continue;
    }
    let piece = "";
    let size = 0;
    for (const char of clean) {
      const bytes = char.length === 1 && char.charCodeAt(0) < 0x80 ? 1 : byteLength(char);
      if (size + bytes > budget && piece !== "") {
        pieces.push(piece);
        piece = "";
        size = 0;
      }
      piece += char;
      size += bytes;
    }
    pieces.push(piece);
  }
  return pieces;
}

/**
 * Text as one or more `PRIVMSG` (or `NOTICE`) lines, each within 512 bytes.
 *
 * @param source Who sends.
 * @param target The channel or nick.
 * @param text The text.
 * @param action Whether it is an action (CTCP ACTION).
 * @param tags The tag section (with `@` and the trailing space), or `""`.
 * @param command `PRIVMSG` or `NOTICE`.
 * @returns The lines.
 */
export function textLines(
  source: string,
  target: string,
  text: string,
  action: boolean,
  tags: string,
  command = "PRIVMSG",
): string[] {
  const head = ircLine(source, command, [target, ""], true);
  const budget = MAX_LINE_BYTES - 2 - byteLength(head) - (action ? 9 : 0);
  return splitText(text, budget).map((piece) =>
    tags + head + (action ? `\x01ACTION ${piece}\x01` : piece)
  );
}

/** A tag value, escaped. */
function escapeTag(value: string): string {
  return value.replace(
    /[;\s\\]/g,
    (char) =>
      char === ";"
        ? "\\:"
        : char === " "
        ? "\\s"
        : char === "\\"
        ? "\\\\"
        : char === "\r"
        ? "\\r"
        : "\\n",
  );
}

/**
 * The tag section for an event (with `@` and a trailing space), or `""`.
 *
 * @param variant Which tags the reader negotiated.
 * @param ts When the event happened.
 * @param id The message id, if any.
 * @returns The tags.
 */
export function tagsFor(variant: number, ts: string | undefined, id?: string): string {
  const tags: string[] = [];
  if ((variant & SERVER_TIME) !== 0 && ts !== undefined) tags.push(`time=${ts}`);
  if ((variant & MESSAGE_TAGS) !== 0 && id !== undefined) tags.push(`msgid=${escapeTag(id)}`);
  return tags.length === 0 ? "" : `@${tags.join(";")} `;
}

/** What an IRC client shows when someone leaves the chat, by reason. */
export const QUIT_MESSAGES: Readonly<Record<Exclude<LeaveReason, "part">, string>> = {
  quit: "Quit",
  lost: "Connection lost",
  timeout: "Ping timeout",
  kicked: "Kicked",
  banned: "Banned",
  send_queue_exceeded: "Disconnected: too many messages waiting to be read",
  flood: "Excess flood",
  protocol_error: "Protocol error",
};

function eventLines(
  frame: ServerFrame,
  variant: number,
  server: string = SERVER_NAME,
): readonly string[] | null {
  switch (frame.type) {
    case "message":
      return textLines(
        maskOf(frame.from),
        frame.room,
        frame.text,
        frame.action === true,
        tagsFor(variant, frame.ts, `${frame.room}/${frame.seq}`),
        frame.notice === true ? "NOTICE" : "PRIVMSG",
      );
    case "dm":
      return textLines(
        maskOf(frame.from),
        nickOf(frame.to),
        frame.text,
        frame.action === true,
        tagsFor(variant, frame.ts),
        frame.notice === true ? "NOTICE" : "PRIVMSG",
      );
    case "join": {
      const tags = tagsFor(variant, frame.ts);
      const join = tags + ircLine(maskOf(frame.name), "JOIN", [frame.room]);
      if (frame.op !== true) return [join];
      return [
        join,
        tags + ircLine(server, "MODE", [frame.room, "+o", nickOf(frame.name)]),
      ];
    }
    case "leave": {
      const tags = tagsFor(variant, frame.ts);
      if (frame.reason === "part") {
        const params = frame.message === undefined ? [frame.room] : [frame.room, frame.message];
        return [tags + ircLine(maskOf(frame.name), "PART", params, params.length > 1)];
      }
      if (frame.reason === "kicked") {
        const source = frame.by === undefined ? server : maskOf(frame.by);
        const why = frame.message ?? (frame.by === undefined ? "Kicked" : nickOf(frame.by));
        return [
          tags + ircLine(source, "KICK", [frame.room, nickOf(frame.name), why], true),
        ];
      }
      const why = frame.reason === "quit" && frame.message !== undefined
        ? `Quit: ${frame.message}`
        : QUIT_MESSAGES[frame.reason];
      return [tags + ircLine(maskOf(frame.name), "QUIT", [why], true)];
    }
    case "nick":
      return [
        tagsFor(variant, frame.ts) + ircLine(maskOf(frame.from), "NICK", [nickOf(frame.to)]),
      ];
    case "away":
      return [
        tagsFor(variant, frame.ts) +
        (frame.message === ""
          ? ircLine(maskOf(frame.name), "AWAY", [])
          : ircLine(maskOf(frame.name), "AWAY", [frame.message], true)),
      ];
    case "topic":
      return [
        tagsFor(variant, frame.ts) +
        ircLine(maskOf(frame.from), "TOPIC", [frame.room, frame.topic], true),
      ];
    case "bye":
      return [`ERROR :${frame.message.replace(LINE_BREAKS, " ")}`];
    case "offer":
      return [
        ircLine(
          server,
          "NOTICE",
          [
            frame.to.startsWith("#") ? frame.to : nickOf(frame.to),
            `${nickOf(frame.from)} offers the file "${
              [...frame.name].filter((char) => char >= " ").join("")
            }" (${frame.size} bytes); files need the chat client`,
          ],
          true,
        ),
      ];
    default:
      return null;
  }
}

/**
 * An event as IRC lines, the same for every reader that negotiated the same
 * tags; `null` for what an IRC client has no line for. Answers (`ack`,
 * `error`, `welcome`) are each connection's own business, not this.
 *
 * @param frame The event.
 * @param variant Which tags the reader negotiated ({@linkcode SERVER_TIME},
 * {@linkcode MESSAGE_TAGS}).
 * @param server The server's name, the source of the lines it sends itself
 * (a kick, a file offer); the door renders those for each reader.
 * @returns The bytes.
 */
export function ircEvent(
  frame: ServerFrame,
  variant: number,
  server: string = SERVER_NAME,
): Uint8Array | null {
  const lines = eventLines(frame, variant, server);
  return lines === null ? null : ircBytes(lines);
}

/**
 * {@linkcode ircEvent} as text, for laying many events into one buffer.
 *
 * @param frame The event.
 * @param variant Which tags the reader negotiated.
 * @returns The lines, each ended by CRLF; `""` when there are none.
 */
export function ircEventText(frame: ServerFrame, variant: number): string {
  const lines = eventLines(frame, variant, SERVER_NAME);
  return lines === null ? "" : lines.map((line) => line + "\r\n").join("");
}
