/**
 * Room messages: a send is stored before anyone hears of it. Sends that
 * arrive in the same turn of the event loop are committed together, then
 * delivered and acknowledged; history is pruned as it grows.
 *
 * @module
 */

import type { HistoryFrame, RequestId, SendFrame } from "../protocol/frames.ts";
import { nameKey } from "../protocol/names.ts";
import type { History } from "./history.ts";
import { Outbound } from "./outbound.ts";
import type { Rooms } from "./rooms.ts";
import type { Registered, Room, Session } from "./session.ts";
import type { Shared } from "./shared.ts";
import type { StoredMessage } from "./store.ts";

/** Prune history after this many stored messages. */
const PRUNE_EVERY = 10_000;

interface PendingSend {
  session: Session;
  room: Room;
  id: RequestId;
  stored: StoredMessage;
  out: Outbound;
}

/** The batch of sends waiting to be stored, and the history requests. */
export class Messages {
  #shared: Shared;
  #rooms: Rooms;
  #history: History;
  #pending: PendingSend[] = [];
  #pendingKeys = new Map<string, PendingSend>();
  #commitScheduled = false;
  #storedSincePrune = 0;
  #prunedAt = performance.now();

  /**
   * Creates the batch.
   *
   * @param shared The core's shared state.
   * @param rooms The rooms.
   * @param history The history reader.
   */
  constructor(shared: Shared, rooms: Rooms, history: History) {
    this.#shared = shared;
    this.#rooms = rooms;
    this.#history = history;
  }

  /**
   * Handles `send`: the message joins the batch of this turn.
   *
   * @param session Who sends.
   * @param frame The request.
   */
  send(session: Registered, frame: SendFrame): void {
    const room = this.#rooms.roomOf(session, frame.id, frame.room);
    if (room === undefined || !this.#shared.checkText(session, frame.id, frame.text)) return;
    const from = session.name;
    const key = frame.key === undefined ? undefined : `${nameKey(from)}:${frame.key}`;
    if (key !== undefined) {
      // The same key waiting in this batch: settle it first, so the answer is the truth.
      if (this.#pendingKeys.has(`${room.name}\n${key}`)) this.commit();
      const stored = this.#shared.store.findKey(room.name, key);
      if (stored !== undefined) {
        // Already stored: answer as before (after the sends before it), store nothing new.
        this.commit();
        const { seq, ts } = stored;
        return this.#shared.ack(session, {
          type: "ack",
          id: frame.id,
          room: room.name,
          seq,
          ts,
          duplicate: true,
        });
      }
    }
    const ts = new Date().toISOString();
    const seq = ++room.seq;
    const action = frame.action === true;
    const stored: StoredMessage = { room: room.name, seq, from, text: frame.text, ts, action, key };
    const out = new Outbound(
      action
        ? { type: "message", room: room.name, from, text: frame.text, ts, seq, action: true }
        : { type: "message", room: room.name, from, text: frame.text, ts, seq },
    );
    const entry: PendingSend = { session, room, id: frame.id, stored, out };
    this.#pending.push(entry);
    if (key !== undefined) this.#pendingKeys.set(`${room.name}\n${key}`, entry);
    if (!this.#commitScheduled) {
      this.#commitScheduled = true;
      queueMicrotask(() => {
        this.#commitScheduled = false;
        this.commit();
      });
    }
  }

  /**
   * Commits the sends waiting in the current batch, then delivers them and
   * their acknowledgements. Runs at the end of each event-loop turn, and
   * before anything that must see them.
   */
  commit(): void {
    if (this.#pending.length === 0) return;
    const shared = this.#shared;
    const store = shared.store;
    const batch = this.#pending;
    this.#pending = [];
    this.#pendingKeys.clear();
    try {
      store.append(batch.map((entry) => entry.stored));
    } catch (error) {
      for (const entry of batch) entry.room.seq = store.lastSeq(entry.room.name);
      shared.log(`Cannot store messages: ${error instanceof Error ? error.message : error}`);
      for (const entry of batch) {
        shared.fail(
          entry.session,
          entry.id,
          "storage_failed",
          "The server could not store the message; try again",
        );
      }
      return;
    }
    for (const entry of batch) {
      shared.broadcast(entry.room.members, entry.out, entry.session);
      const { room, seq, ts } = entry.stored;
      shared.ack(entry.session, { type: "ack", id: entry.id, room, seq, ts });
    }
    this.#storedSincePrune += batch.length;
    if (this.#storedSincePrune >= PRUNE_EVERY) {
      this.#storedSincePrune = 0;
      this.prune();
    }
  }

  /**
   * Whether history is due for pruning (every ten minutes).
   *
   * @returns Whether it is.
   */
  due(): boolean {
    const now = performance.now();
    if (now - this.#prunedAt < 600_000) return false;
    this.#prunedAt = now;
    return true;
  }

  /** Applies the retention policy while serving: a failure is logged, and serving goes on. */
  prune(): void {
    const { store } = this.#shared;
    try {
      store.prune(this.#shared.options.retention);
    } catch (error) {
      this.#shared.log(
        `Cannot remove old history from "${store.path}": ${
          error instanceof Error ? error.message : error
        }`,
      );
    }
  }

  /**
   * Handles `history`.
   *
   * @param session Who asks.
   * @param frame The request.
   */
  history(session: Registered, frame: HistoryFrame): void {
    const shared = this.#shared;
    const room = this.#rooms.roomOf(session, frame.id, frame.room);
    if (room === undefined) return;
    const max = shared.options.maxHistoryPage;
    const limit = Math.min(frame.limit ?? max, max);
    const messages = this.#history.page(room, { limit, after: frame.after, before: frame.before });
    if (messages === undefined) {
      return shared.fail(
        session,
        frame.id,
        "storage_failed",
        "The server could not read that history; it was logged",
      );
    }
    shared.ack(session, { type: "ack", id: frame.id, room: room.name, seq: room.seq, messages });
  }
}
