/**
 * The IRC door's replies: the core's answers (`welcome`, `ack`, `error`) as
 * the numerics and lines an IRC client expects, for the request each answers.
 *
 * @module
 */

import type { AckFrame, ErrorFrame, WelcomeFrame } from "../../protocol/frames.ts";
import { type Limits, MAX_NAME_LENGTH, MAX_ROOM_LENGTH } from "../../protocol/limits.ts";
import { ircLine, maskOf, MAX_LINE_BYTES, tagsFor, textLines } from "./irc_lines.ts";
import { nickOf } from "./irc_names.ts";

const TOPIC_LENGTH = 300;
const STARTED = new Date().toUTCString();

/** What a request was, so that its answer can be told in IRC's words. */
export type Pending =
  | { kind: "hello"; nick: string }
  | { kind: "join"; room: string }
  | { kind: "part"; room: string; reason?: string }
  | { kind: "topic"; room: string; set: boolean }
  | { kind: "names"; room: string }
  | { kind: "who"; mask: string }
  | { kind: "list"; only: Set<string> | undefined }
  | { kind: "elsewhere"; room: string }
  | { kind: "whois"; nick: string }
  | { kind: "say"; command: string; target: string; text: string; action: boolean }
  | { kind: "nick"; nick: string; old: string }
  | { kind: "kick"; room: string; nick: string }
  | { kind: "mode"; room: string; change: string }
  | { kind: "quit"; message: string }
  | { kind: "history"; target: string; batch: string }
  | { kind: "away" };

/** What an IRC user said in USER. */
export interface IrcUser {
  /** The ident (the user part of `nick!user@host`). */
  ident: string;
  /** The real name; `""` when none was given. */
  real: string;
}

/** Who reads an answer. */
export interface Reader {
  /** Their nick. */
  nick: string;
  /** The server's name, the source of its own lines. */
  server: string;
  /** Their chat name. */
  name: string;
  /** Whether they asked for their own messages back (`echo-message`). */
  echo: boolean;
  /** Whether they take batches (`batch`). */
  batch: boolean;
  /** The tags they negotiated. */
  variant: number;
  /** What the IRC user of a name said in USER, when that name is an IRC user's. */
  user(name: string): IrcUser | undefined;
}

const lineEncoder = new TextEncoder();

/**
 * A line cut to 512 bytes with its CR LF, on a character boundary (its text
 * loses its end).
 *
 * @param line The line.
 * @returns The line, or its start.
 */
export function capped(line: string): string {
  if (line.length <= (MAX_LINE_BYTES - 2) / 3) return line;
  const bytes = lineEncoder.encode(line);
  if (bytes.length <= MAX_LINE_BYTES - 2) return line;
  let end = MAX_LINE_BYTES - 2;
  // Back to the start of a character: continuation bytes are 10xxxxxx.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return new TextDecoder().decode(bytes.subarray(0, end));
}

/**
 * The welcome burst: 001 to 005, the MOTD, and the rooms the session is in.
 *
 * @param frame The `welcome`.
 * @param limits The limits in force (for ISUPPORT).
 * @param software The server's name and version.
 * @param historyPage Most messages in one history page.
 * @param server The server's name.
 * @returns The lines.
 */
export function welcomeLines(
  frame: WelcomeFrame,
  limits: Limits,
  software: string,
  historyPage: number,
  server: string,
): string[] {
  const nick = nickOf(frame.name);
  const n = (code: string, params: string[], text = true) =>
    ircLine(server, code, [nick, ...params], text);
  const support = [
    "CASEMAPPING=ascii",
    `CHANLIMIT=#:${limits.maxRoomsPerUser}`,
    "CHANMODES=,,,nt",
    `CHANNELLEN=${MAX_ROOM_LENGTH}`,
    "CHANTYPES=#",
    `CHATHISTORY=${historyPage}`,
    "MSGREFTYPES=msgid",
    "NETWORK=chat",
    `NICKLEN=${MAX_NAME_LENGTH}`,
    "PREFIX=(o)@",
    "SAFELIST",
    "TARGMAX=JOIN:,KICK:1,LIST:,NAMES:1,NOTICE:4,PART:,PRIVMSG:4,WHOIS:1",
    `TOPICLEN=${TOPIC_LENGTH}`,
    "UTF8ONLY",
  ];
  const lines = [
    n("001", [`Welcome to the chat network, ${nick}`]),
    n("002", [`Your host is ${server}, running version ${frame.server}`]),
    n("003", [`This server was created ${STARTED}`]),
    n("004", [server, frame.server, "i", "nt"], false),
    // At most 13 tokens a line, so that no line has more than 15 parameters.
    ...[support.slice(0, 13), support.slice(13)].filter((tokens) => tokens.length > 0).map((
      tokens,
    ) => n("005", [...tokens, "are supported by this server"])),
    ...motdLines(nick, software, server),
  ];
  for (const room of frame.rooms) {
    lines.push(...joinedLines(nick, frame.name, room.name, room.topic, room.members, server));
  }
  return lines;
}

/**
 * The message of the day.
 *
 * @param nick The reader's nick.
 * @param software The server's name and version.
 * @param server The server's name.
 * @returns The lines.
 */
export function motdLines(nick: string, software: string, server: string): string[] {
  const n = (code: string, text: string) => ircLine(server, code, [nick, text], true);
  return [
    n("375", `- ${server} Message of the day -`),
    n("372", `- This is a chat server (${software}); IRC is one of its doors.`),
    n("372", "- Everyone starts in #lobby. Rooms are channels: /join #name, /list."),
    n(
      "372",
      '- Names IRC cannot show appear encoded (小明 is "_|bhto6u"); /msg that nick to reach them.',
    ),
    n("376", "End of /MOTD command."),
  ];
}

/**
 * What a client sees on joining: its JOIN, the topic, the names.
 *
 * @param nick The reader's nick.
 * @param name The reader's name.
 * @param room The room.
 * @param topic Its topic.
 * @param names Its members.
 * @param server The server's name.
 * @param ops The room's operators among the names.
 * @returns The lines.
 */
export function joinedLines(
  nick: string,
  name: string,
  room: string,
  topic: string,
  names: string[],
  server: string,
  ops: readonly string[] = [],
): string[] {
  const lines = [ircLine(maskOf(name), "JOIN", [room])];
  if (topic !== "") lines.push(ircLine(server, "332", [nick, room, topic], true));
  lines.push(...namesLines(nick, room, names, server, ops));
  return lines;
}

/**
 * Lines for a request that succeeded.
 *
 * @param ack The answer.
 * @param pending What the request was.
 * @param reader Who reads it.
 * @returns The lines.
 */
export function ackLines(ack: AckFrame, pending: Pending, reader: Reader): string[] {
  const nick = reader.nick;
  const server = reader.server;
  const n = (code: string, params: string[], text = true) =>
    ircLine(server, code, [nick, ...params], text);
  const name = reader.name;
  switch (pending.kind) {
    case "hello":
      return [];
    case "join":
      return joinedLines(
        nick,
        name,
        ack.room ?? pending.room,
        ack.topic ?? "",
        ack.names ?? [],
        server,
        ack.ops,
      );
    case "part":
      return [
        pending.reason === undefined
          ? ircLine(maskOf(name), "PART", [pending.room])
          : ircLine(maskOf(name), "PART", [pending.room, pending.reason], true),
      ];
    case "topic":
      if (pending.set) {
        return [ircLine(maskOf(name), "TOPIC", [pending.room, ack.topic ?? ""], true)];
      }
      return ack.topic
        ? [n("332", [pending.room, ack.topic])]
        : [n("331", [pending.room, "No topic is set"])];
    case "names":
      return namesLines(nick, pending.room, ack.names ?? [], server, ack.ops);
    case "who": {
      // A room's members, or the one user a nick names (answered by a whois).
      const away = ack.awayMessages ??
        (ack.away !== undefined && ack.name !== undefined ? { [ack.name]: ack.away } : {});
      const ops = new Set(ack.ops);
      return [
        ...(ack.names ?? (ack.online === true && ack.name !== undefined ? [ack.name] : [])).map((
          member,
        ) => {
          const user = reader.user(member);
          return capped(n("352", [
            pending.mask.startsWith("#") ? pending.mask : "*",
            user?.ident ?? "u",
            "chat",
            server,
            nickOf(member),
            (Object.hasOwn(away, member) ? "G" : "H") + (ops.has(member) ? "@" : ""),
            `0 ${user === undefined || user.real === "" ? member : user.real}`,
          ]));
        }),
        n("315", [pending.mask, "End of WHO list"]),
      ];
    }
    case "list":
      return [
        n("321", ["Channel", "Users  Name"]),
        ...(ack.rooms ?? []).filter((room) =>
          pending.only === undefined || pending.only.has(room.name)
        ).map((room) => n("322", [room.name, String(room.members), room.topic])),
        n("323", ["End of /LIST"]),
      ];
    case "elsewhere":
      return (ack.rooms ?? []).some((room) => room.name === pending.room)
        ? [n("442", [pending.room, "You're not on that channel"])]
        : [n("403", [pending.room, "No such channel"])];
    case "whois": {
      const target = nickOf(ack.name ?? pending.nick);
      if (ack.online !== true) {
        return [
          n("401", [pending.nick, "No such nick"]),
          n("318", [pending.nick, "End of /WHOIS list"]),
        ];
      }
      const user = reader.user(ack.name ?? target);
      const lines = [
        capped(n("311", [
          target,
          user?.ident ?? "u",
          "chat",
          "*",
          user === undefined || user.real === "" ? ack.name ?? target : user.real,
        ])),
        n("312", [target, server, "chat"]),
      ];
      if (ack.away !== undefined) lines.push(capped(n("301", [target, ack.away])));
      if (ack.op === true) lines.push(n("313", [target, "is an operator"]));
      if (ack.fingerprint !== undefined) {
        lines.push(n("276", [target, `has key fingerprint ${ack.fingerprint}`]));
      }
      lines.push(n("318", [target, "End of /WHOIS list"]));
      return lines;
    }
    case "say": {
      // Writing to someone away gets IRC's automatic reply; a NOTICE is never answered.
      const away = ack.away !== undefined && ack.to !== undefined && pending.command !== "NOTICE"
        ? [capped(n("301", [nickOf(ack.to), ack.away]))]
        : [];
      if (!reader.echo) return away;
      const target = ack.to !== undefined ? nickOf(ack.to) : pending.target;
      const id = ack.room !== undefined && ack.seq !== undefined
        ? `${ack.room}/${ack.seq}`
        : undefined;
      return [
        ...textLines(
          maskOf(name),
          target,
          pending.text,
          pending.action,
          tagsFor(reader.variant, ack.ts, id),
          pending.command,
        ),
        ...away,
      ];
    }
    case "nick":
      // The new name is the session's now; the old one was the nick the client knew.
      return [ircLine(`${pending.old}!u@chat`, "NICK", [nickOf(ack.name ?? name)])];
    case "kick":
      return [];
    case "mode":
      // A change is told to whoever made it; a question gets the modes.
      if (pending.change !== "") {
        return [ircLine(maskOf(name), "MODE", [pending.room, pending.change])];
      }
      return [n("324", [pending.room, ack.topicLock === true ? "+nt" : "+n"], false)];
    case "away":
      return ack.away === undefined || ack.away === ""
        ? [n("305", ["You are no longer marked as being away"])]
        : [n("306", ["You have been marked as being away"])];
    case "history": {
      const open = reader.batch
        ? [ircLine(server, "BATCH", [`+${pending.batch}`, "chathistory", pending.target])]
        : [];
      const close = reader.batch ? [ircLine(server, "BATCH", [`-${pending.batch}`])] : [];
      const lines = (ack.messages ?? []).flatMap((message) => {
        const tags = tagsFor(reader.variant, message.ts, `${message.room}/${message.seq}`);
        const batched = !reader.batch
          ? tags
          : tags === ""
          ? `@batch=${pending.batch} `
          : `@batch=${pending.batch};${tags.slice(1)}`;
        return textLines(
          maskOf(message.from),
          message.room,
          message.text,
          message.action === true,
          batched,
        );
      });
      return [...open, ...lines, ...close];
    }
    case "quit":
      return [
        `ERROR :Closing link (${pending.message === "" ? "Quit" : `Quit: ${pending.message}`})`,
      ];
  }
}

/**
 * Lines for a request that was refused.
 *
 * @param error The answer.
 * @param pending What the request was.
 * @param nick The reader's nick.
 * @param server The server's name.
 * @returns The lines.
 */
export function refusalLines(
  error: ErrorFrame,
  pending: Pending,
  nick: string,
  server: string,
): string[] {
  const n = (code: string, ...params: string[]) => ircLine(server, code, [nick, ...params], true);
  const code = error.code;
  const message = error.message;
  // A NOTICE is never answered, not even by a refusal (RFC 2812, section 3.3.2).
  if (pending.kind === "say" && pending.command === "NOTICE") return [];
  switch (pending.kind) {
    case "hello": {
      // Not registered: the client has no nick yet.
      const early = (code: string, ...params: string[]) =>
        ircLine(server, code, ["*", ...params], true);
      if (code === "name_taken" || code === "name_claimed") {
        return [early("433", pending.nick, message)];
      }
      if (code === "invalid_name") return [early("432", pending.nick, message)];
      if (code === "unauthorized") return [early("464", message)];
      if (code === "banned") return [early("465", message)];
      return [early("NOTICE", message)];
    }
    case "nick":
      if (code === "name_taken" || code === "name_claimed") {
        return [n("433", pending.nick, message)];
      }
      if (code === "invalid_name" || code === "banned") {
        return [n("432", pending.nick, message)];
      }
      break;
    case "join":
      if (code === "invalid_room") return [n("403", pending.room, message)];
      if (code === "too_many_rooms") return [n("405", pending.room, message)];
      break;
    case "part":
    case "topic":
    case "names":
      if (code === "not_in_room") {
        if (pending.kind === "names") return namesLines(nick, pending.room, [], server);
        return [n("442", pending.room, "You're not on that channel")];
      }
      if (code === "invalid_room") return [n("403", pending.room, "No such channel")];
      if (code === "muted") return [n("482", pending.room, message)];
      if (code === "not_operator") return [n("482", pending.room, "You're not channel operator")];
      break;
    case "who":
      return [n("315", pending.mask, "End of WHO list")];
    case "whois":
      if (code === "no_such_user") {
        return [
          n("401", pending.nick, "No such nick"),
          n("318", pending.nick, "End of /WHOIS list"),
        ];
      }
      break;
    case "say":
      if (code === "no_such_user") return [n("401", pending.target, "No such nick")];
      if (code === "not_in_room" || code === "muted") {
        return [n("404", pending.target, message)];
      }
      if (code === "invalid_room") return [n("403", pending.target, "No such channel")];
      if (code === "invalid_text" && message === "Message is empty") {
        return [n("412", "No text to send")];
      }
      break;
    case "history":
      return [
        ircLine(
          server,
          "FAIL",
          [
            "CHATHISTORY",
            code === "not_in_room" ? "INVALID_TARGET" : "MESSAGE_ERROR",
            pending.target,
            message,
          ],
          true,
        ),
      ];
    case "kick":
    case "mode":
      if (code === "not_operator") return [n("482", pending.room, "You're not channel operator")];
      if (code === "not_in_room") return [n("442", pending.room, "You're not on that channel")];
      if (code === "invalid_room") return [n("403", pending.room, "No such channel")];
      if (pending.kind === "kick" && code === "no_such_user") {
        return [n("441", pending.nick, pending.room, "They aren't on that channel")];
      }
      break;
  }
  return [ircLine(server, "NOTICE", [nick, message], true)];
}

/**
 * 353 lines (as many as the names need) and 366.
 *
 * @param nick The reader's nick.
 * @param room The room.
 * @param names Its members.
 * @param server The server's name.
 * @param ops The room's operators among the names (shown with `@`).
 * @returns The lines.
 */
export function namesLines(
  nick: string,
  room: string,
  names: string[],
  server: string,
  ops: readonly string[] = [],
): string[] {
  const lines: string[] = [];
  const head = ircLine(server, "353", [nick, "=", room, ""], true);
  const operators = new Set(ops);
  let list = "";
  for (const name of names) {
    const shown = (operators.has(name) ? "@" : "") + nickOf(name);
    if (list !== "" && head.length + list.length + shown.length + 1 > MAX_LINE_BYTES - 2) {
      lines.push(head + list);
      list = "";
    }
    list += list === "" ? shown : ` ${shown}`;
  }
  if (list !== "") lines.push(head + list);
  lines.push(ircLine(server, "366", [nick, room, "End of /NAMES list"], true));
  return lines;
}
