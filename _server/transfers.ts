/**
 * File transfers on the server: offers, who accepted them, and the relay that
 * streams each file from its sender's data connection to one receiver's, with
 * backpressure end to end. The server holds one buffer per running transfer,
 * never a whole file, and only connects the two parties of an accepted offer:
 * each side needs a secret token that only it was given.
 *
 * @module
 */

import type { ErrorCode } from "../protocol/errors.ts";
import type {
  AcceptFrame,
  AckFrame,
  CancelFrame,
  DeclineFrame,
  OfferFrame,
  ReceivedFrame,
  RequestId,
  ServerFrame,
  TransferEvent,
} from "../protocol/frames.ts";
import type { Limits } from "../protocol/limits.ts";
import { nameKey } from "../protocol/names.ts";
import { writeAll } from "../_common/write_all.ts";
import { Outbound } from "./outbound.ts";
import { randomToken } from "./random.ts";
import { type Registered, type Room, Session } from "./session.ts";
import type { ClusterEvent, FileEvent } from "./storage.ts";

/** The limits on transfers (see {@linkcode Limits}). */
export type TransferLimits = Pick<Limits, "maxFileBytes" | "maxTransfersPerUser" | "offerTimeout">;

/** Bytes moved per read: the only buffer a running transfer holds. */
const RELAY_BUFFER_BYTES = 256 * 1024;
/** How long a data connection waits for the other side's, in ms. */
const PAIRING_TIMEOUT = 60_000;
/** How long a node remembers an offer made on another node to one of its sessions, in ms. */
const REMOTE_OFFER_MS = 3_600_000;
const encoder = new TextEncoder();
const READY = encoder.encode('{"type":"data","ok":true}\n');

interface Offer {
  id: string;
  sender: Registered;
  room: Room | undefined;
  recipient: Registered | undefined;
  name: string;
  size: number;
  mime: string;
  sha256: string;
  expires: string;
  timer: ReturnType<typeof setTimeout> | undefined;
  legs: Set<Leg>;
  open: boolean;
}

/**
 * A data connection as the transfers see it: bytes in, bytes out. A socket
 * is one; so could a WebSocket be.
 */
export interface ByteStream {
  /** Reads into `buffer`; resolves with the count, or `null` at the end. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Writes some of `bytes`; resolves with how many. */
  write(bytes: Uint8Array): Promise<number>;
  /** Closes the connection. */
  close(): void;
}

interface Leg {
  id: string;
  offer: Offer;
  receiver: Registered;
  tokens: [string, string];
  conns: [ByteStream | undefined, ByteStream | undefined];
  paired: PromiseWithResolvers<void>;
  /** Resolves once both data connections are closed. */
  done: PromiseWithResolvers<void>;
  timer: ReturnType<typeof setTimeout> | undefined;
  running: boolean;
  finished: boolean;
}

/** What {@linkcode Transfers} needs from the hub. */
export interface TransferHost {
  /** Finds an online session by name. */
  find(name: string): Registered | undefined;
  /** Finds a room the session is in. */
  room(session: Registered, name: string): Room | undefined;
  /** Logs a line for the operator. */
  log?(line: string): void;
  /** With several servers sharing a database: the other nodes. */
  cluster?: TransferCluster;
}

/**
 * What the transfers need of the other nodes. An offer lives on its sender's
 * node; its recipients on other nodes are reached by events, their requests
 * come back the same way, and the file goes through the database.
 */
export interface TransferCluster {
  /** This node's id. */
  readonly node: string;
  /** The file relay between nodes. */
  readonly relay: TransferRelay;
  /** Someone on another node, by name as typed. */
  find(name: string): { name: string } | undefined;
  /** The names in a room on the other nodes. */
  namesIn(room: string): string[];
  /** The members of a room on this node, if it is loaded here. */
  members(room: string): Iterable<Session>;
}

/** The relay of files between nodes, as the transfers use it (see `Relay`). */
export interface TransferRelay {
  /** Publishes an event, in order with the others. */
  publish(event: ClusterEvent): Promise<void>;
  /** Announces a leg to every node. */
  open(leg: Omit<Extract<FileEvent, { kind: "leg" }>, "kind" | "node">): Promise<void>;
  /** Ends a leg everywhere. */
  close(leg: string): void;
  /** Takes a data connection that presented a leg's token. */
  attach(conn: ByteStream, token: string): Promise<void> | undefined;
  /** Stops the sides of this node. */
  shutdown(): Promise<void>;
}

type FileRequest = Extract<FileEvent, { kind: "file" }>["request"];

function close(conn: ByteStream | undefined): void {
  try {
    conn?.close();
  } catch {
    // Already closed.
  }
}

/** The transfers of one server. */
export class Transfers {
  #limits: TransferLimits;
  #host: TransferHost;
  #offers = new Map<string, Offer>();
  #tokens = new Map<string, { leg: Leg; side: 0 | 1 }>();
  #relays = new Set<Promise<void>>();
  /** With several nodes: the legs by id, the people of other nodes, and their offers here. */
  #legs = new Map<string, Leg>();
  #proxies = new Map<string, Registered>();
  #remoteOffers = new Map<string, { home: string; until: number }>();

  /**
   * Creates the registry.
   *
   * @param limits The limits.
   * @param host How to reach sessions and rooms.
   */
  constructor(limits: TransferLimits, host: TransferHost) {
    this.#limits = limits;
    this.#host = host;
  }

  #send(session: Session | undefined, frame: ServerFrame): void {
    session?.peer?.deliver(new Outbound(frame));
  }

  #fail(session: Registered, id: RequestId, code: ErrorCode, message: string): void {
    this.#send(session, { type: "error", id, code, message });
  }

  #tell(session: Session | undefined, event: Omit<TransferEvent, "type">): void {
    this.#send(session, { type: "transfer", ...event } as TransferEvent);
  }

  /**
   * Handles `offer`: checks it, tells the recipients, answers with the id.
   *
   * @param session The sender.
   * @param frame The offer.
   */
  offer(session: Registered, frame: OfferFrame): void {
    const { maxFileBytes, maxTransfersPerUser, offerTimeout } = this.#limits;
    if (frame.size > maxFileBytes) {
      return this.#fail(
        session,
        frame.id,
        "transfer_refused",
        `Files larger than ${maxFileBytes} bytes are not allowed here`,
      );
    }
    if (!/^[0-9a-f]{64}$/i.test(frame.sha256)) {
      return this.#fail(session, frame.id, "bad_request", 'Field "sha256" must be 64 hex digits');
    }
    if (frame.name.trim() === "" || frame.name.length > 1000) {
      return this.#fail(
        session,
        frame.id,
        "bad_request",
        'Field "name" must be 1 to 1000 characters',
      );
    }
    let running = 0;
    for (const offer of this.#offers.values()) if (offer.sender === session) running++;
    if (running >= maxTransfersPerUser) {
      return this.#fail(
        session,
        frame.id,
        "transfer_refused",
        `You are already sending ${running} files, the most this server allows at once`,
      );
    }
    let room: Room | undefined;
    let recipient: Registered | undefined;
    if (frame.to.startsWith("#")) {
      room = this.#host.room(session, frame.to);
      if (room === undefined) {
        return this.#fail(session, frame.id, "not_in_room", `You are not in "${frame.to}"`);
      }
    } else {
      recipient = this.#host.find(frame.to);
      const remote = recipient === undefined ? this.#host.cluster?.find(frame.to) : undefined;
      if (remote !== undefined) recipient = this.#proxy(remote.name);
      if (recipient === undefined) {
        return this.#fail(session, frame.id, "no_such_user", `Nobody here is called "${frame.to}"`);
      }
      if (recipient === session) {
        return this.#fail(session, frame.id, "bad_request", "You cannot send a file to yourself");
      }
      if (recipient.peer === undefined) {
        return this.#fail(
          session,
          frame.id,
          "transfer_refused",
          `${recipient.name} is reconnecting; try again soon`,
        );
      }
      if (!recipient.peer.files) {
        return this.#fail(
          session,
          frame.id,
          "transfer_refused",
          `${recipient.name} uses a plain-text connection and cannot receive files`,
        );
      }
    }
    const remoteMembers = room === undefined ? [] : this.#host.cluster?.namesIn(room.name) ?? [];
    if (room !== undefined && remoteMembers.length === 0) {
      const others = [...room.members].filter((member) => member !== session);
      if (others.length > 0 && !others.some((member) => member.peer?.files)) {
        return this.#fail(
          session,
          frame.id,
          "transfer_refused",
          `Nobody else in ${room.name} can receive files`,
        );
      }
    }
    const id = randomToken(12);
    const expires = new Date(Date.now() + offerTimeout).toISOString();
    const offer: Offer = {
      id,
      sender: session,
      room,
      recipient,
      name: frame.name,
      size: frame.size,
      mime: frame.mime ?? "application/octet-stream",
      sha256: frame.sha256.toLowerCase(),
      expires,
      timer: undefined,
      legs: new Set(),
      open: true,
    };
    offer.timer = setTimeout(() => this.#expire(offer), offerTimeout);
    this.#offers.set(id, offer);
    const event: ServerFrame = {
      type: "offer",
      transfer: id,
      from: session.name,
      to: room?.name ?? recipient!.name,
      name: offer.name,
      size: offer.size,
      mime: offer.mime,
      sha256: offer.sha256,
      expires,
    };
    const ack: AckFrame = { type: "ack", id: frame.id, transfer: id, expires };
    this.#send(session, ack);
    if (recipient !== undefined) this.#send(recipient, event);
    else {
      for (const member of room!.members) if (member !== session) this.#send(member, event);
      if (remoteMembers.length > 0) this.#toRoom(room!.name, [session.name], event);
    }
    this.#host.log?.(`${session.name} offers a file of ${offer.size} bytes to ${event.to}`);
  }

  #recipientOf(offer: Offer, session: Registered): boolean {
    if (offer.recipient !== undefined) return offer.recipient === session;
    if (this.#isProxy(session)) {
      const key = nameKey(session.name);
      return (this.#host.cluster?.namesIn(offer.room!.name) ?? []).some((n) => nameKey(n) === key);
    }
    return offer.room!.members.has(session) && session !== offer.sender;
  }

  #find(session: Registered, id: RequestId, transfer: string): Offer | undefined {
    const offer = this.#offers.get(transfer);
    if (offer === undefined || (offer.sender !== session && !this.#recipientOf(offer, session))) {
      this.#fail(session, id, "no_such_transfer", `No transfer "${transfer}" for you`);
      return undefined;
    }
    return offer;
  }

  /**
   * Handles `accept`: makes a leg with a token for each side.
   *
   * @param session The receiver.
   * @param frame The acceptance.
   */
  accept(session: Registered, frame: AcceptFrame): void | Promise<void> {
    if (this.#forward(session, frame)) return;
    const offer = this.#find(session, frame.id, frame.transfer);
    if (offer === undefined) return;
    if (offer.sender === session) {
      return this.#fail(session, frame.id, "bad_request", "You cannot accept your own offer");
    }
    if (!offer.open) {
      return this.#fail(session, frame.id, "no_such_transfer", "This offer has expired");
    }
    if ([...offer.legs].some((leg) => leg.receiver === session)) {
      return this.#fail(session, frame.id, "bad_request", "You already accepted this offer");
    }
    const leg: Leg = {
      id: randomToken(9),
      offer,
      receiver: session,
      tokens: [randomToken(24), randomToken(24)],
      conns: [undefined, undefined],
      paired: Promise.withResolvers(),
      done: Promise.withResolvers(),
      timer: undefined,
      running: false,
      finished: false,
    };
    leg.paired.promise.catch(() => {});
    offer.legs.add(leg);
    const cluster = this.#host.cluster;
    if (cluster === undefined) {
      this.#tokens.set(leg.tokens[0], { leg, side: 0 });
      this.#tokens.set(leg.tokens[1], { leg, side: 1 });
    } else this.#legs.set(leg.id, leg);
    // A direct offer is taken once accepted; a room offer stays open to the others.
    if (offer.recipient !== undefined) {
      offer.open = false;
      clearTimeout(offer.timer);
    }
    leg.timer = setTimeout(
      () => this.#endLeg(leg, "the other side did not connect in time"),
      PAIRING_TIMEOUT,
    );
    if (cluster === undefined) return this.#accepted(session, frame, leg);
    // Every node learns the leg's tokens before either party does: a data connection may reach any.
    return cluster.relay.open({
      leg: leg.id,
      transfer: offer.id,
      size: offer.size,
      tokens: leg.tokens,
      sender: offer.sender.name,
      receiver: session.name,
    }).then(
      () => {
        if (!leg.finished) return this.#accepted(session, frame, leg);
        this.#fail(session, frame.id, "no_such_transfer", "This offer was withdrawn");
      },
      () => {
        this.#fail(
          session,
          frame.id,
          "storage_failed",
          "The server cannot reach its database; try again",
        );
        this.#closeLeg(leg);
        offer.legs.delete(leg);
        if (offer.recipient !== undefined) this.#drop(offer);
      },
    );
  }

  #accepted(session: Registered, frame: AcceptFrame, leg: Leg): void {
    const offer = leg.offer;
    this.#send(session, { type: "ack", id: frame.id, transfer: offer.id, token: leg.tokens[1] });
    this.#tell(offer.sender, {
      transfer: offer.id,
      state: "accepted",
      by: session.name,
      leg: leg.id,
      token: leg.tokens[0],
    });
  }

  /**
   * Handles `decline`.
   *
   * @param session The receiver.
   * @param frame The refusal.
   */
  decline(session: Registered, frame: DeclineFrame): void {
    if (this.#forward(session, frame)) return;
    const offer = this.#find(session, frame.id, frame.transfer);
    if (offer === undefined) return;
    if (offer.sender === session) {
      return this.#fail(session, frame.id, "bad_request", "To withdraw your own offer, cancel it");
    }
    this.#send(session, { type: "ack", id: frame.id, transfer: offer.id });
    this.#tell(offer.sender, { transfer: offer.id, state: "declined", by: session.name });
    if (offer.recipient !== undefined) this.#drop(offer);
  }

  /**
   * Handles `cancel`: the sender stops every leg, a receiver its own.
   *
   * @param session Either side.
   * @param frame The cancellation.
   */
  cancel(session: Registered, frame: CancelFrame): void {
    if (this.#forward(session, frame)) return;
    const offer = this.#find(session, frame.id, frame.transfer);
    if (offer === undefined) return;
    this.#send(session, { type: "ack", id: frame.id, transfer: offer.id });
    this.#cancel(offer, session, `cancelled by ${session.name}`);
  }

  #cancel(offer: Offer, by: Registered, reason: string): void {
    const event = { transfer: offer.id, state: "cancelled" as const, by: by.name, reason };
    if (by === offer.sender) {
      this.#tell(offer.sender, event);
      for (const leg of offer.legs) {
        if (!leg.finished) this.#tell(leg.receiver, event);
        this.#closeLeg(leg);
      }
      if (offer.open) {
        // Recipients who have not answered yet learn the offer is gone.
        if (offer.recipient !== undefined) this.#tell(offer.recipient, event);
        else {
          for (const member of offer.room!.members) {
            if (member !== by && ![...offer.legs].some((l) => l.receiver === member)) {
              this.#tell(member, event);
            }
          }
          if ((this.#host.cluster?.namesIn(offer.room!.name).length ?? 0) > 0) {
            const except = [by.name, ...[...offer.legs].map((l) => l.receiver.name)];
            this.#toRoom(offer.room!.name, except, { type: "transfer", ...event });
          }
        }
      }
      this.#drop(offer);
      return;
    }
    // A recipient who had not accepted yet: the sender must still hear of it.
    if (offer.recipient === by && offer.legs.size === 0) this.#tell(offer.sender, event);
    for (const leg of offer.legs) {
      if (leg.receiver !== by) continue;
      this.#tell(offer.sender, event);
      this.#closeLeg(leg);
    }
    if (offer.recipient !== undefined) this.#drop(offer);
    else this.#settle(offer);
  }

  /**
   * Handles `received`: tells the sender whether the file arrived whole.
   *
   * @param session The receiver.
   * @param frame The verdict.
   */
  received(session: Registered, frame: ReceivedFrame): void {
    if (this.#forward(session, frame)) return;
    const offer = this.#find(session, frame.id, frame.transfer);
    if (offer === undefined) return;
    this.#send(session, { type: "ack", id: frame.id, transfer: offer.id });
    this.#tell(offer.sender, {
      transfer: offer.id,
      state: "received",
      by: session.name,
      ok: frame.ok,
    });
    for (const leg of offer.legs) if (leg.receiver === session) this.#closeLeg(leg);
    if (offer.recipient !== undefined) this.#drop(offer);
    else this.#settle(offer);
  }

  /**
   * A session left: its offers and legs end.
   *
   * @param session The session.
   */
  left(session: Registered): void {
    for (const offer of [...this.#offers.values()]) {
      if (offer.sender === session) {
        this.#cancel(offer, session, `${session.name} left`);
      } else if ([...offer.legs].some((leg) => leg.receiver === session)) {
        this.#cancel(offer, session, `${session.name} left`);
      } else if (offer.recipient === session) {
        this.#tell(offer.sender, {
          transfer: offer.id,
          state: "cancelled",
          by: session.name,
          reason: `${session.name} left`,
        });
        this.#drop(offer);
      }
    }
  }

  #expire(offer: Offer): void {
    offer.open = false;
    offer.timer = undefined;
    if (offer.legs.size === 0 && offer.recipient !== undefined) {
      this.#tell(offer.recipient, { transfer: offer.id, state: "expired", by: "" });
    }
    this.#settle(offer);
  }

  /**
   * Ends an offer once it takes no new receivers and every leg is done. The
   * sender of a room offer (or of an offer nobody took) then hears `expired`:
   * its signal that the offer is over.
   */
  #settle(offer: Offer): void {
    if (offer.open || !this.#offers.has(offer.id)) return;
    if (![...offer.legs].every((leg) => leg.finished)) return;
    if (offer.recipient === undefined || offer.legs.size === 0) {
      this.#tell(offer.sender, { transfer: offer.id, state: "expired", by: "" });
    }
    this.#drop(offer);
  }

  #drop(offer: Offer): void {
    clearTimeout(offer.timer);
    offer.open = false;
    for (const leg of offer.legs) this.#closeLeg(leg);
    this.#offers.delete(offer.id);
  }

  #closeLeg(leg: Leg): void {
    if (!leg.finished && this.#legs.delete(leg.id)) this.#host.cluster?.relay.close(leg.id);
    leg.finished = true;

    clearTimeout(leg.timer);
    this.#tokens.delete(leg.tokens[0]);
    this.#tokens.delete(leg.tokens[1]);
    leg.paired.reject(new Error("closed"));
    close(leg.conns[0]);
    close(leg.conns[1]);
    leg.done.resolve();
  }

  #endLeg(leg: Leg, reason: string): void {
    if (leg.finished) return;
    const event = { transfer: leg.offer.id, state: "cancelled" as const, by: "", reason };
    this.#tell(leg.offer.sender, event);
    this.#tell(leg.receiver, event);
    this.#closeLeg(leg);
    if (leg.offer.recipient !== undefined) this.#drop(leg.offer);
    else this.#settle(leg.offer);
  }

  /**
   * Takes over a new connection whose first frame was `data`: checks the
   * token, waits for the other side, then relays.
   *
   * @param conn The connection's bytes (this module closes it).
   * @param token The token it presented.
   * @returns `false` when the token is unknown (the caller answers and closes).
   */
  attach(conn: ByteStream, token: string): Promise<void> | undefined {
    const cluster = this.#host.cluster;
    if (cluster !== undefined) return cluster.relay.attach(conn, token);
    const found = this.#tokens.get(token);
    if (found === undefined || found.leg.conns[found.side] !== undefined) return undefined;
    const { leg, side } = found;
    leg.conns[side] = conn;
    const relay = this.#run(leg, side).finally(() => this.#relays.delete(relay));
    this.#relays.add(relay);
    return leg.done.promise;
  }

  async #run(leg: Leg, side: 0 | 1): Promise<void> {
    const conn = leg.conns[side]!;
    try {
      await writeAll(conn, READY);
    } catch {
      return this.#endLeg(leg, "a data connection broke");
    }
    if (leg.running || leg.conns[0] === undefined || leg.conns[1] === undefined) {
      // One task relays, once both sides are here; the other side's task waits.
      try {
        await leg.paired.promise;
      } catch {
        // Ended before the other side came.
      }
      return;
    }
    clearTimeout(leg.timer);
    leg.paired.resolve();
    leg.running = true;
    const [from, to] = leg.conns as [ByteStream, ByteStream];
    const buffer = new Uint8Array(RELAY_BUFFER_BYTES);
    let remaining = leg.offer.size;
    try {
      while (remaining > 0) {
        const read = await from.read(buffer.subarray(0, Math.min(buffer.length, remaining)));
        if (read === null) break;
        await writeAll(to, buffer.subarray(0, read));
        remaining -= read;
      }
    } catch {
      // A side went away; reported below.
    }
    leg.running = false;
    if (leg.finished) return;
    if (remaining > 0) return this.#endLeg(leg, "the transfer was cut off");
    // Every byte is with the receiver: close both sides; the receiver sees the end.
    close(from);
    close(to);
    leg.done.resolve();
    // It has a while to say whether the file arrived whole; then the slot is freed anyway.
    leg.timer = setTimeout(
      () => this.#endLeg(leg, `${leg.receiver.name} did not confirm the file`),
      PAIRING_TIMEOUT,
    );
  }

  /** Cancels everything; waits for the relays to stop. */
  async shutdown(): Promise<void> {
    for (const offer of [...this.#offers.values()]) this.#drop(offer);
    await Promise.all(this.#relays);
    await this.#host.cluster?.relay.shutdown();
  }

  // Several nodes.

  /** The stand-in for someone on another node: what it is sent goes to their node. */
  #proxy(name: string): Registered {
    const key = nameKey(name);
    let proxy = this.#proxies.get(key);
    if (proxy === undefined) {
      const cluster = this.#host.cluster!;
      const session = new Session({
        deliver: (out) => {
          cluster.relay.publish({ kind: "deliver", node: cluster.node, to: name, frame: out.frame })
            .catch(() => {});
        },
        close: () => {},
        adopt: () => {},
        files: true,
      }, { remote: "", ip: "", ports: [] });
      proxy = session.register(name, "", false);
      this.#proxies.set(key, proxy);
    }
    return proxy;
  }

  #isProxy(session: Registered): boolean {
    return this.#proxies.get(nameKey(session.name)) === session;
  }

  /** Sends an event to the members of a room on the other nodes. */
  #toRoom(room: string, except: string[], frame: ServerFrame): void {
    const cluster = this.#host.cluster!;
    cluster.relay.publish({ kind: "deliver", node: cluster.node, room, except, frame })
      .catch(() => {});
  }

  /** Sends a request about an offer of another node to that node; returns whether it did. */
  #forward(session: Registered, frame: FileRequest): boolean {
    const cluster = this.#host.cluster;
    if (cluster === undefined || this.#offers.has(frame.transfer) || this.#isProxy(session)) {
      return false;
    }
    const remote = this.#remoteOffers.get(frame.transfer);
    if (remote === undefined) return false;
    cluster.relay.publish({
      kind: "file",
      node: cluster.node,
      home: remote.home,
      from: session.name,
      request: frame,
    }).catch(() => {
      this.#fail(
        session,
        frame.id,
        "storage_failed",
        "The server cannot reach its database; try again",
      );
    });
    return true;
  }

  /** Remembers an offer of another node made to a session of this one. */
  #noteRemote(frame: ServerFrame, home: string): void {
    if (frame.type !== "offer") return;
    const now = Date.now();
    for (const [id, entry] of this.#remoteOffers) {
      if (entry.until < now) this.#remoteOffers.delete(id);
    }
    this.#remoteOffers.set(frame.transfer, { home, until: now + REMOTE_OFFER_MS });
  }

  /**
   * An event about files from another node: a frame for a session here, or a
   * request about an offer of this node.
   *
   * @param event The event.
   */
  fromNode(event: Extract<FileEvent, { kind: "deliver" | "file" }>): void {
    const cluster = this.#host.cluster;
    if (cluster === undefined || event.node === cluster.node) return;
    if (event.kind === "deliver") {
      const out = new Outbound(event.frame);
      if ("to" in event) {
        const target = this.#host.find(event.to);
        if (target === undefined) return;
        if (event.frame.type === "offer" && target.peer?.files === false) {
          // As on one node: the sender learns at once that this user cannot take files.
          cluster.relay.publish({
            kind: "file",
            node: cluster.node,
            home: event.node,
            from: target.name,
            request: { type: "decline", id: 0, transfer: event.frame.transfer },
            refused: `${target.name} uses a plain-text connection and cannot receive files`,
          }).catch(() => {});
          return;
        }
        this.#noteRemote(event.frame, event.node);
        target.peer?.deliver(out);
        return;
      }
      this.#noteRemote(event.frame, event.node);
      const except = new Set(event.except.map((name) => nameKey(name)));
      for (const member of cluster.members(event.room)) {
        if (member.registered() && !except.has(nameKey(member.name))) member.peer?.deliver(out);
      }
      return;
    }
    if (event.home !== cluster.node) return;
    const from = this.#proxy(event.from);
    const request = event.request;
    if (event.refused !== undefined) {
      const offer = this.#offers.get(request.transfer);
      if (offer === undefined || offer.recipient !== from) return;
      this.#tell(offer.sender, {
        transfer: offer.id,
        state: "cancelled",
        by: from.name,
        reason: event.refused,
      });
      return this.#drop(offer);
    }
    switch (request.type) {
      case "accept":
        void this.accept(from, request);
        break;
      case "decline":
        this.decline(from, request);
        break;
      case "cancel":
        this.cancel(from, request);
        break;
      case "received":
        this.received(from, request);
        break;
    }
  }

  /**
   * Someone on another node left: their offers and legs end.
   *
   * @param name Their name.
   */
  leftElsewhere(name: string): void {
    const key = nameKey(name);
    const proxy = this.#proxies.get(key);
    if (proxy === undefined) return;
    this.left(proxy);
    this.#proxies.delete(key);
  }

  /**
   * Both data connections of a leg reached a node.
   *
   * @param id The leg.
   */
  paired(id: string): void {
    const leg = this.#legs.get(id);
    if (leg !== undefined) clearTimeout(leg.timer);
  }

  /**
   * Every byte of a leg is with its receiver, which has a while to say
   * whether the file arrived whole.
   *
   * @param id The leg.
   */
  delivered(id: string): void {
    const leg = this.#legs.get(id);
    if (leg === undefined || leg.finished) return;
    clearTimeout(leg.timer);
    leg.timer = setTimeout(
      () => this.#endLeg(leg, `${leg.receiver.name} did not confirm the file`),
      PAIRING_TIMEOUT,
    );
  }

  /**
   * A leg failed on some node.
   *
   * @param id The leg.
   * @param reason Why.
   */
  failed(id: string, reason: string): void {
    const leg = this.#legs.get(id);
    if (leg !== undefined) this.#endLeg(leg, reason);
  }

  /** How many offers are open or running. */
  get size(): number {
    return this.#offers.size;
  }
}
