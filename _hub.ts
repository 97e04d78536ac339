/**
 * The chat's rooms and sessions, free of sockets: requests in, frames out.
 * The server's connections feed it parsed frames; tests can drive it with
 * fake peers.
 *
 * @module
 */

import type { ErrorCode } from "./protocol/errors.ts";
import type {
  AckFrame,
  ClientFrame,
  DmFrame,
  HelloFrame,
  LeaveReason,
  NickFrame,
  RequestId,
  SendFrame,
  ServerFrame,
  WhoFrame,
} from "./protocol/frames.ts";
import { type Limits, LOBBY, PROTOCOL_VERSION } from "./protocol/limits.ts";
import { checkName, isRoomName, nameKey } from "./protocol/names.ts";
import { formatFrame } from "./protocol/text_format.ts";
import { sanitize } from "./protocol/sanitize.ts";

const encoder = new TextEncoder();
/** Sorts names the same way whatever the server's locale. */
const byName = new Intl.Collator("und");

/**
 * A server frame with its encodings, made at most once however many peers
 * receive it.
 */
export class Outbound {
  /** The frame. */
  readonly frame: ServerFrame;
  #json: Uint8Array | undefined;
  #text: Uint8Array | null | undefined;

  /**
   * Wraps a frame.
   *
   * @param frame The frame to send.
   */
  constructor(frame: ServerFrame) {
    this.frame = frame;
  }

  /** The frame as one line of JSON. */
  get json(): Uint8Array {
    return this.#json ??= encoder.encode(JSON.stringify(this.frame) + "\n");
  }

  /** The frame as text lines for `nc` users, or `null` when there is nothing to show. */
  get text(): Uint8Array | null {
    if (this.#text === undefined) {
      const text = formatFrame(this.frame);
      this.#text = text === undefined
        ? null
        : encoder.encode(text.replaceAll("\n", "\r\n") + "\r\n");
    }
    return this.#text;
  }
}

/** One connection as the hub sees it. */
export interface Peer {
  /** Queues a frame for the peer. Must not throw. */
  deliver(out: Outbound): void;
  /** Sends what is queued, then closes the connection. */
  close(): void;
}

/** One person's state on the server. */
export class Session {
  /** The connection. */
  readonly peer: Peer;
  /** Where the connection comes from, for the log. */
  readonly remote: string;
  /** The registered name, once the handshake is done. */
  name: string | undefined;
  /** The rooms the session is in. */
  readonly rooms: Set<Room> = new Set();
  /** Set once the session has left, so it is announced only once. */
  gone = false;

  /**
   * Creates a session for a new connection.
   *
   * @param peer The connection.
   * @param remote Where it comes from.
   */
  constructor(peer: Peer, remote: string) {
    this.peer = peer;
    this.remote = remote;
  }
}

/** A room and its message counter. */
export class Room {
  /** The room's name, starting with `#`. */
  readonly name: string;
  /** Everyone in the room. */
  readonly members: Set<Session> = new Set();
  /** The sequence number of the room's last message. */
  seq = 0;

  /**
   * Creates an empty room.
   *
   * @param name The room's name.
   */
  constructor(name: string) {
    this.name = name;
  }
}

/** Options for {@linkcode Hub}. */
export interface HubOptions {
  /** The limits to enforce. */
  limits: Limits;
  /** Server software name and version, sent in `welcome`. */
  software: string;
  /** Receives one line per join, leave and rename, for the operator. */
  log?: (line: string) => void;
}

function codePoints(text: string): number {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0xd800 || unit > 0xdbff) count++;
  }
  return count;
}

/** The rooms and sessions of one server. */
export class Hub {
  #options: HubOptions;
  #names = new Map<string, Session>();
  #sessions = new Set<Session>();
  #rooms = new Map<string, Room>([[LOBBY, new Room(LOBBY)]]);
  #closing = false;

  /**
   * Creates a hub with only `#lobby`.
   *
   * @param options The limits and where to log.
   */
  constructor(options: HubOptions) {
    this.#options = options;
  }

  /**
   * Registers a new connection, so it hears about a shutdown even before it
   * has a name.
   *
   * @param session The new session.
   */
  attach(session: Session): void {
    this.#sessions.add(session);
  }

  /** How many sessions completed the handshake and are still here. */
  get size(): number {
    return this.#names.size;
  }

  /**
   * Handles one request from a session.
   *
   * @param session The session it came from.
   * @param frame The request.
   */
  receive(session: Session, frame: ClientFrame): void {
    // After "quit" (or a disconnect) nothing more is read from the session.
    if (session.gone) return;
    if (this.#closing) {
      return this.#fail(session, frame.id, "shutting_down", "Server is shutting down");
    }
    if (frame.type === "hello") return this.#hello(session, frame);
    if (session.name === undefined) {
      return this.#fail(session, frame.id, "not_registered", 'Send "hello" first');
    }
    switch (frame.type) {
      case "send":
        return this.#send(session, frame);
      case "dm":
        return this.#dm(session, frame);
      case "nick":
        return this.#nick(session, frame);
      case "who":
        return this.#who(session, frame);
      case "quit":
        this.#ack(session, { type: "ack", id: frame.id });
        this.leave(session, "quit");
        session.peer.close();
        return;
      case "ping":
        return this.#ack(session, { type: "ack", id: frame.id });
    }
  }

  /**
   * Reports a frame that could not be read.
   *
   * @param session The session that sent it.
   * @param code Why it was rejected.
   * @param message What was wrong.
   * @param id The request id, when one could be read.
   */
  reject(session: Session, code: ErrorCode, message: string, id?: RequestId): void {
    this.#fail(session, id, code, message);
  }

  /**
   * Removes a session and tells its rooms why it left. Does nothing the second
   * time.
   *
   * @param session The session that is leaving.
   * @param reason Why.
   */
  leave(session: Session, reason: LeaveReason): void {
    if (session.gone) return;
    session.gone = true;
    this.#sessions.delete(session);
    const name = session.name;
    if (name === undefined) return;
    this.#names.delete(nameKey(name));
    const ts = new Date().toISOString();
    for (const room of session.rooms) {
      room.members.delete(session);
      this.#broadcast(
        room.members,
        new Outbound({ type: "leave", room: room.name, name, reason, ts }),
      );
    }
    session.rooms.clear();
    this.#options.log?.(`${name} left (${reason})`);
  }

  /** Says goodbye to every session and closes them; the hub accepts nothing more. */
  shutdown(): void {
    this.#closing = true;
    const bye = new Outbound({
      type: "bye",
      reason: "shutdown",
      message: "Server is shutting down",
    });
    for (const session of this.#sessions) {
      session.gone = true;
      session.peer.deliver(bye);
      session.peer.close();
    }
    this.#sessions.clear();
    this.#names.clear();
  }

  #fail(session: Session, id: RequestId | undefined, code: ErrorCode, message: string): void {
    session.peer.deliver(
      new Outbound(
        id === undefined ? { type: "error", code, message } : { type: "error", id, code, message },
      ),
    );
  }

  #ack(session: Session, ack: AckFrame): void {
    session.peer.deliver(new Outbound(ack));
  }

  #broadcast(members: Iterable<Session>, out: Outbound, except?: Session): void {
    for (const member of members) {
      if (member !== except) member.peer.deliver(out);
    }
  }

  #checkText(session: Session, id: RequestId, text: string): boolean {
    const max = this.#options.limits.maxTextLength;
    if (text.trim() === "") {
      this.#fail(session, id, "invalid_text", "Message is empty");
      return false;
    }
    if (text.length > max && (text.length > 2 * max || codePoints(text) > max)) {
      this.#fail(session, id, "invalid_text", `Message is longer than ${max} characters`);
      return false;
    }
    return true;
  }

  #claim(session: Session, id: RequestId, wanted: string): string | undefined {
    const checked = checkName(wanted);
    if (!checked.ok) {
      this.#fail(session, id, "invalid_name", checked.message);
      return undefined;
    }
    const holder = this.#names.get(nameKey(checked.name));
    if (holder !== undefined && holder !== session) {
      this.#fail(session, id, "name_taken", `The name "${checked.name}" is taken`);
      return undefined;
    }
    return checked.name;
  }

  #hello(session: Session, frame: HelloFrame): void {
    if (session.name !== undefined) {
      return this.#fail(session, frame.id, "already_registered", "Already joined");
    }
    if (frame.v !== PROTOCOL_VERSION) {
      return this.#fail(
        session,
        frame.id,
        "unsupported_version",
        `Protocol version ${frame.v} is not supported; this server speaks version ${PROTOCOL_VERSION}`,
      );
    }
    const name = this.#claim(session, frame.id, frame.name);
    if (name === undefined) return;
    session.name = name;
    this.#names.set(nameKey(name), session);
    const lobby = this.#rooms.get(LOBBY)!;
    const ts = new Date().toISOString();
    this.#broadcast(lobby.members, new Outbound({ type: "join", room: LOBBY, name, ts }));
    lobby.members.add(session);
    session.rooms.add(lobby);
    const { maxFrameBytes, maxTextLength } = this.#options.limits;
    session.peer.deliver(
      new Outbound({
        type: "welcome",
        id: frame.id,
        v: PROTOCOL_VERSION,
        server: this.#options.software,
        name,
        room: LOBBY,
        members: this.#namesIn(lobby),
        limits: { maxFrameBytes, maxTextLength },
      }),
    );
    const software = frame.client === undefined ? "" : ` (${sanitize(frame.client.slice(0, 100))})`;
    this.#options.log?.(`${name} joined from ${session.remote}${software}`);
  }

  #roomOf(session: Session, id: RequestId, name: string): Room | undefined {
    if (!isRoomName(name)) {
      this.#fail(session, id, "invalid_room", `Room name ${JSON.stringify(name)} is not valid`);
      return undefined;
    }
    const room = this.#rooms.get(name);
    if (room === undefined || !session.rooms.has(room)) {
      this.#fail(session, id, "not_in_room", `You are not in "${name}"`);
      return undefined;
    }
    return room;
  }

  #send(session: Session, frame: SendFrame): void {
    const room = this.#roomOf(session, frame.id, frame.room);
    if (room === undefined || !this.#checkText(session, frame.id, frame.text)) return;
    const ts = new Date().toISOString();
    const seq = ++room.seq;
    const from = session.name!;
    this.#broadcast(
      room.members,
      new Outbound(
        frame.action === true
          ? { type: "message", room: room.name, from, text: frame.text, ts, seq, action: true }
          : { type: "message", room: room.name, from, text: frame.text, ts, seq },
      ),
      session,
    );
    this.#ack(session, { type: "ack", id: frame.id, room: room.name, seq, ts });
  }

  #dm(session: Session, frame: DmFrame): void {
    const target = this.#names.get(nameKey(frame.to.normalize("NFC")));
    if (target === undefined) {
      return this.#fail(session, frame.id, "no_such_user", `Nobody here is called "${frame.to}"`);
    }
    if (!this.#checkText(session, frame.id, frame.text)) return;
    const ts = new Date().toISOString();
    const from = session.name!;
    const to = target.name!;
    target.peer.deliver(
      new Outbound(
        frame.action === true
          ? { type: "dm", from, to, text: frame.text, ts, action: true }
          : { type: "dm", from, to, text: frame.text, ts },
      ),
    );
    this.#ack(session, { type: "ack", id: frame.id, to, ts });
  }

  #nick(session: Session, frame: NickFrame): void {
    const name = this.#claim(session, frame.id, frame.name);
    if (name === undefined) return;
    const old = session.name!;
    if (name !== old) {
      this.#names.delete(nameKey(old));
      this.#names.set(nameKey(name), session);
      session.name = name;
      const out = new Outbound({ type: "nick", from: old, to: name, ts: new Date().toISOString() });
      const seen = new Set<Session>();
      for (const room of session.rooms) {
        for (const member of room.members) seen.add(member);
      }
      this.#broadcast(seen, out, session);
      this.#options.log?.(`${old} is now ${name}`);
    }
    this.#ack(session, { type: "ack", id: frame.id, name });
  }

  #who(session: Session, frame: WhoFrame): void {
    const room = this.#roomOf(session, frame.id, frame.room ?? LOBBY);
    if (room === undefined) return;
    this.#ack(session, { type: "ack", id: frame.id, room: room.name, names: this.#namesIn(room) });
  }

  #namesIn(room: Room): string[] {
    return [...room.members].map((member) => member.name!).sort(byName.compare);
  }
}
