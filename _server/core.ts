/**
 * The core: the chat's rooms and sessions, free of sockets. Every front door
 * (a socket speaking JSON or plain text today; a WebSocket or IRC tomorrow)
 * opens a session for each connection through the {@linkcode Core}
 * interface, hands its requests in, and delivers the events the core hands
 * its {@linkcode Peer}. Requests are dispatched from the table in
 * `commands.ts`, whose rules are applied here, in one place.
 *
 * The core does one thing at a time: a request that waits for storage holds
 * back the ones after it (from every door), so the core behaves as if
 * storage answered at once. When nothing waits, a request runs at once. A
 * plain send (no idempotency key) waits only for such requests: while
 * commits are in flight, or messages of other nodes are being read, it joins
 * the next batch at once.
 *
 * @module
 */

import type { ErrorCode } from "../protocol/errors.ts";
import type { ClientFrame, LeaveReason, RequestId } from "../protocol/frames.ts";
import { type Command, COMMANDS, type Parts } from "./commands.ts";
import { Direct } from "./direct.ts";
import { Feed } from "./feed.ts";
import { Presence, STALE_MS } from "./presence.ts";
import { Handshake } from "./handshake.ts";
import { History } from "./history.ts";
import { Messages } from "./messages.ts";
import { Moderation } from "./moderation.ts";
import { Names } from "./names.ts";
import { Outbound } from "./outbound.ts";
import { Rooms } from "./rooms.ts";
import { type Origin, type Peer, type Registered, type Room, Session } from "./session.ts";
import { LOBBY } from "../protocol/limits.ts";
import { type CoreOptions, Shared } from "./shared.ts";
import { type Ban, type BanKind, isShared, type Storage, unreachable } from "./storage.ts";
import { Relay } from "./relay.ts";
import { type ByteStream, type TransferCluster, Transfers } from "./transfers.ts";

export { Outbound, OutboundRun, type ViewSink } from "./outbound.ts";
export type { Origin, Peer, Registered, Room, Session } from "./session.ts";
export type { CoreOptions } from "./shared.ts";
export { SqliteStorage, type Storage } from "./storage.ts";
export type { ByteStream } from "./transfers.ts";

/** A name with its ASCII letters in lower case (other letters as they are). */
function asciiLower(name: string): string {
  return name.replace(/[A-Z]+/g, (letters) => letters.toLowerCase());
}

/** What a door may ask of the core. */
export interface Core {
  /**
   * Opens a session for a new connection.
   *
   * @param peer Where the session's events go.
   * @param origin Where the connection comes from.
   * @returns The session, to hand requests in with.
   */
  open(peer: Peer, origin: Origin): Session;
  /**
   * Handles one request.
   *
   * @param session The session it came from.
   * @param frame The request.
   * @returns A promise when the requests after this one must wait for it (a
   * key proof being checked).
   */
  receive(session: Session, frame: ClientFrame): Promise<void> | undefined;
  /**
   * Answers a request that could not be read.
   *
   * @param session The session that sent it.
   * @param code Why it was refused.
   * @param message What was wrong.
   * @param id The request's id, when it could be read.
   */
  reject(session: Session, code: ErrorCode, message: string, id?: RequestId): void;
  /**
   * Reports a failure of the server itself while handling a request: logged
   * for the operator, answered with `internal_error`.
   *
   * @param session The session whose request failed.
   * @param error What was thrown.
   */
  fault(session: Session, error: unknown, id?: RequestId): void;
  /**
   * The connection of a session ended. If it still carried its session, the
   * session leaves, or is held for a reconnect when its client said it would
   * come back.
   *
   * @param session The session.
   * @param peer The connection that ended.
   * @param reason Why.
   */
  disconnect(session: Session, peer: Peer, reason: LeaveReason): void;
  /**
   * Resolves once the messages sent so far are stored and delivered, or
   * `undefined` when none wait. Messages are committed in batches, once the
   * reads that are ready have been handled; a door that waits for this before
   * reading more keeps what it reads in step with what the queues hold.
   */
  settled(): Promise<void> | undefined;
  /**
   * Hands a data connection (its first frame was `data`) to the transfers.
   *
   * @param stream The connection's bytes.
   * @param token The token it presented.
   * @returns A promise that resolves once the transfer has closed it, or
   * `undefined` when the token opened nothing.
   */
  attachData(stream: ByteStream, token: string): Promise<void> | undefined;
  /**
   * The name of a room someone here is in whose name is this one with ASCII
   * letters in either case (for IRC, whose channel names are so compared).
   *
   * @param name The name asked for.
   * @returns The room's own name, or `undefined` when no such room is loaded.
   */
  roomNamed(name: string): string | undefined;
}

/** How long a node that starts waits to hear the others before taking connections anyway, in ms. */
const LISTEN_WAIT_MS = 5000;

/** The rooms and sessions of one server. */
export class ChatCore implements Core {
  #shared: Shared;
  #names: Names;
  #rooms: Rooms;
  #messages: Messages;
  #moderation: Moderation;
  #handshake: Handshake;
  #transfers: Transfers;
  #parts: Parts;
  #feed: Feed | undefined;
  /** With several nodes: resolves once the node hears the others. */
  #listening: PromiseWithResolvers<void> | undefined;
  #closing = false;
  /** The work waiting, in order, or `undefined` when none is. */
  #lane: Promise<void> | undefined;
  /**
   * How many tasks in the lane plain sends must wait for: not commits, the
   * delivery of other nodes' messages, or plain sends (the light ones).
   */
  #waiting = 0;

  /**
   * Opens a core: applies the retention policy, then loads the bans, the
   * names bound to keys, and `#lobby`.
   *
   * @param options The storage, the limits and where to log.
   * @returns The core.
   */
  static async open(options: CoreOptions): Promise<ChatCore> {
    const storage: Storage = options.store;
    await storage.prune(options.retention);
    const [bans, bound, lobby] = await Promise.all([
      storage.bans(),
      storage.boundNames(),
      Rooms.load(storage, LOBBY),
    ]);
    const core = new ChatCore(options, { bans, bound, lobby });
    // Who is on the other nodes is known before anyone arrives here, and what they tell is heard.
    await core.#shared.cluster?.reload();
    if (core.#listening !== undefined) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        core.#listening.promise,
        new Promise((resolve) => timer = setTimeout(resolve, LISTEN_WAIT_MS)),
      ]);
      clearTimeout(timer);
    }
    return core;
  }

  private constructor(
    options: CoreOptions,
    loaded: { bans: Ban[]; bound: { name: string; fingerprint: string }[]; lobby: Room },
  ) {
    const shared = new Shared(options, {
      afterSends: (step) => this.#messages.after(step),
      run: (task) => {
        this.#run(task);
      },
      runCommit: (task) => {
        this.#run(task, undefined, undefined, true);
      },
      leave: (session, reason, message) => this.#leave(session, reason, message),
    });
    this.#shared = shared;
    const history = new History(shared);
    const rooms = this.#rooms = new Rooms(shared, history, loaded.lobby);
    this.#messages = new Messages(shared, rooms, history);
    const names = this.#names = new Names(shared, loaded.bound);
    const moderation = this.#moderation = new Moderation(shared, names, loaded.bans);
    const store = options.store;
    let transferCluster: TransferCluster | undefined;
    if (isShared(store)) {
      const feed = this.#feed = new Feed(shared, store, {
        loaded: (name) => rooms.loaded(name),
        all: () => rooms.all(),
      });
      this.#messages = new Messages(shared, rooms, history, feed);
      const presence = shared.cluster = new Presence(shared, store, {
        loaded: (name) => rooms.loaded(name),
        local: (key) => names.byKey(key),
        retitle: (room, topic) => room.retitle(topic),
        kick: (session, room, by, message) => rooms.remove(room, session, by, message),
        drop: (session) => this.#drop(session),
        eject: (session, reason, message) => moderation.eject(session, reason, message),
        bans: () => this.#run(() => moderation.reload()),
      });
      const relay = new Relay(store, {
        paired: (leg) => this.#run(() => this.#transfers.paired(leg)),
        delivered: (leg) => this.#run(() => this.#transfers.delivered(leg)),
        failed: (leg, reason) => this.#run(() => this.#transfers.failed(leg, reason)),
        tell: (name, frame) => names.find(name)?.peer?.deliver(new Outbound(frame)),
        staleMs: STALE_MS,
        log: (line) => shared.log(line),
      });
      transferCluster = {
        node: store.node,
        relay,
        find: (name) => presence.find(name),
        namesIn: (room) => presence.namesIn(room),
        members: (room) => rooms.loaded(room)?.members ?? [],
      };
      this.#listening = Promise.withResolvers();
      store.subscribe({
        message: (room, seq) => feed.wake(room, seq),
        event: (event) => {
          // The data of a file goes by at once; the rest waits its turn.
          if (event.kind === "leg" || event.kind === "pipe") relay.receive(event);
          else if (event.kind === "deliver" || event.kind === "file") {
            this.#run(() => this.#transfers.fromNode(event));
          } else {
            this.#run(() => {
              presence.receive(event);
              if (event.kind === "quit") this.#transfers.leftElsewhere(event.name);
            });
          }
        },
        ready: () => {
          this.#listening?.resolve();
          feed.ready();
          void presence.reload();
          this.#run(() => moderation.reload());
        },
      });
    }
    this.#handshake = new Handshake(shared, names, rooms, history, moderation);
    this.#transfers = new Transfers(options.limits, {
      find: (name) => names.find(name),
      room: (session, name) => rooms.joined(session, name),
      log: options.log,
      cluster: transferCluster,
    });
    this.#parts = {
      shared,
      names,
      rooms,
      handshake: this.#handshake,
      messages: this.#messages,
      history,
      direct: new Direct(shared, names),
      moderation,
      transfers: this.#transfers,
    };
  }

  /**
   * Runs a task in turn: at once when nothing is waiting, else after what
   * is. A failure of a task that had to wait is reported for its session.
   */
  #run(
    task: () => void | Promise<void>,
    session?: Session,
    id?: RequestId,
    light = false,
  ): Promise<void> | undefined {
    if (this.#lane === undefined) {
      const result = task();
      return result === undefined ? undefined : this.#queue(result, session, id, light);
    }
    return this.#queue(this.#lane.then(task), session, id, light);
  }

  #queue(
    work: Promise<void>,
    session: Session | undefined,
    id?: RequestId,
    light = false,
  ): Promise<void> {
    if (!light) this.#waiting++;
    const lane: Promise<void> = work.catch((error) => {
      if (session !== undefined) this.fault(session, error, id);
      else this.#shared.log(`Internal error: ${error instanceof Error ? error.stack : error}`);
    }).finally(() => {
      if (!light) this.#waiting--;
      if (this.#lane === lane) this.#lane = undefined;
    });
    this.#lane = lane;
    return lane;
  }

  /**
   * The ban in force for a name key, fingerprint, address or mute, if any.
   *
   * @param kind What it applies to.
   * @param value The name key, fingerprint or address.
   * @returns The ban.
   */
  roomNamed(name: string): string | undefined {
    if (this.#rooms.loaded(name) !== undefined) return name;
    const folded = asciiLower(name);
    for (const room of this.#rooms.all()) {
      if (asciiLower(room.name) === folded) return room.name;
    }
    return undefined;
  }

  banned(kind: BanKind, value: string | undefined): Ban | undefined {
    return this.#moderation.banned(kind, value);
  }

  /** How many sessions completed the handshake and are still here (held ones included). */
  get size(): number {
    return this.#names.size;
  }

  open(peer: Peer, origin: Origin): Session {
    const session = new Session(peer, origin);
    this.#shared.sessions.add(session);
    return session;
  }

  receive(session: Session, frame: ClientFrame): Promise<void> | undefined {
    // While a key proof is pending, the next frame must be it.
    if (session.challenged) return this.#prove(session, frame);
    // A key is proven before anything else.
    if (this.#handshake.needsProof(session, frame)) {
      return this.#handshake.challenge(session, frame);
    }
    // A plain send only joins the batch (commits keep their order): it need not wait its turn,
    // unless something waits for storage (a ban or mute being written, say), which it must see.
    // Commits in flight are not such a thing: the send goes into the next batch.
    const plain = frame.type === "send" && frame.key === undefined;
    if (plain && this.#waiting === 0) {
      const result = this.#request(session, frame);
      return result instanceof Promise ? result : undefined;
    }
    // A plain send waiting its turn is no reason for the sends after it to wait.
    return this.#run(
      () => this.#request(session, frame),
      session,
      "id" in frame ? frame.id : undefined,
      plain,
    );
  }

  async #prove(session: Session, frame: ClientFrame): Promise<void> {
    const next = await this.#handshake.authenticate(session, frame);
    if (next === undefined) return;
    const proved = "proved" in next ? next.proved : undefined;
    if (proved !== undefined) await this.#run(() => this.#request(session, proved), session);
    else if ("other" in next) await this.receive(session, next.other);
  }

  /** Applies the rules of the table, in one place, then runs the request's handler. */
  #request(session: Session, frame: ClientFrame): void | Promise<void> {
    // After "quit" (or a disconnect) nothing more is read from the session.
    if (session.gone || frame.type === "pong" || frame.type === "data") return;
    const shared = this.#shared;
    if (this.#closing) {
      return shared.fail(session, frame.id, "shutting_down", "Server is shutting down");
    }
    const command = COMMANDS[frame.type] as Command<Parts, Session, typeof frame>;
    if (!this.#allow(session, frame.id, command.cost ?? 1)) return;
    // A send joins the batch; everything else sees the world after the sends before it.
    if (frame.type !== "send" || !session.registered()) {
      const committing = this.#messages.commit();
      if (committing !== undefined) {
        return committing.then(() => this.#handle(session, frame, command));
      }
    }
    return this.#handle(session, frame, command);
  }

  #handle(
    session: Session,
    frame: Exclude<ClientFrame, { type: "pong" | "data" }>,
    command: Command<Parts, Session, typeof frame>,
  ): void | Promise<void> {
    const shared = this.#shared;
    if (!session.registered() && command.beforeName !== true) {
      return shared.fail(session, frame.id, "not_registered", 'Send "hello" first');
    }
    const operator = typeof command.operator === "function"
      ? command.operator(frame)
      : command.operator;
    if (operator === true && !shared.isOperator(session)) {
      return shared.fail(session, frame.id, "not_operator", "Only operators can do that");
    }
    const speaks = typeof command.speaks === "function" ? command.speaks(frame) : command.speaks;
    if (speaks === true && session.registered() && this.#moderation.muted(session, frame.id)) {
      return;
    }
    return command.run(this.#parts, session, frame);
  }

  /** The rate limit: a burst, then a steady rate; some requests cost more. */
  #allow(session: Session, id: RequestId, price: number): boolean {
    if (price === 0) return true;
    const { rateLimit, rateBurst } = this.#shared.limits;
    const wait = session.spend(Math.min(price, rateBurst), rateLimit, rateBurst);
    if (wait === 0) return true;
    this.#shared.fail(
      session,
      id,
      "rate_limited",
      `Slow down: too many requests; try again in ${Math.max(wait / 1000, 0.1).toFixed(1)} s`,
    );
    return false;
  }

  reject(session: Session, code: ErrorCode, message: string, id?: RequestId): void {
    // Nothing of this connection waits in turn (its door waits for each request): answer now.
    this.#shared.fail(session, id, code, message);
  }

  fault(session: Session, error: unknown, id?: RequestId): void {
    if (unreachable(error)) {
      // Not a fault of the server: its database is away for a while.
      this.#shared.log(
        `Cannot reach the database: ${error instanceof Error ? error.message : error}`,
      );
      return this.#shared.fail(
        session,
        id,
        "storage_failed",
        "The server cannot reach its database; try again",
      );
    }
    this.#shared.log(
      `Internal error: ${error instanceof Error ? error.stack ?? error.message : String(error)}`,
    );
    // A request that failed on storage gets its answer, so its client does not wait for ever.
    this.#shared.fail(
      session,
      id,
      "internal_error",
      "The server failed on that request; it was logged",
    );
  }

  disconnect(session: Session, peer: Peer, reason: LeaveReason): void {
    this.#run(() => this.#disconnect(session, peer, reason));
  }

  #disconnect(session: Session, peer: Peer, reason: LeaveReason): void | Promise<void> {
    if (session.peer !== peer || session.gone) return;
    const committing = this.#messages.commit();
    if (committing !== undefined) {
      return committing.then(() => this.#disconnect(session, peer, reason));
    }
    const shared = this.#shared;
    const grace = shared.options.resumeGrace;
    if (
      (reason === "lost" || reason === "timeout") && session.reconnect && session.registered() &&
      grace > 0
    ) {
      session.hold(grace, () => this.#run(() => this.#leave(session, "lost")));
      shared.cluster?.held(session, grace);
      shared.log(`${session.name} lost the connection; holding the name for a reconnect`);
      return;
    }
    this.#leave(session, reason);
  }

  /** Ends a session: it leaves every room, and its name is free again. */
  #leave(session: Session, reason: LeaveReason, message?: string): void {
    if (!session.end()) return;
    this.#shared.sessions.delete(session);
    this.#names.remove(session);
    if (!session.registered()) return;
    this.#transfers.left(session);
    this.#rooms.left(session.name, session.exitAll(), reason, session.transient, message);
    this.#shared.log(`${session.name} left (${reason})`);
  }

  /** Ends a session that goes on on another node: nobody here is told it left. */
  #drop(session: Registered): void {
    if (!session.end()) return;
    this.#shared.sessions.delete(session);
    this.#names.remove(session);
    this.#transfers.left(session);
    session.exitAll();
    const peer = session.peer;
    if (peer !== undefined) {
      peer.deliver(
        new Outbound({
          type: "bye",
          reason: "replaced",
          message: "This session was resumed elsewhere",
        }),
      );
      peer.close();
    }
    this.#shared.log(`${session.name} went on on another node`);
  }

  /** Housekeeping the server runs every few seconds: history retention, every ten minutes. */
  maintain(): void {
    if (!this.#messages.due()) return;
    this.#handshake.sweep();
    this.#run(async () => {
      await this.#messages.commit();
      await this.#messages.prune();
    });
  }

  attachData(stream: ByteStream, token: string): Promise<void> | undefined {
    return this.#closing ? undefined : this.#transfers.attach(stream, token);
  }

  /** Stops every transfer and waits for their relays. */
  stopTransfers(): Promise<void> {
    return this.#transfers.shutdown();
  }

  /**
   * Says goodbye to every session and closes them, once the work waiting is
   * done; the core accepts nothing more.
   */
  settled(): Promise<void> | undefined {
    return this.#messages.settled();
  }

  async shutdown(): Promise<void> {
    this.#closing = true;
    while (this.#lane !== undefined) await this.#lane;
    await this.#messages.commit();
    this.#feed?.close();
    this.#shared.cluster?.close();
    const bye = new Outbound({
      type: "bye",
      reason: "shutdown",
      message: "Server is shutting down",
    });
    const sessions = this.#shared.sessions;
    for (const session of sessions) {
      session.end();
      session.peer?.deliver(bye);
      session.peer?.close();
    }
    sessions.clear();
    this.#names.clear();
  }
}
