/**
 * One client connection on the server: reads frames (JSON or plain text),
 * hands them to the hub, and writes what the hub sends back.
 *
 * @module
 */

import { helpLines, parseCommand } from "./protocol/commands.ts";
import type { ClientFrame } from "./protocol/frames.ts";
import { parseClientFrame, requestIdOf } from "./protocol/frames.ts";
import { ProtocolError } from "./protocol/errors.ts";
import type { Limits } from "./protocol/limits.ts";
import { LOBBY, PROTOCOL_VERSION } from "./protocol/limits.ts";
import { type DecodedLine, LineDecoder } from "./protocol/line_decoder.ts";
import type { Hub, Outbound, Peer, Session } from "./_hub.ts";
import { sanitize } from "./protocol/sanitize.ts";
import { SendQueue } from "./_send_queue.ts";

const READ_BUFFER_BYTES = 8 * 1024;
const OPEN_BRACE = 0x7b;
const encoder = new TextEncoder();
const BYE_QUEUE_MESSAGE = "Disconnected: too many messages waiting for you to read them";
const BYE_QUEUE_JSON = encoder.encode(
  JSON.stringify({ type: "bye", reason: "send_queue_exceeded", message: BYE_QUEUE_MESSAGE }) + "\n",
);
const BYE_QUEUE_TEXT = encoder.encode(`*** ${BYE_QUEUE_MESSAGE}\r\n`);
const PING = encoder.encode('{"type":"ping"}\n');

/** How long the server waits for a first byte before greeting a plain-text user, in ms. */
export const GREETING_DELAY = 300;

function isSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d;
}

function textLines(lines: string[]): Uint8Array {
  return encoder.encode(lines.join("\r\n") + "\r\n");
}

/** A connection, speaking JSON frames or, for `nc` users, plain text. */
export class Connection implements Peer {
  #hub: Hub;
  #limits: Limits;
  #conn: Deno.Conn;
  #queue: SendQueue;
  #session: Session;
  #mode: "json" | "text" | undefined;
  #decoder: LineDecoder | undefined;
  #nextId = 0;
  #greetingTimer: ReturnType<typeof setTimeout> | undefined;
  #opened = performance.now();
  #lastInput = performance.now();
  #pinged = false;
  /** The peer's IP address. */
  readonly ip: string;

  /**
   * Wraps an accepted connection.
   *
   * @param conn The socket.
   * @param hub The hub to feed.
   * @param limits The limits to enforce.
   * @param greeting The first lines a plain-text user sees.
   */
  constructor(conn: Deno.Conn, hub: Hub, limits: Limits, readonly greeting: string) {
    this.#conn = conn;
    this.#hub = hub;
    this.#limits = limits;
    const addr = conn.remoteAddr as Deno.NetAddr;
    this.ip = addr.hostname;
    this.#session = hub.open(this, `${addr.hostname}:${addr.port}`);
    this.#queue = new SendQueue(conn, {
      maxBytes: limits.maxSendQueueBytes,
      onOverflow: () => {
        this.#hub.disconnect(this.#session, this, "send_queue_exceeded");
        this.#queue.finish(this.#mode === "text" ? BYE_QUEUE_TEXT : BYE_QUEUE_JSON);
      },
    });
  }

  /** Queues a frame in this connection's format. */
  deliver(out: Outbound): void {
    const bytes = this.#mode === "text" ? out.text : out.json;
    if (bytes !== null) this.#queue.push(bytes);
  }

  /** Carries a resumed session from now on. */
  adopt(session: Session): void {
    this.#session = session;
  }

  /** Sends what is queued, then closes. */
  close(): void {
    this.#queue.close();
  }

  /** Closes at once. */
  destroy(): void {
    this.#queue.destroy();
  }

  /** Resolves once the socket is closed. */
  get done(): Promise<void> {
    return this.#queue.done;
  }

  /**
   * Reads until the peer leaves or the connection breaks, then tells the hub.
   *
   * @returns A promise that resolves when the connection is finished.
   */
  async run(): Promise<void> {
    const buffer = new Uint8Array(READ_BUFFER_BYTES);
    this.#greetingTimer = setTimeout(() => {
      if (this.#mode === undefined) this.#startText(true);
    }, GREETING_DELAY);
    try {
      while (!this.#queue.closed) {
        const read = await this.#conn.read(buffer);
        if (read === null) break;
        this.#lastInput = performance.now();
        this.#pinged = false;
        let chunk = buffer.subarray(0, read);
        if (this.#mode === undefined) {
          const first = chunk.findIndex((byte) => !isSpace(byte));
          if (first === -1) continue;
          chunk = chunk.subarray(first);
          if (chunk[0] === OPEN_BRACE) this.#startJson();
          else this.#startText(false);
        }
        for (const line of this.#decoder!.push(chunk)) {
          if (this.#mode === "json") this.#jsonLine(line);
          else this.#textLine(line);
        }
      }
    } catch {
      // A read error is a lost connection, like EOF without "quit".
    } finally {
      clearTimeout(this.#greetingTimer);
      this.#hub.disconnect(this.#session, this, "lost");
      this.#queue.destroy();
    }
  }

  /**
   * Enforces the time limits; the server calls this every few seconds.
   *
   * @param now `performance.now()`.
   */
  sweep(now: number): void {
    if (this.#queue.closed) return;
    const { handshakeTimeout, idleTimeout } = this.#limits;
    if (this.#session.name === undefined) {
      if (now - this.#opened > handshakeTimeout) {
        this.#expire(`No name was given within ${handshakeTimeout / 1000} s`);
      }
      return;
    }
    if (this.#mode !== "json") return;
    const idle = now - this.#lastInput;
    if (idle > idleTimeout) {
      this.#hub.disconnect(this.#session, this, "timeout");
      this.#expire(`Nothing was heard from you for ${idleTimeout / 1000} s`);
    } else if (idle > idleTimeout / 3 && !this.#pinged) {
      this.#pinged = true;
      this.#queue.push(PING);
    }
  }

  #expire(message: string): void {
    if (this.#mode !== "json") this.#say(`*** ${message}; disconnecting`);
    else {this.#queue.push(
        encoder.encode(JSON.stringify({ type: "bye", reason: "timeout", message }) + "\n"),
      );}
    this.#queue.close();
  }

  #startJson(): void {
    clearTimeout(this.#greetingTimer);
    this.#mode = "json";
    this.#decoder = new LineDecoder({ maxBytes: this.#limits.maxFrameBytes });
  }

  #startText(greet: boolean): void {
    clearTimeout(this.#greetingTimer);
    this.#mode = "text";
    this.#decoder = new LineDecoder({ maxBytes: this.#limits.maxFrameBytes, fatal: false });
    if (greet) this.#say(this.greeting, "Type your name and press Enter:");
  }

  #say(...lines: string[]): void {
    this.#queue.push(textLines(lines));
  }

  #jsonLine(line: DecodedLine): void {
    if (!line.ok) return this.#hub.reject(this.#session, line.code, line.message);
    if (line.text.trim() === "") return;
    let frame: ClientFrame;
    try {
      frame = parseClientFrame(line.text);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      return this.#hub.reject(this.#session, error.code, error.message, requestIdOf(error));
    }
    this.#hub.receive(this.#session, frame);
  }

  #textLine(line: DecodedLine): void {
    if (!line.ok) {
      return this.#say(
        `! Line is longer than ${this.#limits.maxFrameBytes} bytes; it was not sent`,
      );
    }
    const text = line.text;
    const id = ++this.#nextId;
    if (this.#session.name === undefined) {
      if (text.trim() === "") return this.#say("Type your name and press Enter:");
      this.#hub.receive(this.#session, {
        type: "hello",
        id,
        v: PROTOCOL_VERSION,
        name: text.trim(),
      });
      if (this.#session.name === undefined) this.#say("Type another name and press Enter:");
      return;
    }
    if (text.trim() === "") return;
    const command = parseCommand(text);
    const session = this.#session;
    const room = session.current?.name ?? LOBBY;
    const receive = (frame: ClientFrame) => this.#hub.receive(session, frame);
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
        return receive({ type: "part", id, room: command.room ?? room });
      case "switch":
        if (![...session.rooms].some((joined) => joined.name === command.room)) {
          return this.#say(`! You are not in "${sanitize(command.room)}"; /join it first`);
        }
        return receive({ type: "join", id, room: command.room });
      case "rooms":
        return receive({ type: "rooms", id });
      case "topic":
        return receive(
          command.text === undefined
            ? { type: "topic", id, room }
            : { type: "topic", id, room, topic: command.text },
        );
      case "quit":
        this.#say("*** Bye");
        return receive({ type: "quit", id });
      case "help":
        return this.#say(...helpLines());
      case "clear":
        return this.#say("! /clear works in the chat client only");
      case "usage":
        return this.#say(`! ${command.message}`);
      case "unknown":
        return this.#say(`! Unknown command "/${sanitize(command.name)}"; type /help for the list`);
    }
  }
}
