/**
 * The IRC dialect: irssi, WeeChat, HexChat, bouncers and bots join the same
 * rooms as everyone else. IRC commands become the typed requests of
 * `protocol/frames.ts`; the core's answers and events become IRC lines
 * (PROTOCOL.md, section 20). Commands are a table, as in ergo's
 * `commands.go`: each entry says how many parameters it needs and whether it
 * may come before registration, and those rules are applied in one place.
 *
 * @module
 */

import type {
  AckFrame,
  ClientFrame,
  ErrorFrame,
  LeaveReason,
  RequestId,
} from "../../protocol/frames.ts";
import { MAX_REASON_LENGTH, MAX_ROOM_LENGTH, PROTOCOL_VERSION } from "../../protocol/limits.ts";
import { type DecodedLine, LineDecoder } from "../../protocol/line_decoder.ts";
import { checkName, nameKey } from "../../protocol/names.ts";
import type { Outbound, OutboundRun, Session, ViewSink } from "../core.ts";
import type { Dialect, DialectHost } from "./dialect.ts";
import {
  ircBytes,
  ircEvent,
  ircLine,
  type IrcMessage,
  MAX_CLIENT_TAG_BYTES,
  MAX_LINE_BYTES,
  MAX_TAG_BYTES,
  MESSAGE_TAGS,
  parseIrc,
  SERVER_NAME,
  SERVER_TIME,
} from "./irc_lines.ts";
import { isChannel, nameOf, nickOf } from "./irc_names.ts";
import {
  ackLines,
  capped,
  type IrcUser,
  motdLines,
  namesLines,
  type Pending,
  type Reader,
  refusalLines,
  welcomeLines,
} from "./irc_replies.ts";

/** The capabilities offered, by name, with the tag bit each one sets. */
const CAPABILITIES: ReadonlyMap<string, number> = new Map([
  ["away-notify", 0],
  ["batch", 0],
  ["draft/chathistory", 0],
  ["echo-message", 0],
  ["message-tags", MESSAGE_TAGS],
  ["server-time", SERVER_TIME],
]);
const encoder = new TextEncoder();
/** Most characters of a USER ident kept (`A-Z a-z 0-9 . _ ~ -`; the others are dropped). */
const MAX_IDENT_LENGTH = 16;
/** Most code points of a USER real name kept (the rest is cut off). */
const MAX_REAL_NAME_LENGTH = 100;

/** An IRC user's USER words, with the session they belong to. */
interface Introduced extends IrcUser {
  session: Session;
}

/**
 * The USER words of the IRC users of each core, by name key. An entry counts
 * while its session is there and still has that name; the others are swept
 * out as the map grows.
 */
class Introductions {
  #users = new Map<string, Introduced>();
  #sweepAt = 64;

  /** Remembers what a session's user said in USER, under its name now. */
  set(session: Session, user: IrcUser): void {
    if (session.name === undefined) return;
    if (this.#users.size >= this.#sweepAt) {
      for (const [key, entry] of this.#users) if (!this.#live(key, entry)) this.#users.delete(key);
      this.#sweepAt = Math.max(64, this.#users.size * 2);
    }
    this.#users.set(nameKey(session.name), { ...user, session });
  }

  /** What the IRC user of that name said in USER, if it is one. */
  get(name: string): IrcUser | undefined {
    const key = nameKey(name);
    const entry = this.#users.get(key);
    return entry !== undefined && this.#live(key, entry) ? entry : undefined;
  }

  #live(key: string, entry: Introduced): boolean {
    const name = entry.session.name;
    return !entry.session.gone && name !== undefined && nameKey(name) === key;
  }
}

const introductions = new WeakMap<object, Introductions>();

/** The ident an IRC client gave, made safe to show, or `u`. */
function identOf(ident: string): string {
  return ident.replace(/[^A-Za-z0-9._~-]/g, "").slice(0, MAX_IDENT_LENGTH) || "u";
}

/** The real name an IRC client gave, cut to length. */
function realNameOf(real: string): string {
  return [...real.trim()].slice(0, MAX_REAL_NAME_LENGTH).join("").trim();
}

/** One entry of the command table. */
interface IrcCommand {
  /** Handles the command once the rules let it through. */
  run(dialect: IrcDialect, message: IrcMessage): Promise<void> | void;
  /** Parameters it needs at least. */
  params?: number;
  /** Usable before registration. */
  early?: boolean;
  /** Which parameter names channels (a list, comma-separated), if one does. */
  channels?: number;
}

/**
 * The commands, as a table (the rules, parameter counts and registration,
 * are checked once, in {@linkcode IrcDialect.line}).
 */
const COMMANDS: Record<string, IrcCommand> = {
  CAP: { run: (dialect, message) => dialect.cap(message), params: 1, early: true },
  PASS: { run: (dialect, message) => dialect.pass(message), params: 1, early: true },
  NICK: { run: (dialect, message) => dialect.nickCommand(message), early: true },
  USER: { run: (dialect, message) => dialect.user(message), params: 4, early: true },
  PING: { run: (dialect, message) => dialect.pingCommand(message), early: true },
  PONG: { run: () => undefined, early: true },
  QUIT: { run: (dialect, message) => dialect.quit(message), early: true },
  AUTHENTICATE: { run: (dialect) => dialect.authenticate(), early: true },
  JOIN: { run: (dialect, message) => dialect.join(message), params: 1, channels: 0 },
  PART: { run: (dialect, message) => dialect.part(message), params: 1, channels: 0 },
  PRIVMSG: { run: (dialect, message) => dialect.privmsg(message), channels: 0 },
  NOTICE: { run: (dialect, message) => dialect.privmsg(message), channels: 0 },
  TOPIC: { run: (dialect, message) => dialect.topic(message), params: 1, channels: 0 },
  NAMES: { run: (dialect, message) => dialect.names(message), channels: 0 },
  LIST: { run: (dialect, message) => dialect.list(message) },
  WHO: { run: (dialect, message) => dialect.who(message), channels: 0 },
  WHOIS: { run: (dialect, message) => dialect.whois(message), params: 1 },
  WHOWAS: { run: (dialect, message) => dialect.whowas(message), params: 1 },
  CHATHISTORY: {
    run: (dialect, message) => dialect.chathistory(message),
    params: 4,
    channels: 1,
  },
  MODE: { run: (dialect, message) => dialect.mode(message), params: 1, channels: 0 },
  KICK: { run: (dialect, message) => dialect.kick(message), params: 2, channels: 0 },
  MOTD: {
    run: (dialect) => dialect.send(...motdLines(dialect.nick, dialect.software, dialect.server)),
  },
  VERSION: { run: (dialect) => dialect.reply("351", dialect.software, dialect.server, "chat") },
  TIME: { run: (dialect) => dialect.reply("391", dialect.server, new Date().toUTCString()) },
  AWAY: { run: (dialect, message) => dialect.away(message) },
  OPER: { run: (dialect) => dialect.oper(), params: 2 },
  TAGMSG: { run: () => undefined },
};

/** The `PING` of each server name, made once rather than for every connection. */
const pings = new Map<string, Uint8Array>();

function pingFor(server: string): Uint8Array {
  let ping = pings.get(server);
  if (ping === undefined) pings.set(server, ping = ircBytes([`PING :${server}`]));
  return ping;
}

/** IRC lines over a connection. */
export class IrcDialect implements Dialect {
  readonly decoder: LineDecoder;
  readonly files = false;
  readonly ping: Uint8Array;
  #host: DialectHost;
  /** The server's name and version. */
  readonly software: string;
  /** The server's name, the source of its own lines. */
  readonly server: string;
  /** Most messages in one history page. */
  readonly historyPage: number;
  #batches = 0;
  #nextId = 0;
  #pending: Map<RequestId, Pending> | undefined;
  /** Capabilities negotiated. */
  #caps: Set<string> | undefined;
  /** The tags this reader negotiated, as the bits of `Outbound.irc()`. */
  #variant = 0;
  /** Registration waits for `CAP END` while capabilities are being negotiated. */
  #negotiating = false;
  #password: string | undefined;
  #nick: string | undefined;
  #user = false;
  /** What the client said in USER: its ident and real name. */
  #introduced: IrcUser = { ident: "u", real: "" };
  #registering = false;
  /** Events for rooms being joined, held until the join is answered (history first). */
  #joining: Map<string, Uint8Array[]> | undefined;
  /** The last quit told, so someone leaving several shared rooms quits once. */
  #lastQuit = "";

  /**
   * Speaks IRC over a connection.
   *
   * @param host The connection.
   * @param software The server's name and version, for 002 and 004.
   * @param historyPage Most messages in one history page.
   * @param server The server's name, the source of its own lines.
   */
  constructor(
    host: DialectHost,
    software: string,
    historyPage = 200,
    server: string = SERVER_NAME,
  ) {
    this.#host = host;
    this.software = software;
    this.historyPage = historyPage;
    this.server = server;
    this.ping = pingFor(server);
    this.decoder = new LineDecoder({ maxBytes: MAX_TAG_BYTES + MAX_LINE_BYTES });
  }

  /** The client's nick, or `*` before it has one. */
  get nick(): string {
    const name = this.#host.session.name;
    return name === undefined ? (this.#nick ?? "*") : nickOf(name);
  }

  /** A numeric reply to this client. */
  numeric(code: string, params: string[], text = true): string {
    return ircLine(this.server, code, [this.nick, ...params], text);
  }

  /** Sends lines. */
  send(...lines: string[]): void {
    this.#host.write(ircBytes(lines));
  }

  /** Sends a numeric reply. */
  reply(code: string, ...params: string[]): void {
    this.send(this.numeric(code, params));
  }

  /** Sends a numeric that refuses something, unless refusals are held back. */
  refuse(code: string, ...params: string[]): void {
    this.#host.refuse(ircBytes([this.numeric(code, params)]));
  }

  /** Hands a request to the core, remembering how to tell its answer. */
  request(
    frame: ClientFrame & { id: RequestId },
    pending: Pending,
  ): Promise<void> | undefined {
    (this.#pending ??= new Map()).set(frame.id, pending);
    return this.#host.core.receive(this.#host.session, frame);
  }

  /** A new request id. */
  id(): number {
    return ++this.#nextId;
  }

  /** The session. */
  get session(): Session {
    return this.#host.session;
  }

  /** The connection. */
  get host(): DialectHost {
    return this.#host;
  }

  line(line: DecodedLine): Promise<void> | undefined {
    if (!line.ok) {
      if (line.code === "bad_utf8") {
        this.#host.refuse(ircBytes([
          ircLine(this.server, "FAIL", ["*", "INVALID_UTF8", "Line is not valid UTF-8"], true),
        ]));
      } else this.refuse("417", "Input line was too long");
      return;
    }
    const text = line.text;
    if (text.length > (MAX_LINE_BYTES - 2) / 3 && tooLong(text)) {
      this.refuse("417", "Input line was too long");
      return;
    }
    const message = parseIrc(text);
    if (message === undefined) return;
    const command = Object.hasOwn(COMMANDS, message.command)
      ? COMMANDS[message.command]
      : undefined;
    if (command === undefined) {
      this.refuse("421", message.command.slice(0, 32).replace(/[^!-~]/g, "?"), "Unknown command");
      return;
    }
    if (command.early !== true && this.#host.session.name === undefined) {
      this.refuse("451", "You have not registered");
      return;
    }
    if (message.params.length < (command.params ?? 0)) {
      this.refuse("461", message.command, "Not enough parameters");
      return;
    }
    const at = command.channels;
    if (at !== undefined && message.params[at] !== undefined) {
      message.params[at] = this.#channels(message.params[at]!);
    }
    return command.run(this, message) ?? undefined;
  }

  /**
   * Channel names as the rooms spell them: IRC compares channel names with
   * ASCII letters in either case (`CASEMAPPING=ascii`), rooms exactly, so
   * `#Dev` names the room `#dev` when that is the one people are in.
   */
  #channels(list: string): string {
    if (!list.includes("#")) return list;
    return list.split(",").map((name) =>
      name.startsWith("#") ? this.#host.core.roomNamed(name) ?? name : name
    ).join(",");
  }

  // Registration.

  /** Handles `CAP`. */
  cap(message: IrcMessage): Promise<void> | undefined {
    const [sub = "", arg = ""] = message.params;
    switch (sub.toUpperCase()) {
      case "LS":
        if (this.session.name === undefined) this.#negotiating = true;
        this.send(
          ircLine(this.server, "CAP", [this.nick, "LS", [...CAPABILITIES.keys()].join(" ")], true),
        );
        return;
      case "LIST":
        this.send(
          ircLine(this.server, "CAP", [this.nick, "LIST", [...(this.#caps ?? [])].join(" ")], true),
        );
        return;
      case "REQ": {
        if (this.session.name === undefined) this.#negotiating = true;
        const asked = arg.split(" ").filter((cap) => cap !== "");
        const known = asked.every((cap) => CAPABILITIES.has(cap.replace(/^-/, "")));
        if (!known || asked.length === 0) {
          this.send(ircLine(this.server, "CAP", [this.nick, "NAK", arg], true));
          return;
        }
        for (const cap of asked) {
          if (cap.startsWith("-")) this.#caps?.delete(cap.slice(1));
          else (this.#caps ??= new Set()).add(cap);
        }
        this.#variant = 0;
        for (const cap of this.#caps ?? []) this.#variant |= CAPABILITIES.get(cap) ?? 0;
        this.send(ircLine(this.server, "CAP", [this.nick, "ACK", arg], true));
        return;
      }
      case "END":
        this.#negotiating = false;
        return this.register();
      default:
        this.refuse("410", sub, "Invalid CAP command");
        return;
    }
  }

  /** Handles `PASS`. */
  pass(message: IrcMessage): void {
    if (this.session.name !== undefined) return this.refuse("462", "You may not reregister");
    this.#password = message.params[0];
  }

  /** Handles `NICK`, before and after registration. */
  nickCommand(message: IrcMessage): Promise<void> | undefined {
    const nick = message.params[0];
    if (nick === undefined || nick === "") return void this.refuse("431", "No nickname given");
    const name = nameOf(nick);
    const checked = name === undefined ? undefined : checkName(name);
    if (checked === undefined || !checked.ok) {
      const why = checked === undefined || checked.ok ? "Erroneous nickname" : checked.message;
      return void this.refuse("432", nick, why);
    }
    if (this.session.name === undefined) {
      this.#nick = nick;
      return this.register();
    }
    if (nickOf(checked.name) === this.nick) return;
    return this.request({ type: "nick", id: this.id(), name: checked.name }, {
      kind: "nick",
      nick,
      old: this.nick,
    });
  }

  /** Handles `USER`. */
  user(message: IrcMessage): Promise<void> | undefined {
    if (this.session.name !== undefined) return void this.refuse("462", "You may not reregister");
    if (message.params.some((param) => param === "")) {
      return void this.refuse("461", "USER", "Not enough parameters");
    }
    this.#user = true;
    this.#introduced = {
      ident: identOf(message.params[0]!),
      real: realNameOf(message.params[3]!),
    };
    return this.register();
  }

  /** Says `hello` once the nick, the user and the capabilities are settled. */
  register(): Promise<void> | undefined {
    const nick = this.#nick;
    if (
      nick === undefined || !this.#user || this.#negotiating || this.#registering ||
      this.session.name !== undefined
    ) return undefined;
    this.#registering = true;
    const name = nameOf(nick) ?? nick;
    return this.request({
      type: "hello",
      id: this.id(),
      v: PROTOCOL_VERSION,
      name,
      client: "irc",
      // The door takes away events, and tells them to the clients that asked (away-notify).
      caps: ["away"],
      ...(this.#password === undefined ? {} : { password: this.#password }),
    }, { kind: "hello", nick });
  }

  /** Handles `QUIT`. */
  quit(message: IrcMessage): Promise<void> | undefined {
    const reason = message.params[0] ?? "";
    if (this.session.name === undefined) {
      this.send(`ERROR :Closing link${reason === "" ? "" : ` (${reason})`}`);
      this.#host.close();
      return;
    }
    const said = reasonOf(reason);
    return this.request(
      { type: "quit", id: this.id(), ...(said === undefined ? {} : { reason: said }) },
      { kind: "quit", message: said ?? "" },
    );
  }

  // Commands after registration.

  /** Handles `PING`. */
  pingCommand(message: IrcMessage): undefined {
    const token = message.params[0];
    if (token === undefined) this.refuse("409", "No origin specified");
    else this.send(ircLine(this.server, "PONG", [this.server, token], true));
    return undefined;
  }

  /** Handles `AUTHENTICATE`. */
  authenticate(): undefined {
    this.refuse("904", "SASL authentication is not offered here");
    return undefined;
  }

  /** Handles `JOIN`. */
  join(message: IrcMessage): Promise<void> | undefined {
    const list = message.params[0]!;
    if (list === "0") {
      return each(
        [...this.session.rooms].map((room) => room.name),
        (room) => this.request({ type: "part", id: this.id(), room }, { kind: "part", room }),
      );
    }
    return each(targets(list), (room) => {
      if (!room.startsWith("#") || [...room].length > MAX_ROOM_LENGTH || !isChannel(room)) {
        this.refuse("403", room, "No such channel");
        return undefined;
      }
      // Joining a channel the client is in already does nothing, as on other servers.
      if (this.session.inRoom(room)) return undefined;
      (this.#joining ??= new Map()).set(room, []);
      return this.request({ type: "join", id: this.id(), room }, { kind: "join", room });
    });
  }

  /** Handles `PART`, with its reason if one is given. */
  part(message: IrcMessage): Promise<void> | undefined {
    const reason = reasonOf(message.params[1]);
    const said = reason === undefined ? {} : { reason };
    return each(targets(message.params[0]!), (room) => {
      if (!isChannel(room)) {
        this.refuse("403", room, "No such channel");
        return undefined;
      }
      return this.request({ type: "part", id: this.id(), room, ...said }, {
        kind: "part",
        room,
        ...said,
      });
    });
  }

  /** Handles `PRIVMSG`. */
  privmsg(message: IrcMessage): Promise<void> | undefined {
    const [list, raw] = message.params;
    // A NOTICE is never answered, not even by a refusal (RFC 2812, section 3.3.2).
    const refuse = message.command === "NOTICE" ? () => {} : this.refuse.bind(this);
    if (list === undefined || list === "") {
      refuse("411", `No recipient given (${message.command})`);
      return undefined;
    }
    if (raw === undefined || raw === "") {
      refuse("412", "No text to send");
      return undefined;
    }
    let text = raw;
    let action = false;
    if (text.startsWith("\x01")) {
      const body = text.endsWith("\x01") ? text.slice(1, -1) : text.slice(1);
      if (!body.toUpperCase().startsWith("ACTION")) return undefined;
      action = true;
      text = body.slice(6).replace(/^ /, "");
      if (text === "") return undefined;
    }
    const command = message.command;
    return each(targets(list), (target) => {
      const say = { kind: "say" as const, command, target, text, action };
      const extra = {
        ...(action ? { action: true } : {}),
        ...(command === "NOTICE" ? { notice: true } : {}),
      };
      if (target.startsWith("#")) {
        return this.request({ type: "send", id: this.id(), room: target, text, ...extra }, say);
      }
      const name = nameOf(target);
      if (name === undefined) {
        refuse("401", target, "No such nick");
        return undefined;
      }
      return this.request({ type: "dm", id: this.id(), to: name, text, ...extra }, say);
    });
  }

  /** Handles `TOPIC`. */
  topic(message: IrcMessage): Promise<void> | undefined {
    const [room, topic] = message.params as [string, string | undefined];
    if (!isChannel(room)) return void this.refuse("403", room, "No such channel");
    // Not in it: the room list tells whether it exists (someone is in it), 442, or not, 403.
    if (!this.session.inRoom(room)) {
      return this.request({ type: "rooms", id: this.id() }, { kind: "elsewhere", room });
    }
    if (topic === undefined) {
      return this.request({ type: "topic", id: this.id(), room }, {
        kind: "topic",
        room,
        set: false,
      });
    }
    return this.request({ type: "topic", id: this.id(), room, topic }, {
      kind: "topic",
      room,
      set: true,
    });
  }

  /** Handles `NAMES`. */
  names(message: IrcMessage): Promise<void> | undefined {
    const list = message.params[0];
    const rooms = list === undefined
      ? [...this.session.rooms].map((room) => room.name)
      : targets(list);
    return each(rooms, (room) => {
      if (!this.session.inRoom(room)) {
        this.send(...namesLines(this.nick, room, [], this.server));
        return undefined;
      }
      return this.request({ type: "who", id: this.id(), room }, { kind: "names", room });
    });
  }

  /** Handles `LIST`. */
  list(message: IrcMessage): Promise<void> | undefined {
    const list = message.params[0];
    const only = list === undefined || !list.startsWith("#") ? undefined : new Set(targets(list));
    return this.request({ type: "rooms", id: this.id() }, { kind: "list", only });
  }

  /** Handles `WHO`. */
  who(message: IrcMessage): Promise<void> | undefined {
    const mask = message.params[0] ?? "*";
    if (mask.startsWith("#")) {
      if (!this.session.inRoom(mask)) {
        this.reply("315", mask, "End of WHO list");
        return undefined;
      }
      return this.request({ type: "who", id: this.id(), room: mask }, { kind: "who", mask });
    }
    if (mask.includes("*") || mask.includes("?")) return void this.send(...this.#whoMask(mask));
    const name = nameOf(mask);
    if (name === undefined) {
      this.reply("315", mask, "End of WHO list");
      return undefined;
    }
    // A nick: its one line, if it is online.
    return this.request({ type: "whois", id: this.id(), name }, { kind: "who", mask });
  }

  /**
   * `WHO` with a mask (`*`, `al*`): the client and those it shares a room
   * with whose nick matches, at most `maxPresence` of them.
   */
  #whoMask(mask: string): string[] {
    const wanted = mask.toLowerCase();
    const users = this.#introductions();
    const found = new Map<string, Session>();
    const max = this.#host.limits.maxPresence;
    for (
      const member of [this.session, ...this.session.rooms.flatMap((room) => [...room.members])]
    ) {
      if (found.size >= max) break;
      if (member.name === undefined || member.gone) continue;
      const nick = nickOf(member.name);
      if (!found.has(nick) && matches(wanted, nick.toLowerCase())) found.set(nick, member);
    }
    const lines = [...found].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0).map(
      ([nick, member]) => {
        const user = users.get(member.name!);
        return capped(this.numeric("352", [
          "*",
          user?.ident ?? "u",
          "chat",
          this.server,
          nick,
          member.away === "" ? "H" : "G",
          `0 ${user === undefined || user.real === "" ? member.name : user.real}`,
        ]));
      },
    );
    return [...lines, this.numeric("315", [mask, "End of WHO list"])];
  }

  /** Handles `WHOIS`. */
  whois(message: IrcMessage): Promise<void> | undefined {
    // "WHOIS server nick" asks a given server; there is one.
    const nick = message.params[message.params.length - 1]!.split(",")[0]!;
    const name = nameOf(nick);
    if (name === undefined) {
      this.send(
        this.numeric("401", [nick, "No such nick"]),
        this.numeric("318", [nick, "End of /WHOIS list"]),
      );
      return undefined;
    }
    return this.request({ type: "whois", id: this.id(), name }, { kind: "whois", nick });
  }

  /** Handles `CHATHISTORY LATEST|BEFORE|AFTER` for a room, by message id (`#room/SEQ`). */
  chathistory(message: IrcMessage): Promise<void> | undefined {
    const [sub, target, ref, count] = message.params as [string, string, string, string];
    const kind = sub.toUpperCase();
    const fail = (code: string, text: string) =>
      this.#host.refuse(
        ircBytes([ircLine(this.server, "FAIL", ["CHATHISTORY", code, sub, target, text], true)]),
      );
    if (kind !== "LATEST" && kind !== "BEFORE" && kind !== "AFTER") {
      return void fail("INVALID_PARAMS", "Only LATEST, BEFORE and AFTER are supported");
    }
    if (!/^\d{1,6}$/.test(count)) return void fail("INVALID_PARAMS", "The limit must be a number");
    const limit = Math.min(Number(count) || this.historyPage, this.historyPage);
    const batch = `h${++this.#batches}`;
    if (!target.startsWith("#")) {
      // Private messages are not kept: the history of a conversation is empty.
      const done = ackLines({ type: "ack", id: 0, messages: [] }, {
        kind: "history",
        target,
        batch,
      }, this.#reader());
      this.send(...done);
      return undefined;
    }
    let seq: number | undefined;
    if (!(ref === "*" && kind === "LATEST")) {
      const found = /^msgid=(.+)\/(\d+)$/.exec(ref);
      if (found === null || found[1] !== target) {
        return void fail("INVALID_MSGREFTYPE", 'Give a message id of this room ("msgid=#room/N")');
      }
      seq = Number(found[2]);
    }
    const frame = {
      type: "history" as const,
      id: this.id(),
      room: target,
      limit,
      ...(seq === undefined ? {} : kind === "BEFORE" ? { before: seq } : { after: seq }),
    };
    return this.request(frame, { kind: "history", target, batch });
  }

  /** Who reads an answer: this client, its nick and what it negotiated. */
  #reader(): Reader {
    const users = this.#introductions();
    return {
      nick: this.nick,
      server: this.server,
      name: this.session.name ?? "",
      echo: this.#caps?.has("echo-message") === true,
      batch: this.#caps?.has("batch") === true,
      variant: this.#variant,
      user: (name) => users.get(name),
    };
  }

  /** The USER words of the IRC users of this core. */
  #introductions(): Introductions {
    const core = this.#host.core;
    let users = introductions.get(core);
    if (users === undefined) introductions.set(core, users = new Introductions());
    return users;
  }

  /** Handles `WHOWAS`. */
  whowas(message: IrcMessage): undefined {
    const nick = message.params[0]!;
    this.send(
      this.numeric("406", [nick, "There was no such nickname"]),
      this.numeric("369", [nick, "End of WHOWAS"]),
    );
    return undefined;
  }

  /** Handles `MODE`: a channel's `+t` is its own; its operators are its creator and ours. */
  mode(message: IrcMessage): Promise<void> | undefined {
    const [target, modes] = message.params as [string, string | undefined];
    if (target.startsWith("#")) {
      if (!isChannel(target)) {
        this.refuse("403", target, "No such channel");
      } else if (modes === undefined) {
        if (!this.session.inRoom(target)) return void this.reply("324", target, "+n");
        return this.request({ type: "mode", id: this.id(), room: target }, {
          kind: "mode",
          room: target,
          change: "",
        });
      } else if (/^[+-]?b$/.test(modes) && message.params.length === 2) {
        this.reply("368", target, "End of channel ban list");
      } else if (/^[+-]t$/.test(modes) && message.params.length === 2) {
        return this.request(
          { type: "mode", id: this.id(), room: target, topicLock: modes.startsWith("+") },
          { kind: "mode", room: target, change: modes },
        );
      } else {
        this.refuse("482", target, "Only +t can be changed on this server");
      }
      return undefined;
    }
    if (nameOf(target)?.toLowerCase() !== this.session.name?.toLowerCase()) {
      this.refuse("502", "Can't change mode for other users");
    } else if (modes === undefined) {
      this.reply("221", "+");
    }
    // Setting user modes (+i, +w) changes nothing here, and is not refused.
    return undefined;
  }

  /** Handles `KICK`: a channel's operators remove someone from it. */
  kick(message: IrcMessage): Promise<void> | undefined {
    const [room, nick, text] = message.params as [string, string, string | undefined];
    const name = nameOf(nick);
    if (name === undefined) {
      this.refuse("401", nick, "No such nick");
      return undefined;
    }
    if (!isChannel(room)) return void this.refuse("403", room, "No such channel");
    // Not in it: refused either way; the room list tells 442 (someone is in it) from 403.
    if (!this.session.inRoom(room)) {
      return this.request({ type: "rooms", id: this.id() }, { kind: "elsewhere", room });
    }
    const reason = reasonOf(text);
    return this.request(
      { type: "kick", id: this.id(), name, room, ...(reason === undefined ? {} : { reason }) },
      { kind: "kick", room, nick },
    );
  }

  /** Handles `AWAY`: with a message, away; without one, back. */
  away(message: IrcMessage): Promise<void> | undefined {
    const text = message.params[0] ?? "";
    return this.request(
      { type: "away", id: this.id(), ...(text.trim() === "" ? {} : { message: text }) },
      { kind: "away" },
    );
  }

  /** Handles `OPER`. */
  oper(): undefined {
    this.refuse("491", "Operators are the holders of keys named with chat serve --operator");
    return undefined;
  }

  // Rendering.

  render(out: Outbound, session: Session): Uint8Array | null {
    const frame = out.frame;
    switch (frame.type) {
      case "ack":
      case "error":
        return this.#answer(frame);
      case "welcome":
        this.#pending?.delete(frame.id);
        this.#registering = false;
        this.#introductions().set(session, this.#introduced);
        return ircBytes(
          welcomeLines(frame, this.#host.limits, this.software, this.historyPage, this.server),
        );
      case "challenge":
      case "transfer":
      case "ping":
        return null;
      case "message": {
        const held = this.#joining?.get(frame.room);
        if (held !== undefined) {
          const bytes = out.irc(this.#variant);
          if (bytes !== null) held.push(bytes);
          return null;
        }
        return out.irc(this.#variant);
      }
      case "leave":
        if (frame.reason !== "part" && frame.reason !== "kicked") {
          // Someone leaving the chat quits once, however many rooms they shared with this reader.
          const key = `${frame.name}\n${frame.ts}`;
          if (key === this.#lastQuit) return null;
          this.#lastQuit = key;
        }
        // Removed from a room, a reader sees its KICK; its own part and quit it was answered.
        if (frame.name === session.name && !(frame.reason === "kicked" && frame.by)) return null;
        // A kick comes from the server, by its name here: not shared with other servers' readers.
        if (frame.reason === "kicked") return ircEvent(frame, this.#variant, this.server);
        return out.irc(this.#variant);
      case "join":
        // A server operator's join comes with the server giving them +o.
        return frame.op === true
          ? ircEvent(frame, this.#variant, this.server)
          : out.irc(this.#variant);
      case "offer":
        return ircEvent(frame, this.#variant, this.server);
      case "away":
        return this.#caps?.has("away-notify") ? out.irc(this.#variant) : null;
      default:
        return out.irc(this.#variant);
    }
  }

  renderRun(
    run: OutboundRun,
    start: number,
    end: number,
    _session: Session,
    sink: ViewSink,
  ): void {
    // A run is messages to one room: held with the rest while that room is being joined.
    const first = run.items[start]?.frame;
    const held = first?.type === "message" ? this.#joining?.get(first.room) : undefined;
    if (held === undefined) return run.irc(this.#variant, start, end, sink);
    for (let index = start; index < end; index++) {
      const bytes = run.items[index]!.irc(this.#variant);
      if (bytes !== null) held.push(bytes);
    }
  }

  bye(_reason: LeaveReason | "timeout", message: string): Uint8Array {
    return ircBytes([`ERROR :${message.replace(/[\r\n]/g, " ")}`]);
  }

  refusals(message: string, ids: RequestId[]): Uint8Array {
    for (const id of ids) this.#forget(id);
    return ircBytes([ircLine(this.server, "NOTICE", [this.nick, message], true)]);
  }

  /** Forgets a request answered without its own answer (refusals held back and counted). */
  #forget(id: RequestId): void {
    const pending = this.#pending?.get(id);
    this.#pending?.delete(id);
    if (pending?.kind === "join") this.#joining?.delete(pending.room);
    if (pending?.kind === "hello") {
      this.#registering = false;
      this.#nick = undefined;
    }
  }

  #answer(frame: AckFrame | ErrorFrame): Uint8Array | null {
    if (frame.type === "error" && frame.id === undefined) {
      for (const id of frame.ids ?? []) this.#forget(id);
      return ircBytes([ircLine(this.server, "NOTICE", [this.nick, frame.message], true)]);
    }
    const pending = frame.id === undefined ? undefined : this.#pending?.get(frame.id);
    if (frame.id !== undefined) this.#pending?.delete(frame.id);
    if (pending === undefined) return null;
    if (frame.type === "error" && pending.kind === "hello") {
      this.#registering = false;
      this.#nick = undefined;
    }
    // The USER words follow the user to its new name.
    if (frame.type === "ack" && pending.kind === "nick") {
      this.#introductions().set(this.session, this.#introduced);
    }
    const lines = frame.type === "ack"
      ? ackLines(frame, pending, this.#reader())
      : refusalLines(frame, pending, this.nick, this.server);
    if (pending.kind === "join") {
      const held = this.#joining?.get(pending.room) ?? [];
      this.#joining?.delete(pending.room);
      if (held.length > 0) {
        return concat([ircBytes(lines), ...(frame.type === "ack" ? held : [])]);
      }
    }
    return lines.length === 0 ? null : ircBytes(lines);
  }
}

function tooLong(text: string): boolean {
  let rest = text;
  if (text.startsWith("@")) {
    const space = text.indexOf(" ");
    if (
      space === -1 || encoder.encode(text.slice(0, space + 1)).length > MAX_CLIENT_TAG_BYTES
    ) {
      return true;
    }
    rest = text.slice(space + 1);
  }
  return encoder.encode(rest).length > MAX_LINE_BYTES - 2;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const bytes = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  return bytes;
}

/** A PART or QUIT reason, cut to the longest the chat carries (as IRC servers cut them). */
function reasonOf(text: string | undefined): string | undefined {
  const trimmed = text?.trim();
  if (trimmed === undefined || trimmed === "") return undefined;
  return trimmed.length <= MAX_REASON_LENGTH
    ? trimmed
    : [...trimmed].slice(0, MAX_REASON_LENGTH).join("").trim();
}

/**
 * Whether text matches a mask of `*` (any run) and `?` (any one character),
 * in time proportional to their lengths multiplied, whatever the mask.
 */
function matches(mask: string, text: string): boolean {
  let m = 0;
  let t = 0;
  let star = -1;
  let resume = 0;
  while (t < text.length) {
    if (m < mask.length && (mask[m] === "?" || mask[m] === text[t])) {
      m++;
      t++;
    } else if (m < mask.length && mask[m] === "*") {
      star = m++;
      resume = t;
    } else if (star !== -1) {
      m = star + 1;
      t = ++resume;
    } else return false;
  }
  while (mask[m] === "*") m++;
  return m === mask.length;
}

/** Splits a comma-separated list, dropping empty items. */
function targets(list: string): string[] {
  return list.split(",").filter((item) => item !== "");
}

/** Runs one request per target, in order, waiting where one must be waited for. */
function each(
  items: string[],
  run: (item: string) => Promise<void> | undefined,
): Promise<void> | undefined {
  for (let index = 0; index < items.length; index++) {
    const pending = run(items[index]!);
    if (pending !== undefined) {
      return pending.then(() => each(items.slice(index + 1), run));
    }
  }
  return undefined;
}
