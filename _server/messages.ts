/**
 * Room messages: a send is stored before anyone hears of it. Sends that
 * arrive in the same turn of the event loop are committed together, then
 * delivered and acknowledged; history is pruned as it grows.
 *
 * @module
 */

import { clearImmediate, setImmediate } from "node:timers";
import type { HistoryFrame, MessageEvent, RequestId, SendFrame } from "../protocol/frames.ts";
import { nameKey } from "../protocol/names.ts";
import type { History } from "./history.ts";
import { Arenas, Outbound, OutboundRun } from "./outbound.ts";
import type { Rooms } from "./rooms.ts";
import type { Registered, Room, Session } from "./session.ts";
import type { Shared } from "./shared.ts";
import type { Feed } from "./feed.ts";
import type { StoredMessage } from "./storage.ts";
import { isoNow } from "./clock.ts";

/** Most messages committed in one transaction to a shared storage. */
const MAX_SHARED_BATCH = 1000;

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
  /** Where the encodings of delivered messages are laid, so a reader's stay adjacent. */
  #arenas = new Arenas();
  #rooms: Rooms;
  #history: History;
  #pending: PendingSend[] = [];
  #pendingKeys = new Map<string, PendingSend>();
  /** The commit of the batch being gathered, when one is scheduled. */
  #commitTimer: ReturnType<typeof setImmediate> | undefined;
  /** Steps waiting for the batch being gathered. */
  #pendingSteps: (() => void)[] = [];
  /** Batches closed and waiting for their commit, oldest first, with their steps. */
  #sealed: { batch: PendingSend[]; steps: (() => void)[] }[] = [];
  /** The commits in flight, if any, and the steps waiting for the batch being committed. */
  #inflight: Promise<void> | undefined;
  #inflightSteps: (() => void)[] = [];
  #storedSincePrune = 0;
  #prunedAt = performance.now();
  /** With a storage shared by several servers: it numbers the messages, the feed delivers them. */
  #feed: Feed | undefined;

  /**
   * Creates the batch.
   *
   * @param shared The core's shared state.
   * @param rooms The rooms.
   * @param history The history reader.
   * @param feed With a shared storage, what delivers the committed messages.
   */
  constructor(shared: Shared, rooms: Rooms, history: History, feed?: Feed) {
    this.#shared = shared;
    this.#rooms = rooms;
    this.#history = history;
    this.#feed = feed;
  }

  /**
   * Handles `send`: the message joins the batch of this turn.
   *
   * @param session Who sends.
   * @param frame The request.
   */
  send(session: Registered, frame: SendFrame): Promise<void> | undefined {
    const room = this.#rooms.roomOf(session, frame.id, frame.room);
    if (room === undefined || !this.#shared.checkText(session, frame.id, frame.text)) return;
    if (frame.key === undefined) return this.#queue(session, room, frame, undefined);
    return this.#sendOnce(session, room, frame, `${nameKey(session.name)}:${frame.key}`);
  }

  /** A send with an idempotency key: answered as before if it was stored already. */
  async #sendOnce(session: Registered, room: Room, frame: SendFrame, key: string): Promise<void> {
    // The same key waiting in this batch: settle it first, so the answer is the truth.
    if (this.#pendingKeys.has(`${room.name}\n${key}`)) await this.commit();
    const stored = await this.#shared.store.findKey(room.name, key);
    if (stored !== undefined) {
      // Already stored: answer as before (after the sends before it), store nothing new.
      await this.commit();
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
    this.#queue(session, room, frame, key);
  }

  #queue(session: Registered, room: Room, frame: SendFrame, key: string | undefined): undefined {
    const from = session.name;
    const ts = isoNow();
    // A shared storage numbers messages as it commits them.
    const seq = this.#feed === undefined ? room.next() : 0;
    const action = frame.action === true;
    const stored: StoredMessage = { room: room.name, seq, from, text: frame.text, ts, action, key };
    if (frame.notice === true) stored.notice = true;
    const event: MessageEvent = action
      ? { type: "message", room: room.name, from, text: frame.text, ts, seq, action: true }
      : { type: "message", room: room.name, from, text: frame.text, ts, seq };
    if (frame.notice === true) event.notice = true;
    const out = new Outbound(event);
    const entry: PendingSend = { session, room, id: frame.id, stored, out };
    this.#pending.push(entry);
    if (key !== undefined) this.#pendingKeys.set(`${room.name}\n${key}`, entry);
    // Committed once the reads that are ready now have been handled (`setImmediate` runs after
    // the event loop has polled for them, without a timer's delay), not after each one: a busy
    // server stores and delivers a few large batches instead of many small ones, and every reader
    // gets one stretch of bytes per batch.
    this.#commitTimer ??= setImmediate(() => {
      this.#commitTimer = undefined;
      this.#shared.runCommit(() => this.commit());
    });
    return undefined;
  }

  /**
   * Runs a step once the sends waiting now are committed and delivered (at
   * once when none are): answers keep the order of the requests. The batch
   * being gathered is closed, so later sends are answered after the step.
   *
   * @param step The step.
   */
  after(step: () => void): void {
    if (this.#pending.length > 0) {
      this.#pendingSteps.push(step);
      // Closed now, committed in turn: a commit must not start while a task waits for storage
      // (a join's replay, say), or a live message could reach someone before their history.
      this.#seal();
      this.#shared.runCommit(() => this.commit());
    } else if (this.#sealed.length > 0) this.#sealed.at(-1)?.steps.push(step);
    else if (this.#inflight !== undefined) this.#inflightSteps.push(step);
    else step();
  }

  /**
   * Resolves once the sends gathered so far are committed and delivered,
   * without hurrying their commit; `undefined` when none wait. A door waits
   * for it before it reads more, so that what it read is delivered (and the
   * queues' budget sees it) before more is read.
   *
   * @returns The promise, or `undefined`.
   */
  settled(): Promise<void> | undefined {
    if (this.#pending.length > 0) {
      return new Promise((resolve) => this.#pendingSteps.push(resolve));
    }
    return this.#inflight;
  }

  /** Closes the batch being gathered: later sends go into the next one. */
  #seal(): void {
    if (this.#pending.length === 0) return;
    this.#sealed.push({ batch: this.#pending, steps: this.#pendingSteps });
    this.#pending = [];
    this.#pendingSteps = [];
    this.#pendingKeys.clear();
  }

  /**
   * Commits the sends waiting (after those in flight, if any), then delivers
   * them and their acknowledgements, one batch after another. Runs at the end
   * of each event-loop turn, and before anything that must see them.
   *
   * @returns A promise that resolves once they are delivered, or `undefined`
   * when nothing was waiting.
   */
  commit(): Promise<void> | undefined {
    if (this.#commitTimer !== undefined) clearImmediate(this.#commitTimer);
    this.#commitTimer = undefined;
    this.#seal();
    // The commits in flight go on to every batch closed meanwhile.
    if (this.#inflight !== undefined) return this.#inflight;
    if (this.#sealed.length === 0) return undefined;
    // The drain waits for storage before it ends, so this is set before it is cleared.
    this.#inflight = this.#drain();
    return this.#inflight;
  }

  async #drain(): Promise<void> {
    try {
      for (let next = this.#sealed.shift(); next !== undefined; next = this.#sealed.shift()) {
        // A database across the network costs a round trip per statement: the batches closed
        // meanwhile go into one transaction (their steps still run after their sends).
        while (this.#feed !== undefined && this.#sealed.length > 0) {
          if (next.batch.length + this.#sealed[0]!.batch.length > MAX_SHARED_BATCH) break;
          const more = this.#sealed.shift()!;
          next = { batch: [...next.batch, ...more.batch], steps: [...next.steps, ...more.steps] };
        }
        this.#inflightSteps = next.steps;
        try {
          await this.#commit(next.batch);
        } finally {
          for (const step of this.#inflightSteps.splice(0)) step();
        }
      }
    } finally {
      // At once, with nothing in between: a step or a batch arriving later starts anew.
      this.#inflight = undefined;
      // Steps added by the last ones (a refusal after a failed commit) run now.
      for (const step of this.#inflightSteps.splice(0)) step();
    }
  }

  async #commit(batch: PendingSend[]): Promise<void> {
    const shared = this.#shared;
    const store = shared.store;
    let committed;
    try {
      committed = await store.append(batch.map((entry) => entry.stored));
    } catch (error) {
      for (const entry of this.#feed === undefined ? batch : []) {
        const seq = await store.lastSeq(entry.room.name).catch(() => undefined);
        // Sends gathered or closed since have their numbers: keep counting after them.
        const later = (other: PendingSend) => other.room === entry.room;
        if (
          seq !== undefined && !this.#pending.some(later) &&
          !this.#sealed.some(({ batch }) => batch.some(later))
        ) {
          entry.room.rewind(seq);
        }
      }
      shared.log(`Cannot store messages: ${error instanceof Error ? error.message : error}`);
      const refusals = batch.map((entry) => () =>
        shared.fail(
          entry.session,
          entry.id,
          "storage_failed",
          "The server could not store the message; try again",
        )
      );
      this.#inflightSteps = [...refusals, ...this.#inflightSteps];
      return;
    }
    if (this.#feed !== undefined && committed !== undefined) {
      await this.#feed.committed(batch, committed);
    } else {
      // Each stretch of one room's messages goes out as one run: encoded once, one view of it
      // per reader. Order is kept: a sender gets the stretch up to its message, then its answer.
      for (let start = 0; start < batch.length;) {
        const room = batch[start]!.room;
        let end = start + 1;
        while (end < batch.length && batch[end]!.room === room) end++;
        this.#deliver(batch.slice(start, end));
        start = end;
      }
    }
    this.#storedSincePrune += batch.length;
    if (this.#storedSincePrune >= PRUNE_EVERY) {
      this.#storedSincePrune = 0;
      await this.prune();
    }
  }

  /**
   * Delivers committed messages of one room to its members and answers their
   * senders, in order.
   *
   * @param entries The messages, all to the same room.
   */
  #deliver(entries: PendingSend[]): void {
    const shared = this.#shared;
    const room = entries[0]!.room;
    const run = new OutboundRun(entries.map((entry) => entry.out), this.#arenas);
    const acks = Outbound.answers(entries.map(({ id, stored: { room, seq, ts } }) => ({
      type: "ack",
      id,
      room,
      seq,
      ts,
    })));
    const answer = (index: number) => entries[index]!.session.peer?.deliver(acks[index]!);
    // Where each sender's own messages are: it hears the others, then its answer, in turn.
    const own = new Map<Session, number[]>();
    for (let i = 0; i < entries.length; i++) {
      const sender = entries[i]!.session;
      const at = own.get(sender);
      if (at === undefined) own.set(sender, [i]);
      else at.push(i);
    }
    for (const member of room.members) {
      const peer = member.peer;
      const mine = own.get(member);
      if (mine === undefined) {
        if (peer !== undefined) shared.deliverRun(peer, run, 0, entries.length);
        continue;
      }
      own.delete(member);
      let from = 0;
      for (const index of mine) {
        if (peer !== undefined && index > from) shared.deliverRun(peer, run, from, index);
        answer(index);
        from = index + 1;
      }
      if (peer !== undefined && from < entries.length) {
        shared.deliverRun(peer, run, from, entries.length);
      }
    }
    // Senders who left the room while their messages were being stored are answered too.
    for (const indexes of own.values()) {
      for (const index of indexes) answer(index);
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
  async prune(): Promise<void> {
    const { store } = this.#shared;
    try {
      await store.prune(this.#shared.options.retention);
    } catch (error) {
      this.#shared.log(
        `Cannot remove old history from "${store.path}": ${
          error instanceof Error ? error.message : error
        }`,
      );
    } finally {
      // Replays kept for joiners may hold what was removed.
      this.#history.forget();
    }
  }

  /**
   * Handles `history`.
   *
   * @param session Who asks.
   * @param frame The request.
   */
  async history(session: Registered, frame: HistoryFrame): Promise<void> {
    const shared = this.#shared;
    const room = this.#rooms.roomOf(session, frame.id, frame.room);
    if (room === undefined) return;
    const max = shared.options.maxHistoryPage;
    const limit = Math.min(frame.limit ?? max, max);
    const messages = await this.#history.page(room, {
      limit,
      after: frame.after,
      before: frame.before,
    });
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
