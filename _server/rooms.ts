/**
 * The rooms: who is in which, joining and leaving, topics, and presence.
 *
 * @module
 */

import type {
  AckFrame,
  AwayFrame,
  JoinFrame,
  KickFrame,
  LeaveReason,
  ModeFrame,
  PartFrame,
  RequestId,
  RoomInfo,
  TopicFrame,
  WhoFrame,
} from "../protocol/frames.ts";
import { LOBBY } from "../protocol/limits.ts";
import { isRoomName, nameKey } from "../protocol/names.ts";
import type { History } from "./history.ts";
import { Outbound } from "./outbound.ts";
import { type Registered, Room, type Session } from "./session.ts";
import { REASON_TOO_LONG, Shared } from "./shared.ts";
import type { Storage } from "./storage.ts";

/** Sorts names the same way whatever the server's locale. */
const byName = new Intl.Collator("und");

/** A room as `welcome` describes it. */
export interface RoomState {
  /** The room's name. */
  name: string;
  /** Its last sequence number. */
  seq: number;
  /** Its topic. */
  topic: string;
  /** Its members (at most `maxPresence`; only the one told in a crowded room). */
  members: string[];
  /** How many are in it, when it is crowded. */
  count?: number;
}

/** The rooms of one server: those with members, and `#lobby`. */
export class Rooms {
  #shared: Shared;
  #history: History;
  #rooms = new Map<string, Room>();

  /**
   * Creates the rooms with only `#lobby`.
   *
   * @param shared The core's shared state.
   * @param history Where joiners' replays come from.
   */
  constructor(shared: Shared, history: History, lobby: Room) {
    this.#shared = shared;
    this.#history = history;
    this.#rooms.set(LOBBY, lobby);
  }

  /** `#lobby`, which is always loaded. */
  get lobby(): Room {
    return this.#rooms.get(LOBBY) as Room;
  }

  /**
   * Loads a room from storage.
   *
   * @param storage Where it is kept.
   * @param name The room's name.
   * @returns The room, with nobody in it.
   */
  static async load(storage: Storage, name: string): Promise<Room> {
    const [seq, topic] = await Promise.all([storage.lastSeq(name), storage.topic(name)]);
    return new Room(name, seq, topic?.topic ?? "");
  }

  /** A room, loaded from storage when nobody is in it yet. */
  async #room(name: string): Promise<Room> {
    const loaded = await Rooms.load(this.#shared.store, name);
    // Someone may have joined it meanwhile.
    let room = this.#rooms.get(name);
    if (room === undefined) this.#rooms.set(name, room = loaded);
    return room;
  }

  /**
   * A room a session is in, or refuses the request.
   *
   * @param session Who asks.
   * @param id The request's id.
   * @param name The room's name.
   * @returns The room, or `undefined` when refused.
   */
  roomOf(session: Session, id: RequestId, name: string): Room | undefined {
    // A room that exists has a valid name: skip the check on the hot path.
    const known = this.#rooms.get(name);
    if (known !== undefined && session.rooms.includes(known)) return known;
    if (!isRoomName(name)) return this.#invalid(session, id, name);
    this.#shared.fail(session, id, "not_in_room", `You are not in "${name}"`);
    return undefined;
  }

  /** Refuses a request naming a room that cannot exist. */
  #invalid(session: Session, id: RequestId, name: string): undefined {
    this.#shared.fail(
      session,
      id,
      "invalid_room",
      `Room name ${JSON.stringify(name)} is not valid`,
    );
    return undefined;
  }

  /** Any valid room, loaded if needed, or refuses the request. */
  async #anyRoom(session: Session, id: RequestId, name: string): Promise<Room | undefined> {
    const known = this.#rooms.get(name);
    if (known !== undefined) return known;
    if (!isRoomName(name)) return this.#invalid(session, id, name);
    return await this.#room(name);
  }

  /**
   * A room the session is in, without answering (for transfers).
   *
   * @param session Who asks.
   * @param name The room's name.
   * @returns The room, if the session is in it.
   */
  joined(session: Session, name: string): Room | undefined {
    const room = this.#rooms.get(name);
    return room !== undefined && session.rooms.includes(room) ? room : undefined;
  }

  /**
   * A room loaded here (someone here is in it, or it is `#lobby`).
   *
   * @param name The room's name.
   * @returns The room, if loaded.
   */
  loaded(name: string): Room | undefined {
    return this.#rooms.get(name);
  }

  /**
   * Every room loaded here.
   *
   * @returns The rooms.
   */
  all(): Iterable<Room> {
    return this.#rooms.values();
  }

  /** Drops an empty room from memory (its history and topic stay stored). */
  #forget(room: Room): void {
    if (room.members.size === 0 && room.name !== LOBBY) this.#rooms.delete(room.name);
  }

  /**
   * Puts a session that just got its name into `#lobby`.
   *
   * @param session The session.
   * @returns The lobby.
   */
  enterLobby(session: Registered): Room {
    const lobby = this.lobby;
    const ts = new Date().toISOString();
    if (!session.transient) {
      this.#presence(lobby, new Outbound({ type: "join", room: LOBBY, name: session.name, ts }));
    }
    session.enter(lobby);
    this.#shared.cluster?.joined(session, LOBBY);
    return lobby;
  }

  /**
   * Announces that a session left its rooms.
   *
   * @param name Its name.
   * @param rooms The rooms it was in.
   * @param reason Why it left.
   * @param quiet Not announced (a transient session).
   * @param message The reason the person gave, if any.
   */
  left(name: string, rooms: Room[], reason: LeaveReason, quiet = false, message?: string): void {
    const ts = new Date().toISOString();
    const said = message === undefined ? {} : { message };
    for (const room of rooms) {
      if (!quiet) {
        this.#presence(
          room,
          new Outbound({ type: "leave", room: room.name, name, reason, ...said, ts }),
        );
      }
      this.#forget(room);
    }
    this.#shared.cluster?.quit(name, rooms.map((room) => room.name), reason, message);
  }

  /**
   * Handles `join`.
   *
   * @param session Who joins.
   * @param frame The request.
   */
  async join(session: Registered, frame: JoinFrame): Promise<void> {
    const shared = this.#shared;
    const max = shared.limits.maxRoomsPerUser;
    const tooMany = () =>
      shared.fail(
        session,
        frame.id,
        "too_many_rooms",
        `You are in ${session.rooms.length} rooms, the most this server allows; /leave one first`,
      );
    if (!session.inRoom(frame.room) && session.rooms.length >= max) return tooMany();
    const room = await this.#anyRoom(session, frame.id, frame.room);
    if (room === undefined) return;
    if (!session.rooms.includes(room)) {
      if (session.rooms.length >= max) return tooMany();
      // Whoever creates a room (joins it empty) is its operator; #lobby has only the server's.
      const remote = shared.cluster?.count(room.name) ?? 0;
      if (room.members.size === 0 && remote === 0 && room.name !== LOBBY && !session.transient) {
        room.operators.add(session);
      }
      if (!session.transient) {
        this.#presence(
          room,
          new Outbound({
            type: "join",
            room: room.name,
            name: session.name,
            ...(this.isOperator(room, session) ? { op: true } : {}),
            ts: new Date().toISOString(),
          }),
        );
      }
      // Entered first, so a plain-text user reads the room's history untagged.
      session.enter(room);
      shared.cluster?.joined(session, room.name);
      await this.#history.replay(session, room, frame.history ?? shared.options.historyOnJoin);
    }
    session.switchTo(room);
    const ack: AckFrame = {
      type: "ack",
      id: frame.id,
      room: room.name,
      seq: room.seq,
      topic: room.topic,
      names: this.namesIn(room, session),
    };
    const count = this.countIn(room, session);
    if (count !== undefined) ack.count = count;
    const ops = this.operatorsIn(room);
    if (ops !== undefined) ack.ops = ops;
    shared.ack(session, ack);
  }

  /**
   * Whether a session is an operator of a room: it created the room, or is
   * one of the server's operators.
   *
   * @param room The room.
   * @param session Who.
   * @returns Whether it is.
   */
  isOperator(room: Room, session: Session): boolean {
    return room.operators.has(session) || this.#shared.isOperator(session);
  }

  /**
   * The names of a room's operators among its first `maxPresence` members,
   * sorted, or `undefined` when it has none.
   *
   * @param room The room.
   * @returns The names.
   */
  operatorsIn(room: Room): string[] | undefined {
    let ops: string[] | undefined;
    let seen = 0;
    const max = this.#shared.limits.maxPresence;
    for (const member of room.members) {
      if (++seen > max) break;
      if (member.name !== undefined && this.isOperator(room, member)) {
        (ops ??= []).push(member.name);
      }
    }
    for (const name of this.#shared.cluster?.opsIn(room.name) ?? []) {
      if (++seen > max) break;
      (ops ??= []).push(name);
    }
    return ops?.sort(byName.compare);
  }

  /**
   * Handles `mode`: tells a room's settings, or (its operators) changes them.
   *
   * @param session Who asks.
   * @param frame The request.
   */
  mode(session: Registered, frame: ModeFrame): void {
    const room = this.roomOf(session, frame.id, frame.room);
    if (room === undefined) return;
    if (frame.topicLock !== undefined) {
      if (!this.isOperator(room, session)) {
        return this.#shared.fail(
          session,
          frame.id,
          "not_operator",
          `Only the operators of "${room.name}" can change its settings`,
        );
      }
      room.lockTopic(frame.topicLock);
      this.#shared.cluster?.mode(room.name, frame.topicLock);
    }
    const ack: AckFrame = {
      type: "ack",
      id: frame.id,
      room: room.name,
      topicLock: room.topicLocked,
    };
    const ops = this.operatorsIn(room);
    if (ops !== undefined) ack.ops = ops;
    this.#shared.ack(session, ack);
  }

  /**
   * Handles `kick` with a room: an operator of the room removes someone from
   * it. They, and the others in the room, see them leave, kicked.
   *
   * @param session The operator.
   * @param frame The order.
   */
  kick(session: Registered, frame: KickFrame & { room: string }): void {
    const shared = this.#shared;
    const room = this.roomOf(session, frame.id, frame.room);
    if (room === undefined) return;
    if (!this.isOperator(room, session)) {
      return shared.fail(
        session,
        frame.id,
        "not_operator",
        `Only the operators of "${room.name}" can remove people from it`,
      );
    }
    const key = nameKey(frame.name.normalize("NFC"));
    let target: Registered | undefined;
    for (const member of room.members) {
      if (member.registered() && nameKey(member.name) === key) target = member;
    }
    // Someone in the room on another node: their node removes them, and tells everyone.
    const remote = target === undefined
      ? shared.cluster?.namesIn(room.name).find((name) => nameKey(name) === key)
      : undefined;
    if (target === undefined && remote === undefined) {
      return shared.fail(
        session,
        frame.id,
        "no_such_user",
        `Nobody called "${frame.name}" is in "${room.name}"`,
      );
    }
    const reason = Shared.reason(frame.reason);
    if (reason === null) return shared.fail(session, frame.id, "invalid_text", REASON_TOO_LONG);
    if (target !== undefined) this.remove(room, target, session.name, reason);
    else shared.cluster!.kick(room.name, remote!, session.name, reason);
    shared.log(`${session.name} removed ${target?.name ?? remote} from ${room.name}`);
    shared.ack(session, { type: "ack", id: frame.id, room: room.name });
  }

  /**
   * Removes someone from a room, as an operator ordered: they, and the
   * others in the room (on every node), see them leave, kicked.
   *
   * @param room The room.
   * @param target Who is removed.
   * @param by The operator's name.
   * @param reason The reason given, if any.
   */
  remove(room: Room, target: Registered, by: string, reason: string | undefined): void {
    const out = new Outbound({
      type: "leave",
      room: room.name,
      name: target.name,
      reason: "kicked",
      ...(reason === undefined ? {} : { message: reason }),
      by,
      ts: new Date().toISOString(),
    });
    // Told before leaving, so that the one removed learns it too.
    this.#shared.broadcast(room.members, out);
    target.exit(room);
    this.#forget(room);
    this.#shared.cluster?.parted(target, room.name, reason, by);
  }

  /**
   * Handles `part`.
   *
   * @param session Who leaves.
   * @param frame The request.
   */
  part(session: Registered, frame: PartFrame): void {
    const room = this.roomOf(session, frame.id, frame.room);
    if (room === undefined) return;
    const message = Shared.reason(frame.reason);
    if (message === null) {
      return this.#shared.fail(session, frame.id, "invalid_text", REASON_TOO_LONG);
    }
    session.exit(room);
    const ts = new Date().toISOString();
    const said = message === undefined ? {} : { message };
    if (!session.transient) {
      this.#presence(
        room,
        new Outbound({
          type: "leave",
          room: room.name,
          name: session.name,
          reason: "part",
          ...said,
          ts,
        }),
      );
    }
    this.#forget(room);
    this.#shared.cluster?.parted(session, room.name, message);
    this.#shared.ack(session, { type: "ack", id: frame.id, room: room.name });
  }

  /**
   * Handles `who`.
   *
   * @param session Who asks.
   * @param frame The request.
   */
  who(session: Registered, frame: WhoFrame): void {
    const room = this.roomOf(session, frame.id, frame.room ?? session.room ?? LOBBY);
    if (room === undefined) return;
    const ack: AckFrame = { type: "ack", id: frame.id, room: room.name, names: this.namesIn(room) };
    const away = this.awayIn(room);
    if (away !== undefined) ack.awayMessages = away;
    const ops = this.operatorsIn(room);
    if (ops !== undefined) ack.ops = ops;
    this.#shared.ack(session, ack);
  }

  /**
   * Handles `away`: marks the user away with a message, or back.
   *
   * @param session Who.
   * @param frame The request.
   */
  away(session: Registered, frame: AwayFrame): void {
    const message = (frame.message ?? "").trim();
    if (Shared.topicTooLong(message)) {
      return this.#shared.fail(
        session,
        frame.id,
        "invalid_text",
        "Away message is longer than 300 characters",
      );
    }
    const changed = session.away !== message;
    session.setAway(message);
    this.#shared.ack(session, { type: "ack", id: frame.id, away: message });
    if (changed && !session.transient) {
      this.#awayNotify(session, message);
      this.#shared.cluster?.away(session, message);
    }
  }

  /** Tells the members of a session's rooms who asked for it that it went away or came back. */
  #awayNotify(session: Registered, message: string): void {
    const out = new Outbound({
      type: "away",
      name: session.name,
      message,
      ts: new Date().toISOString(),
    });
    const told = new Set<Session>([session]);
    for (const room of session.rooms) {
      for (const member of room.members) {
        if (told.has(member)) continue;
        told.add(member);
        if (member.understands("away")) member.peer?.deliver(out);
      }
    }
  }

  /**
   * The away messages of a room's members who are away (among the first
   * `maxPresence`), or `undefined` when nobody is.
   *
   * @param room The room.
   * @returns Their messages, by name.
   */
  awayIn(room: Room): Record<string, string> | undefined {
    let away: Record<string, string> | undefined;
    let seen = 0;
    const max = this.#shared.limits.maxPresence;
    for (const member of room.members) {
      if (++seen > max) break;
      if (member.name !== undefined && member.away !== "") (away ??= {})[member.name] = member.away;
    }
    for (const [name, message] of Object.entries(this.#shared.cluster?.awayIn(room.name) ?? {})) {
      if (++seen > max) break;
      (away ??= {})[name] = message;
    }
    return away;
  }

  /**
   * Handles `topic`: reads it, or sets it.
   *
   * @param session Who asks.
   * @param frame The request.
   */
  async topic(session: Registered, frame: TopicFrame): Promise<void> {
    const shared = this.#shared;
    const room = this.roomOf(session, frame.id, frame.room);
    if (room === undefined) return;
    if (frame.topic !== undefined) {
      if (room.topicLocked && !this.isOperator(room, session)) {
        return shared.fail(
          session,
          frame.id,
          "not_operator",
          `Only the operators of "${room.name}" can set its topic`,
        );
      }
      const topic = frame.topic.trim();
      if (Shared.topicTooLong(topic)) {
        return shared.fail(
          session,
          frame.id,
          "invalid_text",
          "Topic is longer than 300 characters",
        );
      }
      const ts = new Date().toISOString();
      const from = session.name;
      try {
        await shared.store.setTopic(room.name, { topic, by: from, ts });
      } catch {
        return shared.fail(
          session,
          frame.id,
          "storage_failed",
          "The server could not store the topic; try again",
        );
      }
      room.retitle(topic);
      shared.cluster?.topic(room.name, topic, from, ts);
      shared.broadcast(
        room.members,
        new Outbound({ type: "topic", room: room.name, topic, from, ts }),
        session,
      );
    }
    shared.ack(session, { type: "ack", id: frame.id, room: room.name, topic: room.topic });
  }

  /**
   * The rooms with members (on any node), and `#lobby`, sorted.
   *
   * @returns Their names, sizes and topics (later, with other nodes).
   */
  list(): RoomInfo[] | Promise<RoomInfo[]> {
    const cluster = this.#shared.cluster;
    if (cluster === undefined) return this.#list();
    // Rooms someone on another node is in: their topics are read.
    const elsewhere = [...cluster.rooms()].filter((name) => !this.#rooms.has(name));
    return Promise.all(elsewhere.map((name) => Rooms.load(this.#shared.store, name)))
      .then((rooms) => this.#list(rooms));
  }

  #list(elsewhere: Room[] = []): RoomInfo[] {
    const cluster = this.#shared.cluster;
    const remote = (room: Room) => cluster?.count(room.name) ?? 0;
    return [...this.#rooms.values(), ...elsewhere]
      .filter((room) => room.members.size + remote(room) > 0 || room.name === LOBBY)
      .map((room) => ({
        name: room.name,
        members: room.members.size + remote(room),
        topic: room.topic,
      }))
      .sort((a, b) => byName.compare(a.name, b.name));
  }

  /**
   * Puts a session that goes on from another node back into its rooms,
   * without announcing it (the others see it there already).
   *
   * @param session The session.
   * @param names Its rooms.
   * @param ops The rooms it is an operator of.
   */
  async reenter(
    session: Registered,
    names: readonly string[],
    ops: readonly string[] = [],
  ): Promise<void> {
    for (const name of [LOBBY, ...names]) {
      if (!isRoomName(name) || session.inRoom(name)) continue;
      const room = await this.#room(name);
      session.enter(room);
      if (name !== LOBBY && ops.includes(name)) room.operators.add(session);
    }
    session.switchTo(this.lobby);
  }

  /**
   * A room as `welcome` describes it.
   *
   * @param room The room.
   * @returns Its state.
   */
  state(room: Room, you?: Session): RoomState {
    const state: RoomState = {
      name: room.name,
      seq: room.seq,
      topic: room.topic,
      members: this.namesIn(room, you),
    };
    const count = you === undefined ? undefined : this.countIn(room, you);
    if (count !== undefined) state.count = count;
    return state;
  }

  /**
   * At most `maxPresence` names, sorted. Told to someone entering a room
   * (`you`), a crowded room (more members than that) lists only them: its
   * joins and leaves are not announced, so a list would go stale at once, and
   * a crowd entering would otherwise cost the square of its size.
   *
   * @param room The room.
   * @param you Who enters the room, if the names are for them.
   * @returns The names.
   */
  namesIn(room: Room, you?: Session): string[] {
    const max = this.#shared.limits.maxPresence;
    if (you !== undefined) {
      if (this.#crowded(room, you)) {
        return you.name !== undefined && room.members.has(you) ? [you.name] : [];
      }
      // Not crowded: everyone, the one told included.
      return this.#names(room, max + 1);
    }
    return this.#names(room, max);
  }

  /** Up to `max` names of a room's members on every node, sorted. */
  #names(room: Room, max: number): string[] {
    const names: string[] = [];
    for (const member of room.members) {
      if (member.name !== undefined) names.push(member.name);
      if (names.length === max) break;
    }
    for (const name of this.#shared.cluster?.namesIn(room.name) ?? []) {
      if (names.length === max) break;
      names.push(name);
    }
    return names.sort(byName.compare);
  }

  /** Whether a room has more members, on every node, than presence is announced for. */
  #crowded(room: Room, you?: Session): boolean {
    return this.#others(room, you) > this.#shared.limits.maxPresence;
  }

  /** How many are in a room on every node, `you` not counted. */
  #others(room: Room, you?: Session): number {
    const remote = this.#shared.cluster?.count(room.name) ?? 0;
    const self = you !== undefined && room.members.has(you) ? 1 : 0;
    return room.members.size - self + remote;
  }

  /**
   * How many are in a room, told to someone entering it when it is crowded
   * (its names list only them); `undefined` when it is not.
   *
   * @param room The room.
   * @param you Who enters it.
   * @returns The count, or `undefined`.
   */
  countIn(room: Room, you: Session): number | undefined {
    if (!this.#crowded(room, you)) return undefined;
    return this.#others(room, you) + (room.members.has(you) ? 1 : 0);
  }

  /** Announces a join or leave, unless the room is too crowded for presence. */
  #presence(room: Room, out: Outbound): void {
    if (!this.#crowded(room)) this.#shared.broadcast(room.members, out);
  }
}
