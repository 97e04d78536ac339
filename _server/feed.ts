/**
 * Room messages when several servers share the storage: every node delivers
 * a room's messages to its own members in sequence order, whoever sent them.
 * A notification only wakes a node, which reads `seq > last` for the room
 * from the storage; a slow poll does the same, so a notification that never
 * came only delays a message, it never makes a gap. A node delivers its own
 * committed messages at once when they are next in line, and otherwise
 * when the catch-up reaches them.
 *
 * @module
 */

import type { MessageEvent, RequestId } from "../protocol/frames.ts";
import { Outbound } from "./outbound.ts";
import type { Room, Session } from "./session.ts";
import type { Shared } from "./shared.ts";
import type { ClusterBus, Committed, StoredMessage } from "./storage.ts";

/** Most messages read in one catch-up step. */
const CATCH_UP_PAGE = 500;
/** How often rooms are checked for messages no notification announced, in ms. */
const POLL_MS = 2000;

/** A send of this node, committed, waiting for its turn to be delivered. */
export interface OwnSend {
  /** Who sent it. */
  session: Session;
  /** Its room. */
  room: Room;
  /** The request's id. */
  id: RequestId;
  /** The message as stored. */
  stored: StoredMessage;
}

/**
 * The message event of a stored message.
 *
 * @param stored The message.
 * @param seq Its number.
 * @returns The event.
 */
function eventOf(stored: StoredMessage, seq: number): MessageEvent {
  const { room, from, text, ts } = stored;
  const event: MessageEvent = stored.action
    ? { type: "message", room, from, text, ts, seq, action: true }
    : { type: "message", room, from, text, ts, seq };
  if (stored.notice === true) event.notice = true;
  return event;
}

/** Delivers the rooms' messages in order, from every node. */
export class Feed {
  #shared: Shared;
  #bus: ClusterBus;
  #loaded: (name: string) => Room | undefined;
  #all: () => Iterable<Room>;
  /** Own sends committed but not yet delivered, by room, by number. */
  #own = new Map<Room, Map<number, OwnSend>>();
  /** Rooms with news, and the last number announced. */
  #dirty = new Map<string, number>();
  #scheduled = false;
  #poll: ReturnType<typeof setInterval> | undefined;
  #polling = false;

  /**
   * Starts listening.
   *
   * @param shared The core's shared state.
   * @param bus The shared storage.
   * @param rooms The rooms loaded here, by name, and all of them.
   */
  constructor(
    shared: Shared,
    bus: ClusterBus,
    rooms: { loaded: (name: string) => Room | undefined; all: () => Iterable<Room> },
  ) {
    this.#shared = shared;
    this.#bus = bus;
    this.#loaded = rooms.loaded;
    this.#all = rooms.all;
    this.#poll = setInterval(() => this.#check(), POLL_MS);
  }

  /**
   * A room has messages up to `seq`, on some node.
   *
   * @param name The room.
   * @param seq Its last number.
   */
  wake(name: string, seq: number): void {
    const room = this.#loaded(name);
    if (room === undefined || seq <= room.seq) return;
    this.#dirty.set(name, Math.max(seq, this.#dirty.get(name) ?? 0));
    if (this.#scheduled) return;
    this.#scheduled = true;
    // Plain sends need not wait for it: the feed delivers in seq order whatever comes first.
    this.#shared.runCommit(async () => {
      this.#scheduled = false;
      const dirty = [...this.#dirty];
      this.#dirty.clear();
      for (const [name, seq] of dirty) {
        const room = this.#loaded(name);
        // This node's own commit, in flight when the notification came, may have delivered it.
        if (room !== undefined && seq > room.seq) await this.#catchUp(room);
      }
    });
  }

  /** Checks every loaded room against the storage (after listening again, and now and then). */
  #check(): void {
    if (this.#polling) return;
    const rooms = [...this.#all()].map((room) => room.name);
    if (rooms.length === 0) return;
    this.#polling = true;
    this.#bus.tops(rooms).then((tops) => {
      for (const [name, seq] of tops) this.wake(name, seq);
    }).catch(() => {
      // The storage is away: the next check tries again.
    }).finally(() => {
      this.#polling = false;
    });
  }

  /** Listening again: anything may have been missed. */
  ready(): void {
    this.#check();
  }

  /** Reads and delivers a room's messages after the last one delivered here. */
  async #catchUp(room: Room): Promise<void> {
    for (;;) {
      let messages: MessageEvent[];
      try {
        messages = await this.#shared.store.after(room.name, room.seq, CATCH_UP_PAGE, false);
      } catch (error) {
        this.#shared.log(
          `Cannot read the new messages of ${room.name}: ${
            error instanceof Error ? error.message : error
          }`,
        );
        return;
      }
      for (const message of messages) {
        // Another catch-up may have delivered it meanwhile.
        if (message.seq > room.seq) this.#deliver(room, message.seq, message);
      }
      if (messages.length < CATCH_UP_PAGE) return;
    }
  }

  #deliver(room: Room, seq: number, message: MessageEvent | undefined): void {
    room.rewind(seq);
    const own = this.#own.get(room);
    const mine = own?.get(seq);
    const shared = this.#shared;
    if (mine === undefined) {
      if (message !== undefined) shared.broadcast(room.members, new Outbound(message));
      return;
    }
    own!.delete(seq);
    if (own!.size === 0) this.#own.delete(room);
    shared.broadcast(room.members, new Outbound(eventOf(mine.stored, seq)), mine.session);
    shared.ack(mine.session, {
      type: "ack",
      id: mine.id,
      room: room.name,
      seq,
      ts: mine.stored.ts,
    });
  }

  /**
   * Delivers the sends of this node that were just committed (and
   * acknowledges them): at once when they are next, else once the messages
   * before them (from other nodes) have been read and delivered.
   *
   * @param sends The sends, in the order they were committed.
   * @param committed Their numbers.
   */
  async committed(sends: readonly OwnSend[], committed: readonly Committed[]): Promise<void> {
    const behind = new Set<Room>();
    sends.forEach((send, index) => {
      const { seq, ts, duplicate } = committed[index]!;
      const room = send.room;
      if (duplicate === true) {
        this.#shared.ack(send.session, {
          type: "ack",
          id: send.id,
          room: room.name,
          seq,
          ts,
          duplicate: true,
        });
        return;
      }
      if (seq <= room.seq) {
        // A catch-up read it first and delivered it to everyone: only the answer is left.
        this.#shared.ack(send.session, { type: "ack", id: send.id, room: room.name, seq, ts });
        return;
      }
      let own = this.#own.get(room);
      if (own === undefined) this.#own.set(room, own = new Map());
      own.set(seq, send);
      if (seq === room.seq + 1 && !behind.has(room)) this.#deliver(room, seq, undefined);
      else behind.add(room);
    });
    for (const room of behind) await this.#catchUp(room);
  }

  /** Stops polling. */
  close(): void {
    clearInterval(this.#poll);
  }
}
