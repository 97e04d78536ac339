/**
 * The plain-text dialect, for people on `nc`: a name (and a password) at a
 * prompt, then lines that are messages to the current room or `/commands`.
 *
 * @module
 */

import { helpLines, parseCommand } from "../../protocol/commands.ts";
import type { ClientFrame, HelloFrame, LeaveReason } from "../../protocol/frames.ts";
import { LOBBY, PROTOCOL_VERSION } from "../../protocol/limits.ts";
import { type DecodedLine, LineDecoder } from "../../protocol/line_decoder.ts";
import { sanitize } from "../../protocol/sanitize.ts";
import type { Outbound, OutboundRun, Session, ViewSink } from "../core.ts";
import type { Dialect, DialectHost } from "./dialect.ts";

const encoder = new TextEncoder();

function textLines(lines: string[]): Uint8Array {
  return encoder.encode(lines.join("\r\n") + "\r\n");
}

/**
 * A goodbye line.
 *
 * @param reason Why the connection ends.
 * @param message What to tell.
 * @returns The line.
 */
export function textBye(reason: LeaveReason | "timeout", message: string): Uint8Array {
  return textLines([reason === "timeout" ? `*** ${message}; disconnecting` : `*** ${message}`]);
}

/** Lines typed by a person. */
export class TextDialect implements Dialect {
  readonly decoder: LineDecoder;
  readonly files = false;
  readonly ping: Uint8Array | undefined = undefined;
  #host: DialectHost;
  #nextId = 0;
  #asksPassword: boolean;
  /** The user's password, once typed. */
  #password: string | undefined;

  /**
   * Speaks plain text over a connection.
   *
   * @param host The connection.
   * @param password Whether the server asks for a password.
   */
  constructor(host: DialectHost, password: boolean) {
    this.#host = host;
    this.#asksPassword = password;
    this.decoder = new LineDecoder({ maxBytes: host.limits.maxFrameBytes, fatal: false });
  }

  /**
   * Greets a user who has not typed anything yet.
   *
   * @param greeting The first line.
   */
  greet(greeting: string): void {
    this.#say(
      greeting,
      this.#asksPassword
        ? "This server has a password. Type it and press Enter:"
        : "Type your name and press Enter:",
    );
  }

  render(out: Outbound, session: Session): Uint8Array | null {
    return out.text(session.room);
  }

  renderRun(
    run: OutboundRun,
    start: number,
    end: number,
    session: Session,
    sink: ViewSink,
  ): void {
    run.text(session.room, start, end, sink);
  }

  bye(reason: LeaveReason | "timeout", message: string): Uint8Array {
    return textBye(reason, message);
  }

  refusals(message: string): Uint8Array {
    return textLines([`! ${message}`]);
  }

  #say(...lines: string[]): void {
    this.#host.write(textLines(lines));
  }

  /** Tells the user a line was refused, unless refusals are held back. */
  #refuse(line: string): void {
    this.#host.refuse(textLines([line]));
  }

  line(line: DecodedLine): Promise<void> | undefined {
    const host = this.#host;
    if (!line.ok) {
      this.#refuse(`! Line is longer than ${host.limits.maxFrameBytes} bytes; it was not sent`);
      return;
    }
    const text = line.text;
    const id = ++this.#nextId;
    if (this.#asksPassword && this.#password === undefined) {
      this.#password = text;
      this.#say("Type your name and press Enter:");
      return;
    }
    const session = host.session;
    if (session.name === undefined) {
      if (text.trim() === "") {
        this.#say("Type your name and press Enter:");
        return;
      }
      const hello: HelloFrame = { type: "hello", id, v: PROTOCOL_VERSION, name: text.trim() };
      if (this.#password !== undefined) hello.password = this.#password;
      const prompt = () => {
        if (host.session.name === undefined && !host.over) {
          this.#say("Type another name and press Enter:");
        }
      };
      const pending = host.core.receive(session, hello);
      if (pending !== undefined) return pending.then(prompt);
      prompt();
      return;
    }
    if (text.trim() === "") return;
    return this.#command(session, text, id);
  }

  /** A line from a user with a name: a message for the current room, or a command. */
  #command(session: Session, text: string, id: number): Promise<void> | undefined {
    const host = this.#host;
    const command = parseCommand(text);
    const room = session.room ?? LOBBY;
    const receive = (frame: ClientFrame) => host.core.receive(session, frame);
    switch (command.kind) {
      case "say":
        return receive({ type: "send", id, room, text: command.text });
      case "me":
        return receive({ type: "send", id, room, text: command.text, action: true });
      case "msg":
        return receive({ type: "dm", id, to: command.to, text: command.text });
      case "nick":
        return receive({ type: "nick", id, name: command.name });
      case "who":
        return receive({ type: "who", id, room: command.room ?? room });
      case "join":
        return receive({ type: "join", id, room: command.room });
      case "leave":
        return receive({
          type: "part",
          id,
          room: command.room ?? room,
          ...(command.reason === undefined ? {} : { reason: command.reason }),
        });
      case "switch":
        if (!session.inRoom(command.room)) {
          this.#refuse(`! You are not in "${sanitize(command.room)}"; /join it first`);
          return;
        }
        return receive({ type: "join", id, room: command.room });
      case "rooms":
        return receive({ type: "rooms", id });
      case "whois":
        return receive({ type: "whois", id, name: command.name });
      case "away":
        return receive({ type: "away", id, message: command.message });
      case "kick":
        return receive({
          type: "kick",
          id,
          name: command.name,
          reason: command.reason,
          ...(command.room === undefined ? {} : { room: command.room }),
        });
      case "ban":
        return receive({
          type: "ban",
          id,
          target: command.target,
          duration: command.duration,
          reason: command.reason,
        });
      case "unban":
        return receive({ type: "unban", id, target: command.target });
      case "mute":
        return receive({
          type: "mute",
          id,
          name: command.name,
          duration: command.duration,
          reason: command.reason,
        });
      case "topic":
        return receive(
          command.text === undefined
            ? { type: "topic", id, room }
            : { type: "topic", id, room, topic: command.text },
        );
      case "quit":
        this.#say("*** Bye");
        return receive({
          type: "quit",
          id,
          ...(command.reason === undefined ? {} : { reason: command.reason }),
        });
      case "help":
        this.#say(...helpLines());
        return;
      case "clear":
        this.#refuse("! /clear works in the chat client only");
        return;
      case "history":
      case "window":
      case "close":
      case "set":
      case "find":
      case "ignore":
      case "unignore":
        this.#refuse(`! /${command.kind} works in the chat client only`);
        return;
      case "send":
      case "accept":
      case "decline":
      case "cancel":
        this.#refuse("! Sending and receiving files needs the chat client (chat connect)");
        return;
      case "usage":
        this.#refuse(`! ${command.message}`);
        return;
      case "unknown":
        this.#refuse(`! Unknown command "/${sanitize(command.name)}"; type /help for the list`);
        return;
    }
  }
}
