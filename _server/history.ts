/**
 * Reading room history: the replay on joining, and pages for `history`,
 * each kept within a byte budget so it fits any send queue.
 *
 * @module
 */

import type { AckFrame, MessageEvent, SearchFrame } from "../protocol/frames.ts";
import { MAX_SEARCH_PAGE, MAX_SEARCH_TEXT, SEARCH_SCAN_MESSAGES } from "../protocol/limits.ts";
import { Arenas, Outbound, OutboundRun } from "./outbound.ts";
import type { Room, Session } from "./session.ts";
import type { Shared } from "./shared.ts";

/** Most bytes of messages in one history answer or replay, so it fits any send queue. */
const HISTORY_BUDGET_BYTES = 256 * 1024;

/**
 * Most bytes of replays kept for the next joiners of their rooms (the latest
 * messages, encoded once for all of them), counted as {@linkcode fit} does.
 */
const REPLAY_CACHE_BYTES = 4 * 1024 * 1024;

/** A room's replay, good until the room's next message. */
interface Replay {
  /** The room's last sequence number when it was read. */
  seq: number;
  /** How many messages were asked for. */
  limit: number;
  /** The messages, encoded at most once for every joiner, into adjacent bytes. */
  run: OutboundRun;
  bytes: number;
}

/** What {@linkcode fit} counts for a message. */
function cost(message: MessageEvent): number {
  return message.text.length * 3 + 200;
}

/** Keeps the newest (`fromEnd`) or oldest messages whose JSON fits the history budget. */
function fit(messages: MessageEvent[], fromEnd: boolean): MessageEvent[] {
  let bytes = 0;
  const kept: MessageEvent[] = [];
  const order = fromEnd ? [...messages].reverse() : messages;
  for (const message of order) {
    bytes += cost(message);
    if (bytes > HISTORY_BUDGET_BYTES && kept.length > 0) break;
    kept.push(message);
  }
  return fromEnd ? kept.reverse() : kept;
}

/** Where to read a page of history. */
export interface Page {
  /** Most messages. */
  limit: number;
  /** Messages after this sequence number (oldest first)... */
  after?: number;
  /** ...or before this one (the newest). */
  before?: number;
}

/** The history of the rooms, as the core reads it. */
export class History {
  #shared: Shared;
  /** Replays by room, oldest first. */
  #replays = new Map<string, Replay>();
  #replayBytes = 0;
  /** Where replays are encoded: apart from live messages, as they are kept longer. */
  #arenas = new Arenas();
  /** Counts {@linkcode History.forget}: a read it overlapped may hold what was removed. */
  #generation = 0;

  /**
   * Reads history from the shared store.
   *
   * @param shared The core's shared state.
   */
  constructor(shared: Shared) {
    this.#shared = shared;
  }

  /**
   * Replays the latest messages of a room that fit the budget.
   *
   * @param session Who joined.
   * @param room The room.
   * @param count How many messages were asked for.
   */
  async replay(session: Session, room: Room, count: number): Promise<void> {
    const limit = Math.min(count, this.#shared.options.maxHistoryPage);
    // Up to the last message delivered here: those after it come live.
    const seq = room.seq;
    let replay = this.#replays.get(room.name);
    if (replay?.seq !== seq || replay.limit !== limit) {
      const generation = this.#generation;
      const messages = await this.#read(
        room,
        `the latest ${limit}`,
        () => this.#shared.store.recent(room.name, limit, seq + 1),
      );
      // Damaged history is logged and skipped: the join itself succeeds.
      if (messages === undefined) return;
      const kept = fit(messages, true);
      replay = generation === this.#generation
        ? this.#keep(room.name, seq, limit, kept)
        : { seq, limit, run: this.#run(kept), bytes: 0 };
    }
    // One view of the whole replay for each joiner, not a piece per message.
    const { peer } = session;
    const length = replay.run.items.length;
    if (peer !== undefined && length > 0) this.#shared.deliverRun(peer, replay.run, 0, length);
  }

  /**
   * Keeps a replay for the room's next joiners (a crowd joining a quiet room
   * shares one read and one encoding), within {@linkcode REPLAY_CACHE_BYTES}.
   */
  #keep(room: string, seq: number, limit: number, messages: MessageEvent[]): Replay {
    const bytes = messages.reduce((sum, m) => sum + cost(m), 0);
    const replay = { seq, limit, run: this.#run(messages), bytes };
    this.#drop(room);
    this.#replays.set(room, replay);
    this.#replayBytes += replay.bytes;
    for (const [name] of this.#replays) {
      if (this.#replayBytes <= REPLAY_CACHE_BYTES) break;
      this.#drop(name);
    }
    return replay;
  }

  #run(messages: MessageEvent[]): OutboundRun {
    return new OutboundRun(messages.map((message) => new Outbound(message)), this.#arenas);
  }

  #drop(room: string): void {
    const replay = this.#replays.get(room);
    if (replay === undefined) return;
    this.#replays.delete(room);
    this.#replayBytes -= replay.bytes;
  }

  /** Forgets the replays kept, after history was removed (retention). */
  forget(): void {
    this.#generation++;
    this.#replays.clear();
    this.#replayBytes = 0;
  }

  /**
   * Reads one page of a room's history.
   *
   * @param room The room.
   * @param page Where.
   * @returns The messages, or `undefined` when they cannot be read (logged).
   */
  page(room: Room, page: Page): Promise<MessageEvent[] | undefined> {
    const { limit, after, before } = page;
    const store = this.#shared.store;
    return after !== undefined
      ? this.#read(
        room,
        `${limit} after ${after}`,
        async () =>
          fit(await store.after(room.name, after, limit, true), false).filter((m) =>
            before === undefined || m.seq < before
          ),
      )
      : this.#read(
        room,
        `${limit} before ${before ?? "the end"}`,
        async () => fit(await store.recent(room.name, limit, before), true),
      );
  }

  /**
   * Handles `search`: the newest messages of a room containing a text, read
   * from storage at most {@linkcode SEARCH_SCAN_MESSAGES} messages at a time,
   * so one request costs the store a bounded amount of work; the answer's
   * `next` says where the next page starts.
   *
   * @param session Who asks.
   * @param room The room, which the session is in.
   * @param frame The request.
   */
  async search(session: Session, room: Room, frame: SearchFrame): Promise<void> {
    const shared = this.#shared;
    const text = frame.text.trim();
    if (text === "" || [...text].length > MAX_SEARCH_TEXT) {
      return shared.fail(
        session,
        frame.id,
        "invalid_text",
        text === ""
          ? "Search text is empty"
          : `Search text is longer than ${MAX_SEARCH_TEXT} characters`,
      );
    }
    const before = Math.min(frame.before ?? room.seq + 1, room.seq + 1);
    const from = Math.max(before - 1 - SEARCH_SCAN_MESSAGES, 0);
    const limit = Math.max(Math.min(frame.limit ?? MAX_SEARCH_PAGE, MAX_SEARCH_PAGE), 1);
    let full = false;
    const found = await this.#read(room, `a search before ${before}`, async () => {
      const read = await shared.store.search(room.name, text, { from, before }, limit);
      const kept = fit(read, true);
      full = read.length === limit || kept.length < read.length;
      return kept;
    });
    if (found === undefined) {
      return shared.fail(
        session,
        frame.id,
        "storage_failed",
        "The server could not read that history; it was logged",
      );
    }
    const ack: AckFrame = { type: "ack", id: frame.id, room: room.name, messages: found };
    // A full page (or one cut by the byte budget) goes on below its oldest message;
    // otherwise below what was read.
    const next = full && found.length > 0 ? found[0]!.seq : from + 1;
    if (next > 1) ack.next = next;
    shared.ack(session, ack);
  }

  /**
   * Reads history, or logs for the operator which part of which room cannot
   * be read (a damaged database) and returns `undefined`.
   */
  async #read(
    room: Room,
    what: string,
    read: () => Promise<MessageEvent[]>,
  ): Promise<MessageEvent[] | undefined> {
    try {
      return await read();
    } catch (error) {
      this.#shared.log(
        `Cannot read the history of ${room.name} (${what} messages) from "${this.#shared.store.path}": ${
          error instanceof Error ? error.message : error
        }`,
      );
      return undefined;
    }
  }
}
