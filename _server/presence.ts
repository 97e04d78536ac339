/**
 * Who is on the other nodes, when several servers share the storage: a
 * table of sessions (node, name, rooms, resume token) keeps names unique
 * across the nodes, and events on the bus tell every node of joins, leaves,
 * renames and topics, which it announces to its own members. Each node keeps
 * a copy of the others' sessions (reloaded from the table whenever it
 * listens again and now and then) for `who` and the room list. A node whose
 * heartbeat stops is dead: once the resume grace has run out, one node
 * removes its sessions and announces them as lost.
 *
 * @module
 */

import type { DmEvent, LeaveReason, RequestId } from "../protocol/frames.ts";
import { nameKey } from "../protocol/names.ts";
import { Outbound } from "./outbound.ts";
import { MAX_HELD_DMS, type Registered, type Room, type Session } from "./session.ts";
import type { Cluster, Shared } from "./shared.ts";
import { confusableKey } from "./skeleton.ts";
import type { ClusterBus, ClusterEvent, PresenceRow } from "./storage.ts";

/** How often a node says it is alive, in ms. */
export const HEARTBEAT_MS = 1000;
/** A node silent for this long is dead, in ms. */
export const STALE_MS = 5000;
/** How often the copy of the others' sessions is reloaded, in ms. */
const RELOAD_MS = 15_000;

/** Someone on another node. */
interface Remote {
  name: string;
  node: string;
  fingerprint: string | undefined;
  rooms: Set<string>;
  /** Their away message, `""` when they are not away. */
  away: string;
  /** The rooms they are an operator of. */
  ops: Set<string>;
}

/** What presence needs from the rest of the core. */
export interface PresenceHooks {
  /** A room loaded here. */
  loaded(name: string): Room | undefined;
  /** The local session with a name key. */
  local(key: string): Registered | undefined;
  /** A room's topic changed on another node. */
  retitle(room: Room, topic: string): void;
  /** Ends a local session without a word to anyone (it goes on on another node). */
  drop(session: Registered): void;
  /** Removes a local session from a room, as an operator of another node ordered. */
  kick(session: Registered, room: Room, by: string, message: string | undefined): void;
  /** Ends a local session as an operator ordered on another node. */
  eject(session: Registered, reason: "kicked" | "banned", message: string): void;
  /** The bans changed on another node. */
  bans(): void;
}

/** The sessions of the other nodes, and telling them of this one's. */
export class Presence implements Cluster {
  #shared: Shared;
  #bus: ClusterBus;
  #hooks: PresenceHooks;
  #remote = new Map<string, Remote>();
  #timers: ReturnType<typeof setInterval>[] = [];
  #beating = false;
  #reloading = false;
  #lastReload = 0;
  /** The writes waiting, in order. */
  #writes: Promise<void> = Promise.resolve();
  /** Since when heartbeats have succeeded without a break. */
  #healthySince: number | undefined;

  /**
   * Starts the heartbeat.
   *
   * @param shared The core's shared state.
   * @param bus The shared storage.
   * @param hooks What presence needs from the core.
   */
  constructor(shared: Shared, bus: ClusterBus, hooks: PresenceHooks) {
    this.#shared = shared;
    this.#bus = bus;
    this.#hooks = hooks;
    this.#timers.push(setInterval(() => this.#beat(), HEARTBEAT_MS));
  }

  /** This node's id. */
  get node(): string {
    return this.#bus.node;
  }

  async #beat(): Promise<void> {
    if (this.#beating) return;
    this.#beating = true;
    try {
      await this.#bus.heartbeat();
      this.#healthySince ??= performance.now();
      if (performance.now() - this.#lastReload > RELOAD_MS) await this.reload();
      // After the database was away, every node's heartbeat is old: give them time to beat
      // again before taking any of them for dead.
      if (performance.now() - this.#healthySince < 2 * STALE_MS) return;
      const gone = await this.#bus.reap(STALE_MS, this.#shared.options.resumeGrace);
      for (const row of gone) {
        if (row.node === this.node) continue;
        const event: ClusterEvent = {
          kind: "quit",
          node: this.node,
          name: row.name,
          rooms: [...row.rooms],
          reason: "lost",
          ts: new Date().toISOString(),
        };
        this.#apply(event);
        await this.#bus.publish(event);
        this.#shared.log(`${row.name} was lost with node ${row.node}`);
      }
    } catch {
      // The database is away: the next beat tries again.
      this.#healthySince = undefined;
    } finally {
      this.#beating = false;
    }
  }

  /** Reloads the others' sessions from the table (after listening again, and now and then). */
  async reload(): Promise<void> {
    if (this.#reloading) return;
    this.#reloading = true;
    try {
      const rows = await this.#bus.presence();
      this.#lastReload = performance.now();
      this.#remote.clear();
      for (const row of rows) {
        if (row.node === this.node) continue;
        this.#remote.set(row.nameKey, {
          name: row.name,
          node: row.node,
          fingerprint: row.fingerprint,
          rooms: new Set(row.rooms),
          away: row.away ?? "",
          ops: new Set(row.ops ?? []),
        });
      }
    } catch {
      // Next time.
    } finally {
      this.#reloading = false;
    }
  }

  /**
   * Someone on another node, by name.
   *
   * @param name The name as typed.
   * @returns Their name, fingerprint and away message, if they are online somewhere else.
   */
  find(
    name: string,
  ): { name: string; fingerprint: string | undefined; away: string } | undefined {
    return this.#remote.get(nameKey(name.normalize("NFC")));
  }

  /**
   * The names of a room's operators on the other nodes.
   *
   * @param room The room's name.
   * @returns Their names.
   */
  opsIn(room: string): string[] {
    const names: string[] = [];
    for (const remote of this.#remote.values()) {
      if (!remote.rooms.has(room)) continue;
      const key = remote.fingerprint !== undefined &&
        (this.#shared.options.operators?.has(remote.fingerprint) ?? false);
      if (key || remote.ops.has(room)) names.push(remote.name);
    }
    return names;
  }

  /**
   * The away messages of those in a room on the other nodes who are away.
   *
   * @param room The room's name.
   * @returns Their messages, by name.
   */
  awayIn(room: string): Record<string, string> {
    const away: Record<string, string> = {};
    for (const remote of this.#remote.values()) {
      if (remote.rooms.has(room) && remote.away !== "") away[remote.name] = remote.away;
    }
    return away;
  }

  /** The rooms a local session is an operator of. */
  #ops(session: Registered): string[] {
    const key = this.#shared.isOperator(session);
    return session.rooms.filter((room) => key || room.operators.has(session)).map((room) =>
      room.name
    );
  }

  /**
   * The names in a room on the other nodes.
   *
   * @param room The room's name.
   * @returns Their names.
   */
  namesIn(room: string): string[] {
    const names: string[] = [];
    for (const remote of this.#remote.values()) {
      if (remote.rooms.has(room)) names.push(remote.name);
    }
    return names;
  }

  /**
   * How many are in a room on the other nodes.
   *
   * @param room The room's name.
   * @returns How many.
   */
  count(room: string): number {
    let count = 0;
    for (const remote of this.#remote.values()) if (remote.rooms.has(room)) count++;
    return count;
  }

  /**
   * Every room someone on another node is in.
   *
   * @returns Their names.
   */
  rooms(): Set<string> {
    const rooms = new Set<string>();
    for (const remote of this.#remote.values()) for (const room of remote.rooms) rooms.add(room);
    return rooms;
  }

  /** The row of a local session. */
  #row(session: Registered, token = session.token): PresenceRow {
    return {
      nameKey: nameKey(session.name),
      look: confusableKey(session.name),
      name: session.name,
      node: this.node,
      token,
      fingerprint: session.fingerprint,
      rooms: [...session.rooms].map((room) => room.name),
      held: false,
      away: session.away,
      ops: this.#ops(session),
    };
  }

  /**
   * Takes a name across the nodes, or refuses the request.
   *
   * @param session Who takes it.
   * @param id The request's id.
   * @param name The name, checked here already.
   * @param token Its resume token.
   * @param takeover The resume token of a session of another node it takes over.
   * @returns Whether it is taken.
   */
  async claim(
    session: Session,
    id: RequestId,
    name: string,
    token: string,
    takeover?: string,
  ): Promise<boolean> {
    const row: PresenceRow = {
      nameKey: nameKey(name),
      look: confusableKey(name),
      name,
      node: this.node,
      token,
      fingerprint: session.fingerprint,
      rooms: takeover === undefined ? ["#lobby"] : [],
      held: false,
    };
    let holder: PresenceRow | undefined;
    try {
      holder = await this.#bus.claimPresence(row, takeover);
    } catch (error) {
      this.#unreachable(session, id, error);
      return false;
    }
    if (holder === undefined) {
      this.#remote.delete(row.nameKey);
      return true;
    }
    this.#shared.fail(
      session,
      id,
      "name_taken",
      holder.nameKey === row.nameKey
        ? (holder.held
          ? `The name "${name}" is held for someone who is reconnecting`
          : `The name "${name}" is taken`)
        : `The name "${name}" looks like "${holder.name}", which is taken; choose another name`,
    );
    return false;
  }

  #unreachable(session: Session, id: RequestId, error: unknown): void {
    this.#shared.log(
      `Cannot reach the database: ${error instanceof Error ? error.message : error}`,
    );
    this.#shared.fail(
      session,
      id,
      "storage_failed",
      "The server cannot reach its database; try again",
    );
  }

  /**
   * The session of another node a resume token belongs to, if any.
   *
   * @param token The token.
   * @returns Its row.
   */
  async resumable(token: string | undefined): Promise<PresenceRow | undefined> {
    if (token === undefined) return undefined;
    try {
      const row = await this.#bus.byToken(token);
      return row !== undefined && row.node !== this.node ? row : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Gives back a name taken for a session that did not get it after all.
   *
   * @param name The name.
   */
  release(name: string): void {
    this.#inOrder(() => this.#bus.dropPresence(nameKey(name)));
  }

  /**
   * Tells the node that had a session it goes on here.
   *
   * @param name Its name.
   */
  tookOver(name: string): void {
    this.#send({ kind: "takeover", node: this.node, name });
  }

  /**
   * A local session's rooms or token changed.
   *
   * @param session The session.
   */
  changed(session: Registered): void {
    const key = nameKey(session.name);
    const rooms = [...session.rooms].map((room) => room.name);
    const ops = this.#ops(session);
    const { token, away } = session;
    this.#inOrder(() => this.#bus.updatePresence(key, { rooms, token, ops, away }));
  }

  /**
   * A local session joined a room.
   *
   * @param session The session.
   * @param room The room.
   */
  joined(session: Registered, room: string): void {
    this.changed(session);
    const op = this.#ops(session).includes(room);
    this.#send({
      kind: "join",
      node: this.node,
      room,
      name: session.name,
      ...(op ? { op } : {}),
      ts: new Date().toISOString(),
    });
  }

  /**
   * A local session left a room.
   *
   * @param session The session.
   * @param room The room.
   * @param message The reason they gave (or the operator who removed them), if any.
   * @param by The operator who removed them, when kicked.
   */
  parted(session: Registered, room: string, message?: string, by?: string): void {
    this.changed(session);
    this.#send({
      kind: "leave",
      node: this.node,
      room,
      name: session.name,
      reason: by === undefined ? "part" : "kicked",
      ...(message === undefined ? {} : { message }),
      ...(by === undefined ? {} : { by }),
      ts: new Date().toISOString(),
    });
  }

  /**
   * A local session went away or came back.
   *
   * @param session The session.
   * @param message Its away message, `""` when back.
   */
  away(session: Registered, message: string): void {
    const key = nameKey(session.name);
    this.#inOrder(() => this.#bus.updatePresence(key, { away: message }));
    this.#send({
      kind: "away",
      node: this.node,
      name: session.name,
      message,
      rooms: session.rooms.map((room) => room.name),
      ts: new Date().toISOString(),
    });
  }

  /**
   * Asks the node of someone to remove them from a room.
   *
   * @param room The room.
   * @param name Their name.
   * @param by The operator.
   * @param message The reason given, if any.
   */
  kick(room: string, name: string, by: string, message?: string): void {
    this.#send({
      kind: "kick",
      node: this.node,
      room,
      name,
      by,
      ...(message === undefined ? {} : { message }),
    });
  }

  /**
   * Tells the others a room's settings.
   *
   * @param room The room.
   * @param topicLock Whether only its operators may set its topic.
   */
  mode(room: string, topicLock: boolean): void {
    this.#send({ kind: "mode", node: this.node, room, topicLock });
  }

  /**
   * A local session ended.
   *
   * @param name Its name.
   * @param rooms The rooms it was in.
   * @param reason Why.
   * @param message The reason they gave, if any.
   */
  quit(name: string, rooms: readonly string[], reason: LeaveReason, message?: string): void {
    this.#inOrder(() => this.#bus.dropPresence(nameKey(name)));
    // The private messages kept for it go with it.
    this.#inOrder(() => this.#bus.takeDms(nameKey(name)));
    this.#send({
      kind: "quit",
      node: this.node,
      name,
      rooms: [...rooms],
      reason,
      ...(message === undefined ? {} : { message }),
      ts: new Date().toISOString(),
    });
  }

  /**
   * A local session is held for a reconnect (or no longer is).
   *
   * @param session The session.
   * @param ms How long, or `null` when it came back.
   */
  held(session: Registered, ms: number | null): void {
    const key = nameKey(session.name);
    this.#inOrder(() => this.#bus.updatePresence(key, { held: ms }));
  }

  /**
   * Moves a local session to a new name across the nodes, or refuses.
   *
   * @param session The session, still with its old name.
   * @param id The request's id.
   * @param name The new name.
   * @returns Whether it may take it.
   */
  async rename(session: Registered, id: RequestId, name: string): Promise<boolean> {
    const row = { ...this.#row(session), nameKey: nameKey(name), look: confusableKey(name), name };
    try {
      if (await this.#bus.renamePresence(nameKey(session.name), row)) return true;
    } catch (error) {
      this.#unreachable(session, id, error);
      return false;
    }
    this.#shared.fail(session, id, "name_taken", `The name "${name}" is taken`);
    return false;
  }

  /**
   * Tells the others a local session was renamed.
   *
   * @param from The old name.
   * @param to The new name.
   * @param rooms Its rooms.
   */
  renamed(from: string, to: string, rooms: readonly string[]): void {
    this.#send({
      kind: "nick",
      node: this.node,
      from,
      to,
      rooms: [...rooms],
      ts: new Date().toISOString(),
    });
  }

  /**
   * Tells the others a topic was set here.
   *
   * @param room The room.
   * @param topic The topic.
   * @param from Who set it.
   * @param ts When.
   */
  topic(room: string, topic: string, from: string, ts: string): void {
    this.#send({ kind: "topic", node: this.node, room, topic, from, ts });
  }

  /**
   * Sends a private message to someone on another node.
   *
   * @param dm The message.
   * @returns Whether it went out.
   */
  async dm(dm: DmEvent): Promise<boolean> {
    try {
      await this.#inOrder(async () => {
        // Held for a reconnect on a node that is dead: kept here, for wherever they resume.
        if (await this.#bus.keepDmIfOrphaned(nameKey(dm.to), dm, MAX_HELD_DMS, STALE_MS)) return;
        await this.#bus.publish({ kind: "dm", node: this.node, dm });
      }, true);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Keeps a private message for a local session held for a reconnect.
   *
   * @param name The session's name.
   * @param dm The message.
   */
  keep(name: string, dm: DmEvent): void {
    this.#inOrder(async () => {
      try {
        await this.#bus.keepDm(nameKey(name), dm, MAX_HELD_DMS);
      } catch (error) {
        this.#shared.log(
          `Cannot keep a private message for ${name}: ${
            error instanceof Error ? error.message : error
          }`,
        );
      }
    });
  }

  /**
   * Takes the private messages kept for a session (after the writes asked
   * for before, so none kept meanwhile is missed).
   *
   * @param name The session's name.
   * @returns The messages, oldest first.
   */
  async takeKept(name: string): Promise<DmEvent[]> {
    let kept: DmEvent[] = [];
    await this.#inOrder(async () => {
      kept = await this.#bus.takeDms(nameKey(name));
    });
    return kept;
  }

  /**
   * Tells the others the bans changed.
   */
  bansChanged(): void {
    this.#send({ kind: "bans", node: this.node });
  }

  /**
   * Asks the node of someone to end their session.
   *
   * @param name Their name.
   * @param reason Kicked or banned.
   * @param message What they are told.
   */
  eject(name: string, reason: "kicked" | "banned", message: string): void {
    this.#send({ kind: "drop", node: this.node, name, reason, message });
  }

  /**
   * Runs writes to the database one after another, in the order they were
   * asked for: a join and the leave after it reach the other nodes (and the
   * table) in that order, though the client has several connections.
   */
  #inOrder(write: () => Promise<unknown>, rethrow = false): Promise<void> {
    const next = this.#writes.then(write);
    this.#writes = next.then(() => {}, () => {});
    return rethrow ? next.then(() => {}) : next.then(() => {}, () => {});
  }

  #send(event: ClusterEvent): void {
    this.#inOrder(() => this.#bus.publish(event), true).catch((error) => {
      this.#shared.log(
        `Cannot tell the other nodes: ${error instanceof Error ? error.message : error}`,
      );
    });
  }

  /**
   * An event from the bus.
   *
   * @param event The event.
   */
  receive(event: ClusterEvent): void {
    if (event.node === this.node) return;
    this.#apply(event);
  }

  #apply(event: ClusterEvent): void {
    const shared = this.#shared;
    const hooks = this.#hooks;
    switch (event.kind) {
      case "join": {
        const key = nameKey(event.name);
        let remote = this.#remote.get(key);
        if (remote === undefined) {
          this.#remote.set(
            key,
            remote = {
              name: event.name,
              node: event.node,
              fingerprint: undefined,
              rooms: new Set(),
              away: "",
              ops: new Set(),
            },
          );
        }
        remote.rooms.add(event.room);
        if (event.op === true) remote.ops.add(event.room);
        this.#announce(
          event.room,
          new Outbound({
            type: "join",
            room: event.room,
            name: event.name,
            ...(event.op === true ? { op: true } : {}),
            ts: event.ts,
          }),
        );
        // The room's settings live in the nodes that have it: the joiner's node learns them.
        const room = hooks.loaded(event.room);
        if (room?.topicLocked === true && room.members.size > 0) this.mode(room.name, true);
        break;
      }
      case "leave": {
        const remote = this.#remote.get(nameKey(event.name));
        remote?.rooms.delete(event.room);
        remote?.ops.delete(event.room);
        this.#announce(
          event.room,
          new Outbound({
            type: "leave",
            room: event.room,
            name: event.name,
            reason: event.reason,
            ...(typeof event.message === "string" ? { message: event.message } : {}),
            ...(typeof event.by === "string" ? { by: event.by } : {}),
            ts: event.ts,
          }),
        );
        break;
      }
      case "quit": {
        this.#remote.delete(nameKey(event.name));
        for (const room of event.rooms) {
          this.#announce(
            room,
            new Outbound({
              type: "leave",
              room,
              name: event.name,
              reason: event.reason,
              ...(typeof event.message === "string" ? { message: event.message } : {}),
              ts: event.ts,
            }),
          );
        }
        break;
      }
      case "nick": {
        const remote = this.#remote.get(nameKey(event.from));
        this.#remote.delete(nameKey(event.from));
        this.#remote.set(nameKey(event.to), {
          name: event.to,
          node: event.node,
          fingerprint: remote?.fingerprint,
          rooms: remote?.rooms ?? new Set(event.rooms),
          away: remote?.away ?? "",
          ops: remote?.ops ?? new Set(),
        });
        const seen = new Set<Session>();
        for (const name of event.rooms) {
          for (const member of hooks.loaded(name)?.members ?? []) seen.add(member);
        }
        shared.broadcast(
          seen,
          new Outbound({ type: "nick", from: event.from, to: event.to, ts: event.ts }),
        );
        break;
      }
      case "topic": {
        const room = hooks.loaded(event.room);
        if (room === undefined) break;
        hooks.retitle(room, event.topic);
        shared.broadcast(
          room.members,
          new Outbound({
            type: "topic",
            room: event.room,
            topic: event.topic,
            from: event.from,
            ts: event.ts,
          }),
        );
        break;
      }
      case "away": {
        const remote = this.#remote.get(nameKey(event.name));
        if (remote !== undefined) remote.away = event.message;
        const out = new Outbound({
          type: "away",
          name: event.name,
          message: event.message,
          ts: event.ts,
        });
        const told = new Set<Session>();
        for (const name of event.rooms) {
          for (const member of hooks.loaded(name)?.members ?? []) {
            if (told.has(member)) continue;
            told.add(member);
            if (member.understands("away")) member.peer?.deliver(out);
          }
        }
        break;
      }
      case "kick": {
        const local = hooks.local(nameKey(event.name));
        const room = hooks.loaded(event.room);
        if (local !== undefined && room !== undefined && room.members.has(local)) {
          hooks.kick(local, room, event.by, event.message);
        }
        break;
      }
      case "mode": {
        hooks.loaded(event.room)?.lockTopic(event.topicLock);
        break;
      }
      case "dm": {
        const target = hooks.local(nameKey(event.dm.to));
        if (target === undefined) break;
        if (target.peer === undefined) shared.keep(target, event.dm);
        else target.peer.deliver(new Outbound(event.dm));
        break;
      }
      case "takeover": {
        const key = nameKey(event.name);
        const local = hooks.local(key);
        if (local !== undefined) hooks.drop(local);
        const remote = this.#remote.get(key);
        if (remote !== undefined) remote.node = event.node;
        break;
      }
      case "drop": {
        const local = hooks.local(nameKey(event.name));
        if (local !== undefined) hooks.eject(local, event.reason, event.message);
        break;
      }
      case "bans":
        hooks.bans();
        break;
    }
  }

  /** Announces a join or leave to the members here, unless the room is too crowded. */
  #announce(name: string, out: Outbound): void {
    const room = this.#hooks.loaded(name);
    if (room === undefined) return;
    if (room.members.size + this.count(name) <= this.#shared.limits.maxPresence) {
      this.#shared.broadcast(room.members, out);
    }
  }

  /** Stops the heartbeat. */
  close(): void {
    for (const timer of this.#timers) clearInterval(timer);
  }
}
