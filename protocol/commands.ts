/**
 * The slash commands people type, parsed the same way by the terminal client
 * and by the server for plain-text (`nc`) users.
 *
 * @module
 */

/** What one typed line asks for. */
export type Command =
  | { kind: "say"; text: string }
  | { kind: "me"; text: string }
  | { kind: "msg"; to: string; text: string }
  | { kind: "nick"; name: string }
  | { kind: "who"; room?: string }
  | { kind: "join"; room: string }
  | { kind: "leave"; room?: string; reason?: string }
  | { kind: "switch"; room: string }
  | { kind: "rooms" }
  | { kind: "topic"; text?: string }
  | { kind: "whois"; name: string }
  | { kind: "away"; message: string }
  | { kind: "send"; to: string; path: string }
  | { kind: "accept"; id: string; dir?: string }
  | { kind: "decline"; id: string }
  | { kind: "cancel"; id: string }
  | { kind: "kick"; name: string; reason?: string; room?: string }
  | { kind: "ban"; target: string; duration?: number; reason?: string }
  | { kind: "unban"; target: string }
  | { kind: "mute"; name: string; duration?: number; reason?: string }
  | { kind: "help" }
  | { kind: "clear" }
  | { kind: "history"; room?: string; count?: number }
  | { kind: "window"; index?: number }
  | { kind: "close" }
  | { kind: "set"; name?: string; value?: string }
  | { kind: "find"; text?: string }
  | { kind: "ignore"; name?: string }
  | { kind: "unignore"; name: string }
  | { kind: "quit"; reason?: string }
  | { kind: "usage"; message: string }
  | { kind: "unknown"; name: string };

/** One command: how to type it and what it does. */
export interface CommandHelp {
  usage: string;
  summary: string;
}

/** Every command, for `/help`. */
export const COMMANDS: readonly CommandHelp[] = [
  { usage: "/msg NAME TEXT", summary: "send a private message to NAME" },
  { usage: "/me ACTION", summary: "describe what you are doing (* alice waves)" },
  { usage: "/nick NEW", summary: "change your name" },
  { usage: "/who [#ROOM]", summary: "list who is in the room" },
  { usage: "/join #ROOM", summary: "enter a room (created if new) and type into it" },
  {
    usage: "/leave [#ROOM] [REASON]",
    summary: "leave a room (the current one by default); the others see REASON",
  },
  { usage: "/room #ROOM", summary: "type into another room you are in" },
  { usage: "/rooms", summary: "list the rooms, with member counts and topics" },
  { usage: "/topic [TEXT]", summary: "show or set the current room's topic" },
  { usage: "/whois NAME", summary: "show whether NAME is online and the key it belongs to" },
  { usage: "/away [MESSAGE]", summary: "say you are away (others see MESSAGE); /back undoes it" },
  { usage: "/send NAME|#ROOM PATH", summary: "offer a file (chat client only)" },
  { usage: "/accept ID [DIR]", summary: "accept a file offer, saving it in DIR or your downloads" },
  { usage: "/decline ID", summary: "decline a file offer" },
  { usage: "/cancel ID", summary: "stop a file transfer, sending or receiving" },
  { usage: "/kick NAME [REASON]", summary: "operators: disconnect NAME" },
  {
    usage: "/kick #ROOM NAME [REASON]",
    summary: "a room's operators (its creator): remove NAME from the room",
  },
  {
    usage: "/ban TARGET [TIME] [REASON]",
    summary: "operators: ban a NAME, key:FINGERPRINT or ip:ADDRESS (TIME: 30m, 2h, 7d)",
  },
  { usage: "/unban TARGET", summary: "operators: lift a ban" },
  {
    usage: "/mute NAME [TIME] [REASON]",
    summary: "operators: stop NAME from sending (/unmute NAME to undo)",
  },
  { usage: "/help", summary: "show this list" },
  { usage: "/clear", summary: "clear your screen (chat client only)" },
  {
    usage: "/history [#ROOM] [N]",
    summary: "show the last N messages of a room (50; chat client only)",
  },
  {
    usage: "/find [TEXT]",
    summary: "search the room's history (again: older ones; chat client only)",
  },
  { usage: "/window [N]", summary: "show window N, or list them (Alt-1…9; chat client only)" },
  { usage: "/close", summary: "leave the room or close the private window (chat client only)" },
  {
    usage: "/ignore [NAME]",
    summary: "hide everything NAME says (/unignore NAME to undo; chat client only)",
  },
  {
    usage: "/set [NAME [VALUE]]",
    summary: "show or change a setting: smart_filter on|off (chat client only)",
  },
  { usage: "/quit [REASON]", summary: "leave the chat; the others see REASON" },
];

/**
 * The help text: one line per command. `//text` sends a line that starts
 * with `/`.
 *
 * @returns The lines of the help text.
 */
export function helpLines(): string[] {
  const width = Math.max(...COMMANDS.map((command) => command.usage.length));
  return [
    "Commands:",
    ...COMMANDS.map((command) => `  ${command.usage.padEnd(width)}  ${command.summary}`),
    `  ${"//TEXT".padEnd(width)}  send a message that starts with "/"`,
  ];
}

const WORD = /^(\S+)\s*([\s\S]*)$/;

const DURATION = /^(\d+)([smhdw])$/;
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/**
 * Reads a duration such as `30s`, `10m`, `2h`, `7d` or `1w`.
 *
 * @param text The duration.
 * @returns Seconds, or `undefined` when it is not a duration.
 */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text);
  return match ? Number(match[1]) * UNIT_SECONDS[match[2]!]! : undefined;
}

/** `TARGET [TIME] [REASON...]` */
function sanction(
  args: string,
): { target: string; duration?: number; reason?: string } | undefined {
  const [target, ...rest] = args.split(/\s+/);
  if (!target) return undefined;
  const duration = rest.length > 0 ? parseDuration(rest[0]!) : undefined;
  if (duration !== undefined) rest.shift();
  const reason = rest.join(" ");
  return { target, ...(duration !== undefined ? { duration } : {}), ...(reason ? { reason } : {}) };
}

/**
 * `dev` and `#dev` both name the room `#dev`.
 *
 * @param text A room name, with or without its `#`.
 * @returns The name with its `#`.
 */
export function roomName(text: string): string {
  return text.startsWith("#") ? text : `#${text}`;
}

/**
 * Parses one typed line. Lines that do not start with `/` are messages; a
 * leading `//` sends a message that starts with `/`.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { parseCommand } from "./commands.ts";
 *
 * deepEqual(parseCommand("/msg bob hi there"), { kind: "msg", to: "bob", text: "hi there" });
 * deepEqual(parseCommand("hello"), { kind: "say", text: "hello" });
 * ```
 *
 * @param line The typed line, without its newline.
 * @returns What the line asks for.
 */
export function parseCommand(line: string): Command {
  if (!line.startsWith("/")) return { kind: "say", text: line };
  if (line.startsWith("//")) return { kind: "say", text: line.slice(1) };
  const [, word, rest] = WORD.exec(line.slice(1)) ?? [, "", ""];
  const name = word!.toLowerCase();
  const args = rest!.trim();
  switch (name) {
    case "msg":
    case "m":
    case "w": {
      const match = WORD.exec(args);
      if (!match || match[2]!.trim() === "") {
        return { kind: "usage", message: "Usage: /msg NAME TEXT" };
      }
      return { kind: "msg", to: match[1]!, text: match[2]! };
    }
    case "me":
      if (args === "") return { kind: "usage", message: "Usage: /me ACTION" };
      return { kind: "me", text: rest! };
    case "nick":
      if (args === "" || /\s/.test(args)) return { kind: "usage", message: "Usage: /nick NEW" };
      return { kind: "nick", name: args };
    case "who":
    case "names":
      return args === "" ? { kind: "who" } : { kind: "who", room: roomName(args) };
    case "join":
    case "j":
      if (args === "" || /\s/.test(args)) return { kind: "usage", message: "Usage: /join #ROOM" };
      return { kind: "join", room: roomName(args) };
    case "leave":
    case "part": {
      // One word is the room; after a #ROOM, or without one, the rest is the reason.
      if (args === "") return { kind: "leave" };
      const [, first, after] = WORD.exec(args)!;
      const reason = after!.trim();
      if (reason === "") return { kind: "leave", room: roomName(first!) };
      return first!.startsWith("#")
        ? { kind: "leave", room: first, reason }
        : { kind: "leave", reason: args };
    }
    case "room":
    case "switch":
      if (args === "" || /\s/.test(args)) return { kind: "usage", message: "Usage: /room #ROOM" };
      return { kind: "switch", room: roomName(args) };
    case "rooms":
    case "list":
      return { kind: "rooms" };
    case "topic":
      return args === "" ? { kind: "topic" } : { kind: "topic", text: args };
    case "send": {
      const match = WORD.exec(args);
      if (!match || match[2]!.trim() === "") {
        return { kind: "usage", message: "Usage: /send NAME|#ROOM PATH" };
      }
      return {
        kind: "send",
        to: match[1]!,
        path: match[2]!.trim().replace(/^(["'])(.*)\1$/, "$2"),
      };
    }
    case "accept": {
      const match = WORD.exec(args);
      if (!match) return { kind: "usage", message: "Usage: /accept ID [DIR]" };
      const dir = match[2]!.trim();
      return dir ? { kind: "accept", id: match[1]!, dir } : { kind: "accept", id: match[1]! };
    }
    case "decline":
    case "cancel":
      if (args === "" || /\s/.test(args)) return { kind: "usage", message: `Usage: /${name} ID` };
      return { kind: name, id: args };
    case "away":
      return { kind: "away", message: args === "" ? "away" : args };
    case "back":
      return { kind: "away", message: "" };
    case "whois":
      if (args === "" || /\s/.test(args)) return { kind: "usage", message: "Usage: /whois NAME" };
      return { kind: "whois", name: args };
    case "kick": {
      // "/kick #ROOM NAME": out of that room (its operators may); "/kick NAME": off the server.
      const inRoom = /^(#\S+)\s+([\s\S]*)$/.exec(args);
      const match = WORD.exec(inRoom === null ? args : inRoom[2]!);
      if (!match) return { kind: "usage", message: "Usage: /kick [#ROOM] NAME [REASON]" };
      const command: Command = { kind: "kick", name: match[1]! };
      if (match[2]!.trim()) command.reason = match[2]!.trim();
      if (inRoom !== null) command.room = inRoom[1]!;
      return command;
    }
    case "ban": {
      const parsed = sanction(args);
      if (!parsed) {
        return {
          kind: "usage",
          message: "Usage: /ban NAME|key:FINGERPRINT|ip:ADDRESS [TIME] [REASON]",
        };
      }
      return { kind: "ban", ...parsed };
    }
    case "unban":
      if (args === "" || /\s/.test(args)) return { kind: "usage", message: "Usage: /unban TARGET" };
      return { kind: "unban", target: args };
    case "mute": {
      const parsed = sanction(args);
      if (!parsed) return { kind: "usage", message: "Usage: /mute NAME [TIME] [REASON]" };
      const { target, ...rest } = parsed;
      return { kind: "mute", name: target, ...rest };
    }
    case "unmute":
      if (args === "" || /\s/.test(args)) return { kind: "usage", message: "Usage: /unmute NAME" };
      return { kind: "mute", name: args, duration: 0 };
    case "help":
    case "?":
      return { kind: "help" };
    case "clear":
      return { kind: "clear" };
    case "history": {
      const match = /^(#\S+)?\s*(\d+)?$/.exec(args);
      if (match === null) return { kind: "usage", message: "Usage: /history [#ROOM] [N]" };
      const command: Command = { kind: "history" };
      if (match[1] !== undefined) command.room = match[1];
      if (match[2] !== undefined) command.count = Number(match[2]);
      return command;
    }
    case "window":
    case "win":
      if (args === "") return { kind: "window" };
      if (!/^[1-9]\d{0,2}$/.test(args)) return { kind: "usage", message: "Usage: /window [N]" };
      return { kind: "window", index: Number(args) };
    case "close":
    case "wc":
      return { kind: "close" };
    case "find":
      return args === "" ? { kind: "find" } : { kind: "find", text: args };
    case "ignore":
      if (/\s/.test(args)) return { kind: "usage", message: "Usage: /ignore [NAME]" };
      return args === "" ? { kind: "ignore" } : { kind: "ignore", name: args };
    case "unignore":
      if (args === "" || /\s/.test(args)) {
        return { kind: "usage", message: "Usage: /unignore NAME" };
      }
      return { kind: "unignore", name: args };
    case "set": {
      const words = args === "" ? [] : args.split(/\s+/);
      if (words.length > 2) return { kind: "usage", message: "Usage: /set [NAME [VALUE]]" };
      const command: Command = { kind: "set" };
      if (words[0] !== undefined) command.name = words[0].toLowerCase();
      if (words[1] !== undefined) command.value = words[1].toLowerCase();
      return command;
    }
    case "quit":
    case "exit":
    case "q":
      return args === "" ? { kind: "quit" } : { kind: "quit", reason: args };
    default:
      return { kind: "unknown", name: word! };
  }
}
