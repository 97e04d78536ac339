/**
 * One client connection on the server: reads frames (JSON or plain text),
 * hands them to the hub, and writes what the hub sends back.
 *
 * @module
 */

import { helpLines, parseCommand } from "../protocol/commands.ts";
import type { ClientFrame, HelloFrame, RequestId } from "../protocol/frames.ts";
import { fingerprintOf, proofBytes, verifySignature } from "../_common/identity.ts";
import { parseClientFrame, requestIdOf } from "../protocol/frames.ts";
import { ProtocolError } from "../protocol/errors.ts";
import type { Limits } from "../protocol/limits.ts";
import { LOBBY, PROTOCOL_VERSION } from "../protocol/limits.ts";
import { type DecodedLine, LineDecoder } from "../protocol/line_decoder.ts";
import type { Hub, Outbound, Peer, Session } from "./hub.ts";
import { sanitize } from "../protocol/sanitize.ts";
import { checkName } from "../protocol/names.ts";
import { namesCover } from "./address.ts";
import { SendQueue } from "../_common/send_queue.ts";
import { LineBudget } from "./line_budget.ts";

/** An idle connection reads into a small buffer... */
const SMALL_READ_BYTES = 1024;
/** ...and a busy one (a read filled the buffer) into a large one, until it is quiet again. */
const LARGE_READ_BYTES = 64 * 1024;
const OPEN_BRACE = 0x7b;
const encoder = new TextEncoder();
const BYE_QUEUE_MESSAGE = "Disconnected: too many messages waiting for you to read them";
const BYE_QUEUE_JSON = encoder.encode(
  JSON.stringify({ type: "bye", reason: "send_queue_exceeded", message: BYE_QUEUE_MESSAGE }) + "\n",
);
const BYE_QUEUE_TEXT = encoder.encode(`*** ${BYE_QUEUE_MESSAGE}\r\n`);
const PING = encoder.encode('{"type":"ping"}\n');
const LF = 0x0a;
/** Bytes read and waiting for the line budget that count as a flood (section 13.4). */
const FLOOD_BACKLOG_BYTES = 32 * 1024;
/** How often refusals held back from a connection over its budget are reported, in ms. */
const REFUSAL_REPORT_INTERVAL = 1000;

/** A raw 32-byte key and a 64-byte signature in padded base64. */
const WELL_FORMED_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
const WELL_FORMED_SIGNATURE = /^[A-Za-z0-9+/]{85}[AQgw]==$/;

/** How long the server waits for a first byte before greeting a plain-text user, in ms. */
export const GREETING_DELAY = 300;

function isSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d;
}

/** Where the first `count` lines of `chunk` end (after their newline), or its length. */
function afterLines(chunk: Uint8Array, count: number): number {
  let end = 0;
  for (let line = 0; line < count; line++) {
    const newline = chunk.indexOf(LF, end);
    if (newline === -1) return chunk.length;
    end = newline + 1;
  }
  return end;
}

function textLines(lines: string[]): Uint8Array {
  return encoder.encode(lines.join("\r\n") + "\r\n");
}

/** What a connection needs to know about the server. */
export interface ConnectionOptions {
  /** The first line a plain-text user sees. */
  greeting: string;
  /** Whether the server asks for a password. */
  password: boolean;
  /** The ports clients reach this server on: a key proof must name one of them. */
  ports: readonly number[];
  /**
   * On a TLS connection: the fingerprint of the server's certificate, which a
   * key proof must name; `undefined` on a plain connection.
   */
  fingerprint?: Promise<string | undefined>;
  /**
   * On a TLS connection: the names the server's certificate is valid for. A
   * key proof made over a connection verified by a certificate authority
   * (no fingerprint in it) must name one of them.
   */
  names?: Promise<readonly string[]>;
}

function nonce(): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(24))));
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
  #options: ConnectionOptions;
  /** A `hello` with a key, waiting for its `auth`. */
  #challenged: { hello: HelloFrame; nonce: string } | undefined;
  /** A plain-text user's password, once typed. */
  #password: string | undefined;
  /** Set when the socket became a file-transfer data connection. */
  #handedOff = false;
  /** Resolves when the transfer has closed the data connection. */
  #transfer: Promise<void> | undefined;
  #frames = 0;
  /** Lines this connection may still send before it has to wait. */
  #budget: LineBudget;
  /** Whether a refusal went out since the connection went over its budget. */
  #refusedWhileOver = false;
  /** Refusals held back since the last report. */
  #heldRefusals = 0;
  /** The ids of the requests among the held refusals. */
  #heldIds: RequestId[] = [];
  #refusalTimer: ReturnType<typeof setTimeout> | undefined;
  /** The peer's IP address. */
  readonly ip: string;

  /**
   * Wraps an accepted connection.
   *
   * @param conn The socket.
   * @param hub The hub to feed.
   * @param limits The limits to enforce.
   * @param options The greeting, and whether the server asks for a password.
   */
  constructor(conn: Deno.Conn, hub: Hub, limits: Limits, options: ConnectionOptions) {
    this.#options = options;
    this.#conn = conn;
    this.#hub = hub;
    this.#limits = limits;
    // Lines are read no faster than requests are accepted, so a client that sends as fast as the
    // socket takes is slowed down, not refused.
    this.#budget = new LineBudget({
      rate: limits.rateLimit,
      burst: limits.rateBurst,
      floodTimeout: limits.floodTimeout,
      floodBacklog: FLOOD_BACKLOG_BYTES,
    }, performance.now());
    const addr = conn.remoteAddr as Deno.NetAddr;
    this.ip = addr.hostname;
    this.#session = hub.open(this, `${addr.hostname}:${addr.port}`);
    this.#session.ip = addr.hostname;
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
    if (
      out.frame.type === "error" &&
      (out.frame.code === "rate_limited" || out.frame.id === undefined) &&
      this.#holdRefusal(out.frame.id)
    ) return;
    const bytes = this.#mode === "text" ? out.text(this.#session.current?.name) : out.json;
    if (bytes !== null) this.#queue.push(bytes);
  }

  /** Whether this connection speaks JSON and so can take part in file transfers. */
  get files(): boolean {
    return this.#mode === "json";
  }

  /** Carries a resumed session from now on. */
  adopt(session: Session): void {
    this.#session = session;
  }

  /** Sends what is queued, then closes. */
  close(): void {
    this.#flushRefusals();
    this.#queue.close();
  }

  /** Closes at once. */
  destroy(): void {
    this.#queue.destroy();
  }

  /** Resolves once the socket is closed. */
  get done(): Promise<void> {
    return this.#transfer ?? this.#queue.done;
  }

  /**
   * Reads until the peer leaves or the connection breaks, then tells the hub.
   *
   * @returns A promise that resolves when the connection is finished.
   */
  async run(): Promise<void> {
    const small = new Uint8Array(SMALL_READ_BYTES);
    let buffer = small;
    this.#greetingTimer = setTimeout(() => {
      if (this.#mode === undefined) this.#startText(true);
    }, GREETING_DELAY);
    try {
      while (!this.#queue.closed) {
        const read = await this.#conn.read(buffer);
        // Grow for a burst; shrink when reads are small again, so idle connections stay cheap.
        const next = read === buffer.length
          ? (buffer === small ? new Uint8Array(LARGE_READ_BYTES) : buffer)
          : read !== null && read < SMALL_READ_BYTES
          ? small
          : buffer;
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
        // Every line takes from the budget, whatever it holds. Lines over it wait, and the
        // socket is not read meanwhile, so the sender's kernel holds the rest.
        let waited = false;
        while (chunk.length > 0) {
          const allowed = this.#budget.allowance(performance.now(), waited);
          if (allowed === 0) {
            const delay = this.#budget.wait(performance.now(), chunk.length);
            if (delay === undefined) {
              this.#flood();
              return await this.#queue.done;
            }
            waited = true;
            await this.#pause(delay);
            if (this.#queue.closed) return;
            continue;
          }
          if (!waited) this.#flushRefusals();
          const end = afterLines(chunk, allowed);
          const lines = this.#decoder!.push(chunk.subarray(0, end));
          chunk = chunk.subarray(end);
          this.#budget.take(lines.length);
          for (const line of lines) {
            try {
              if (this.#mode === "text") this.#textLine(line);
              else {
                // Verifying a signature is the only step that waits; the frames after it wait too.
                const pending = this.#jsonLine(line);
                if (pending !== undefined) await pending;
                if (this.#handedOff) return;
              }
            } catch (error) {
              // A bug must not pass for a lost connection: log it, answer, go on.
              this.#hub.fault(this.#session, error);
            }
          }
        }
        buffer = next;
      }
    } catch {
      // A read error is a lost connection, like EOF without "quit".
    } finally {
      clearTimeout(this.#greetingTimer);
      clearTimeout(this.#refusalTimer);
      this.#hub.disconnect(this.#session, this, "lost");
      // A data connection now belongs to its transfer, which closes it.
      if (!this.#handedOff) this.#queue.destroy();
    }
  }

  /** Waits for the budget, or until the connection closes. */
  async #pause(ms: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      new Promise((resolve) => timer = setTimeout(resolve, ms)),
      this.#queue.done,
    ]);
    clearTimeout(timer);
  }

  /** Too many lines for too long: say why and close. */
  #flood(): void {
    const message =
      `Disconnected: you kept sending lines faster than ${this.#limits.rateLimit} a second, without waiting for the answers, for ${
        this.#limits.floodTimeout / 1000
      } s`;
    this.#hub.disconnect(this.#session, this, "flood");
    this.#queue.finish(
      encoder.encode(
        this.#mode === "text"
          ? `*** ${message}\r\n`
          : JSON.stringify({ type: "bye", reason: "flood", message }) + "\n",
      ),
    );
  }

  /**
   * Whether a refusal is held back: while the connection is over its line
   * budget, the first refusal goes out and the others are counted, then
   * reported in one notice a second.
   */
  #holdRefusal(id?: RequestId): boolean {
    if (!this.#budget.over) return false;
    if (!this.#refusedWhileOver) {
      this.#refusedWhileOver = true;
      return false;
    }
    this.#heldRefusals++;
    // Every request is still answered: the notice lists the ids it answers.
    if (id !== undefined) this.#heldIds.push(id);
    this.#refusalTimer ??= setTimeout(() => {
      this.#refusalTimer = undefined;
      this.#reportRefusals();
    }, REFUSAL_REPORT_INTERVAL);
    return true;
  }

  /** Reports the refusals held back, if any. */
  #reportRefusals(): void {
    clearTimeout(this.#refusalTimer);
    this.#refusalTimer = undefined;
    const count = this.#heldRefusals;
    if (count === 0) return;
    this.#heldRefusals = 0;
    const ids = this.#heldIds;
    this.#heldIds = [];
    const message = `Slow down: ${count} more ${
      count === 1 ? "line was" : "lines were"
    } refused; you are sending too fast`;
    this.#queue.push(
      encoder.encode(
        this.#mode === "text" ? `! ${message}\r\n` : JSON.stringify({
          type: "error",
          code: "rate_limited",
          message,
          ...(ids.length > 0 ? { ids } : {}),
        }) + "\n",
      ),
    );
  }

  /** The connection is within its budget again: report what was held back, start afresh. */
  #flushRefusals(): void {
    if (!this.#refusedWhileOver) return;
    this.#refusedWhileOver = false;
    this.#reportRefusals();
  }

  /**
   * Enforces the time limits; the server calls this every few seconds.
   *
   * @param now `performance.now()`.
   */
  sweep(now: number): void {
    // A data connection belongs to its transfer: no handshake or idle rules apply.
    if (this.#queue.closed || this.#handedOff) return;
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
    if (greet) {
      this.#say(
        this.#options.greeting,
        this.#options.password
          ? "This server has a password. Type it and press Enter:"
          : "Type your name and press Enter:",
      );
    }
  }

  #say(...lines: string[]): void {
    this.#queue.push(textLines(lines));
  }

  /** Tells a plain-text user a line was refused, unless refusals are held back. */
  #refuse(line: string): void {
    if (!this.#holdRefusal()) this.#say(line);
  }

  #jsonLine(line: DecodedLine): Promise<void> | undefined {
    if (!line.ok) {
      this.#hub.reject(this.#session, line.code, line.message);
      return;
    }
    if (line.text.trim() === "") return;
    let frame: ClientFrame;
    try {
      frame = parseClientFrame(line.text);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.#hub.reject(this.#session, error.code, error.message, requestIdOf(error));
      return;
    }
    return this.#handle(frame);
  }

  /** One parsed frame: a data connection, a key to prove, or a request for the hub. */
  #handle(frame: ClientFrame): Promise<void> | undefined {
    // While a key proof is pending, the next frame must be it.
    if (this.#challenged !== undefined) return this.#authenticate(frame);
    if (frame.type === "data") {
      if (this.#frames++ > 0) {
        this.#hub.reject(
          this.#session,
          "bad_request",
          '"data" must be the first frame of a new connection',
        );
        return;
      }
      const transfer = this.#hub.attachData(this.#conn, frame.token);
      if (transfer !== undefined) {
        // The connection stays counted (limits, shutdown) until its transfer lets it go.
        this.#handedOff = true;
        this.#transfer = transfer;
        return transfer;
      }
      this.#hub.reject(this.#session, "no_such_transfer", "No transfer has that token");
      this.#queue.close();
      return;
    }
    this.#frames++;
    if (
      frame.type === "hello" && frame.key !== undefined && this.#session.name === undefined &&
      !this.#hub.canResume(frame.resume)
    ) {
      // Prove the key before anything else: sign a fresh nonce. The name goes into the
      // signed bytes, so check it first.
      const name = checkName(frame.name);
      if (!name.ok) {
        this.#hub.reject(this.#session, "invalid_name", name.message, frame.id);
        return;
      }
      // The proof must be for this server, as the client dialed it: else a server the
      // user joined could pass our challenge on and log in here as them.
      return this.#challengeFor(frame);
    }
    this.#hub.receive(this.#session, frame);
    return;
  }

  /** Sends a challenge for a `hello` with a key, once the server it names is this one. */
  async #challengeFor(frame: HelloFrame): Promise<void> {
    const refusal = await this.#notForUs(frame);
    if (refusal !== undefined) {
      this.#hub.reject(this.#session, "auth_failed", refusal, frame.id);
      return;
    }
    this.#challenged = { hello: frame, nonce: nonce() };
    this.#queue.push(
      new TextEncoder().encode(
        JSON.stringify({ type: "challenge", id: frame.id, nonce: this.#challenged.nonce }) + "\n",
      ),
    );
  }

  /** Why a `hello` with a key names another server than this one, or `undefined`. */
  async #notForUs(hello: HelloFrame): Promise<string | undefined> {
    if (hello.server === undefined) {
      return 'A key proof must name the server ("server" in "hello", chat-auth-v2): ' +
        "update the client";
    }
    const port = /^(?:\[[^\]]*\]|[^:\[\]]*):(\d{1,5})$/.exec(hello.server)?.[1];
    if (port === undefined || !this.#options.ports.includes(Number(port))) {
      return `The key proof is for "${hello.server.slice(0, 100)}", not for this server (port ${
        this.#options.ports.join(" or ")
      })`;
    }
    const ours = await this.#options.fingerprint;
    const theirs = hello.tls ?? "";
    if (ours !== undefined && theirs === "") {
      // Verified by an authority: the client checked that the certificate it was shown is valid
      // for the host it dialed, so a proof naming a host our certificate is not valid for was
      // made for another server (which may be passing our challenge on).
      const host = /^(\[[^\]]*\]|[^:\[\]]*):\d{1,5}$/.exec(hello.server)?.[1] ?? "";
      const names = await this.#options.names ?? [];
      if (!namesCover(names, host)) {
        return `The key proof is for "${
          hello.server.slice(0, 100)
        }", which this server's certificate is not valid for`;
      }
      return undefined;
    }
    if ((ours ?? "") !== theirs) {
      return ours === undefined
        ? `The key proof is for a TLS server with the certificate "${
          theirs.slice(0, 100)
        }", but this connection is not TLS`
        : `The key proof is for the TLS certificate "${
          theirs.slice(0, 100)
        }", not this server's ${ours}`;
    }
    return undefined;
  }

  async #authenticate(frame: ClientFrame): Promise<void> {
    const { hello, nonce } = this.#challenged!;
    this.#challenged = undefined;
    const fail = (message: string) =>
      this.#hub.reject(this.#session, "auth_failed", message, hello.id);
    if (frame.type !== "auth" || frame.id !== hello.id) {
      fail('Expected "auth" with the signed challenge after a "hello" with a key');
      // The frame itself still gets its own answer.
      if (frame.type !== "auth") await this.#handle(frame);
      return;
    }
    const wait = this.#hub.loginWait(this.ip);
    if (wait > 0) {
      return this.#hub.reject(
        this.#session,
        "rate_limited",
        `Too many failed logins from your address; try again in ${Math.ceil(wait / 1000)} s`,
        hello.id,
      );
    }
    const key = hello.key!;
    if (frame.nonce === undefined || frame.nonce === "" || frame.nonce.includes("\n")) {
      return fail('Expected the client\'s "nonce" in "auth" (chat-auth-v2): update the client');
    }
    const valid = await verifySignature(
      key,
      frame.signature,
      proofBytes({
        server: hello.server ?? "",
        tls: hello.tls ?? "",
        name: hello.name,
        serverNonce: nonce,
        clientNonce: frame.nonce,
      }),
    );
    if (!valid) {
      // Only a proof that could have been right counts as a failed login.
      if (WELL_FORMED_KEY.test(key) && WELL_FORMED_SIGNATURE.test(frame.signature)) {
        this.#hub.loginFailed(this.ip);
      }
      return fail("The signature does not match the key");
    }
    this.#session.fingerprint = await fingerprintOf(key);
    this.#hub.receive(this.#session, hello);
  }

  #textLine(line: DecodedLine): void {
    if (!line.ok) {
      return this.#refuse(
        `! Line is longer than ${this.#limits.maxFrameBytes} bytes; it was not sent`,
      );
    }
    const text = line.text;
    const id = ++this.#nextId;
    if (this.#options.password && this.#password === undefined) {
      this.#password = text;
      return this.#say("Type your name and press Enter:");
    }
    if (this.#session.name === undefined) {
      if (text.trim() === "") return this.#say("Type your name and press Enter:");
      const hello: HelloFrame = { type: "hello", id, v: PROTOCOL_VERSION, name: text.trim() };
      if (this.#password !== undefined) hello.password = this.#password;
      this.#hub.receive(this.#session, hello);
      if (this.#session.name === undefined && !this.#budget.over) {
        this.#say("Type another name and press Enter:");
      }
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
          return this.#refuse(`! You are not in "${sanitize(command.room)}"; /join it first`);
        }
        return receive({ type: "join", id, room: command.room });
      case "rooms":
        return receive({ type: "rooms", id });
      case "whois":
        return receive({ type: "whois", id, name: command.name });
      case "kick":
        return receive({ type: "kick", id, name: command.name, reason: command.reason });
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
        return receive({ type: "quit", id });
      case "help":
        return this.#say(...helpLines());
      case "clear":
        return this.#refuse("! /clear works in the chat client only");
      case "history":
        return this.#refuse("! /history works in the chat client only");
      case "send":
      case "accept":
      case "decline":
      case "cancel":
        return this.#refuse("! Sending and receiving files needs the chat client (chat connect)");
      case "usage":
        return this.#refuse(`! ${command.message}`);
      case "unknown":
        return this.#refuse(
          `! Unknown command "/${sanitize(command.name)}"; type /help for the list`,
        );
    }
  }
}
