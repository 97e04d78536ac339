/**
 * Files between nodes, when several servers share a PostgreSQL: each
 * accepted leg of a transfer is known on every node by its two tokens, so
 * each data connection may reach any node. The node the sender's connection
 * reached stores the file in chunks in the database and the node of the
 * receiver's connection takes them (which removes them) and writes them on;
 * notifications wake each side, and the sender's side stores a chunk only
 * while fewer than {@linkcode WINDOW} wait to be taken, so the database holds
 * at most a few per leg and a slow receiver slows the sender, as on one node.
 * A side whose other side's node (or the offer's) stops beating fails the
 * leg, and the node of the offer tells both parties.
 *
 * @module
 */

import { writeAll } from "../_common/write_all.ts";
import type { ServerFrame } from "../protocol/frames.ts";
import type { ByteStream } from "./transfers.ts";
import type { ClusterBus, ClusterEvent, FileEvent } from "./storage.ts";

/** Bytes in one chunk. */
export const CHUNK_BYTES = 256 * 1024;
/** Most chunks of one leg stored and not yet taken. */
export const WINDOW = 8;
/** How often a waiting side checks the database, and that the nodes it needs are alive, in ms. */
const CHECK_MS = 1000;
/** How long a node waits for its own announcement of a leg to come back, in ms. */
const ANNOUNCE_MS = 5000;
/** How long a leg nobody closed is remembered, in ms. */
const STALE_LEG_MS = 3_600_000;
const READY = new TextEncoder().encode('{"type":"data","ok":true}\n');
const UNKNOWN_TOKEN = new TextEncoder().encode(
  '{"type":"error","code":"no_such_transfer","message":"No transfer has that token"}\n',
);
/** Most data connections waiting for the announcement of their leg. */
const MAX_EARLY = 1000;

type LegEvent = Extract<FileEvent, { kind: "leg" }>;
type PipeEvent = Extract<FileEvent, { kind: "pipe" }>;

/** A leg as every node knows it. */
interface PipeLeg {
  id: string;
  transfer: string;
  /** The node of the offer. */
  home: string;
  size: number;
  tokens: [string, string];
  sender: string;
  receiver: string;
  /** The data connections that reached this node. */
  conns: [ByteStream | undefined, ByteStream | undefined];
  /** The node each side's connection reached. */
  nodes: [string | undefined, string | undefined];
  /** How many chunks were stored, and how many taken. */
  stored: number;
  taken: number;
  closed: boolean;
  /** Wakes a side of this node waiting for news. */
  wake: PromiseWithResolvers<void>;
  /** Resolves once this node's connections of the leg are closed. */
  done: PromiseWithResolvers<void>;
  created: number;
}

/** What the relay tells the node of an offer. */
export interface RelayHost {
  /** Both data connections of a leg are attached (on whatever nodes). */
  paired(leg: string): void;
  /** Every byte of a leg is with its receiver. */
  delivered(leg: string): void;
  /** A leg failed. */
  failed(leg: string, reason: string): void;
  /** Delivers a frame to a session of this node, by name, if it is here. */
  tell(name: string, frame: ServerFrame): void;
  /** How long a node may be silent before it is taken for dead, in ms. */
  staleMs: number;
  /** Logs a line for the operator. */
  log(line: string): void;
}

function close(conn: ByteStream | undefined): void {
  try {
    conn?.close();
  } catch {
    // Already closed.
  }
}

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The database failed a side of a leg. */
class DatabaseAway extends Error {}

/** A call to the database, whose failure fails the leg with words for its parties. */
function away<T>(call: Promise<T>): Promise<T> {
  return call.catch((error) => {
    throw new DatabaseAway("the server cannot reach its database", { cause: error });
  });
}

/** The legs of transfers between nodes, and this node's sides of them. */
export class Relay {
  #bus: ClusterBus;
  #host: RelayHost;
  #legs = new Map<string, PipeLeg>();
  #tokens = new Map<string, { leg: PipeLeg; side: 0 | 1 }>();
  #announced = new Map<string, () => void>();
  /** Data connections whose token came before the leg's announcement. */
  #early = new Set<{ token: string; heard: () => void }>();
  #sides = new Set<Promise<void>>();
  #drops = new Set<Promise<void>>();
  #writes: Promise<void> = Promise.resolve();
  #closed = false;

  /**
   * Creates the relay.
   *
   * @param bus The shared storage.
   * @param host What the relay tells the core.
   */
  constructor(bus: ClusterBus, host: RelayHost) {
    this.#bus = bus;
    this.#host = host;
  }

  /**
   * Publishes events in the order they were asked for.
   *
   * @param event The event.
   * @returns Once it is published.
   */
  publish(event: ClusterEvent): Promise<void> {
    const next = this.#writes.then(() => this.#bus.publish(event));
    this.#writes = next.catch((error) => {
      this.#host.log(`Cannot tell the other nodes: ${reason(error)}`);
    });
    return next;
  }

  /**
   * Announces a leg to every node; resolves once this node has heard its own
   * announcement (so the others most likely have too), or after a few seconds.
   *
   * @param leg The leg.
   */
  async open(leg: Omit<LegEvent, "kind" | "node">): Promise<void> {
    const event: LegEvent = { kind: "leg", node: this.#bus.node, ...leg };
    this.#add(event);
    const heard = Promise.withResolvers<void>();
    this.#announced.set(leg.leg, heard.resolve);
    const timer = setTimeout(heard.resolve, ANNOUNCE_MS);
    try {
      await this.publish(event);
      await heard.promise;
    } finally {
      clearTimeout(timer);
      this.#announced.delete(leg.leg);
    }
  }

  /**
   * Ends a leg everywhere (the node of the offer closes it).
   *
   * @param leg The leg's id.
   */
  close(leg: string): void {
    this.#end(leg);
    this.publish({ kind: "pipe", node: this.#bus.node, leg, state: "closed" }).catch(() => {});
    this.#drop(leg);
  }

  /** Removes what is left of a leg's chunks. */
  #drop(leg: string): void {
    const dropping = this.#bus.dropChunks(leg).catch(() => {}).finally(() => {
      this.#drops.delete(dropping);
    });
    this.#drops.add(dropping);
  }

  #add(event: LegEvent): void {
    if (this.#legs.has(event.leg)) return;
    // A leg whose node of the offer died before closing it: forgotten after a while.
    for (const old of this.#legs.values()) {
      if (Date.now() - old.created < STALE_LEG_MS) break;
      if (old.conns[0] === undefined && old.conns[1] === undefined) this.#end(old.id);
    }
    const leg: PipeLeg = {
      id: event.leg,
      transfer: event.transfer,
      home: event.node,
      size: event.size,
      tokens: event.tokens,
      sender: event.sender,
      receiver: event.receiver,
      conns: [undefined, undefined],
      nodes: [undefined, undefined],
      stored: 0,
      taken: 0,
      closed: false,
      wake: Promise.withResolvers(),
      done: Promise.withResolvers(),
      created: Date.now(),
    };
    this.#legs.set(leg.id, leg);
    this.#tokens.set(leg.tokens[0], { leg, side: 0 });
    this.#tokens.set(leg.tokens[1], { leg, side: 1 });
    for (const early of this.#early) if (leg.tokens.includes(early.token)) early.heard();
  }

  #wake(leg: PipeLeg): void {
    const wake = leg.wake;
    leg.wake = Promise.withResolvers();
    wake.resolve();
  }

  /** Forgets a leg here and closes its connections on this node. */
  #end(id: string): void {
    const leg = this.#legs.get(id);
    if (leg === undefined) return;
    // The node that takes the chunks removes those left.
    if (leg.conns[1] !== undefined) this.#drop(id);
    leg.closed = true;
    this.#legs.delete(id);
    this.#tokens.delete(leg.tokens[0]);
    this.#tokens.delete(leg.tokens[1]);
    close(leg.conns[0]);
    close(leg.conns[1]);
    this.#wake(leg);
    leg.done.resolve();
  }

  /**
   * An event about files from the bus (this node's own too).
   *
   * @param event The event.
   */
  receive(event: LegEvent | PipeEvent): void {
    if (event.kind === "leg") {
      this.#add(event);
      this.#announced.get(event.leg)?.();
      return;
    }
    const leg = this.#legs.get(event.leg);
    const home = leg?.home === this.#bus.node;
    switch (event.state) {
      case "attached":
        if (leg === undefined || event.side === undefined) return;
        leg.nodes[event.side] = event.node;
        if (home && leg.nodes[0] !== undefined && leg.nodes[1] !== undefined) {
          this.#host.paired(leg.id);
        }
        break;
      case "chunk":
        if (leg !== undefined) leg.stored = Math.max(leg.stored, (event.n ?? 0) + 1);
        break;
      case "ack":
        if (leg !== undefined) leg.taken = Math.max(leg.taken, event.n ?? 0);
        break;
      case "done":
        if (home) this.#host.delivered(event.leg);
        break;
      case "failed":
        if (home) this.#host.failed(event.leg, event.reason ?? "the transfer failed");
        this.#end(event.leg);
        return;
      case "closed":
        this.#end(event.leg);
        return;
    }
    if (leg !== undefined) this.#wake(leg);
  }

  /**
   * Takes a data connection that presented the token of a leg.
   *
   * @param conn The connection (this module closes it).
   * @param token Its token.
   * @returns A promise that resolves once the leg has let the connection go,
   * or `undefined` when the token is unknown.
   */
  attach(conn: ByteStream, token: string): Promise<void> | undefined {
    if (this.#closed) return undefined;
    const found = this.#tokens.get(token);
    if (found !== undefined) return this.#start(conn, found.leg, found.side);
    // The node of the offer may have told the client before this node heard of the leg.
    if (this.#early.size >= MAX_EARLY) return undefined;
    return this.#later(conn, token);
  }

  /** Waits a little for the leg of a token not heard of yet, then takes the connection or refuses it. */
  async #later(conn: ByteStream, token: string): Promise<void> {
    const heard = Promise.withResolvers<void>();
    const early = { token, heard: heard.resolve };
    this.#early.add(early);
    const timer = setTimeout(heard.resolve, ANNOUNCE_MS);
    await heard.promise;
    clearTimeout(timer);
    this.#early.delete(early);
    const found = this.#closed ? undefined : this.#tokens.get(token);
    const started = found === undefined ? undefined : this.#start(conn, found.leg, found.side);
    if (started !== undefined) return await started;
    try {
      await writeAll(conn, UNKNOWN_TOKEN);
    } catch {
      // Gone already.
    }
    close(conn);
  }

  #start(conn: ByteStream, leg: PipeLeg, side: 0 | 1): Promise<void> | undefined {
    if (leg.conns[side] !== undefined || leg.nodes[side] !== undefined) return undefined;
    leg.conns[side] = conn;
    leg.nodes[side] = this.#bus.node;
    const run = (side === 0 ? this.#send(leg, conn) : this.#receive(leg, conn))
      .catch((error) => {
        if (error instanceof DatabaseAway) {
          this.#host.log(`A file transfer failed: ${error.message} (${reason(error.cause)})`);
        }
        this.#fail(leg, error instanceof DatabaseAway ? error.message : "a data connection broke");
      })
      .finally(() => {
        close(conn);
        this.#sides.delete(run);
      });
    this.#sides.add(run);
    return leg.done.promise;
  }

  async #attached(leg: PipeLeg, conn: ByteStream, side: 0 | 1): Promise<void> {
    await writeAll(conn, READY);
    await this.publish({
      kind: "pipe",
      node: this.#bus.node,
      leg: leg.id,
      state: "attached",
      side,
    });
  }

  /** The sender's side: reads the file and stores it chunk by chunk. */
  async #send(leg: PipeLeg, conn: ByteStream): Promise<void> {
    await this.#attached(leg, conn, 0);
    let remaining = leg.size;
    let n = 0;
    while (remaining > 0) {
      while (n - leg.taken >= WINDOW) {
        if (!await this.#wait(leg, leg.wake.promise, 1)) return;
      }
      const chunk = new Uint8Array(Math.min(CHUNK_BYTES, remaining));
      let filled = 0;
      while (filled < chunk.length) {
        const read = await conn.read(chunk.subarray(filled));
        if (leg.closed) return;
        if (read === null) return this.#fail(leg, "the transfer was cut off");
        filled += read;
      }
      await away(this.#bus.putChunk(leg.id, n++, chunk));
      // Ended while the chunk was on its way: what it left behind is removed here.
      if (leg.closed) return this.#drop(leg.id);
      remaining -= filled;
    }
    // The sender's connection closes once the receiver has every byte.
    while (leg.taken < n) {
      if (!await this.#wait(leg, leg.wake.promise, 1)) return;
    }
  }

  /** The receiver's side: takes the chunks in order and writes them on. */
  async #receive(leg: PipeLeg, conn: ByteStream): Promise<void> {
    await this.#attached(leg, conn, 1);
    let remaining = leg.size;
    let n = 0;
    while (remaining > 0) {
      // Taken before asking, so that news arriving meanwhile is not missed.
      const news = leg.wake.promise;
      const data = await away(this.#bus.takeChunk(leg.id, n));
      if (leg.closed) return;
      if (data === undefined) {
        if (!await this.#wait(leg, news, 0)) return;
        continue;
      }
      if (data.length > remaining) return this.#fail(leg, "the transfer was cut off");
      await writeAll(conn, data);
      remaining -= data.length;
      n++;
      await this.publish({ kind: "pipe", node: this.#bus.node, leg: leg.id, state: "ack", n });
    }
    close(conn);
    await this.publish({ kind: "pipe", node: this.#bus.node, leg: leg.id, state: "done" });
  }

  /**
   * Waits for news of a leg, or a while; then checks that the node of the
   * offer and that of the other side are alive. Resolves with whether to go on.
   */
  async #wait(leg: PipeLeg, news: Promise<void>, other: 0 | 1): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const woken = await Promise.race([
      news.then(() => true),
      new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), CHECK_MS)),
    ]);
    clearTimeout(timer);
    if (leg.closed) return false;
    if (woken) return true;
    const needed = [leg.home];
    const there = leg.nodes[other];
    if (there !== undefined && there !== leg.home) needed.push(there);
    let alive: Set<string>;
    try {
      alive = await this.#bus.alive(needed, this.#host.staleMs);
    } catch {
      // The database is away: the next check tries again.
      return !leg.closed;
    }
    if (leg.closed) return false;
    const dead = needed.find((node) => !alive.has(node));
    if (dead === undefined) return true;
    const homeDead = dead === leg.home;
    this.#fail(
      leg,
      homeDead ? "the sender's server stopped" : "the server of the other side stopped",
      homeDead,
    );
    return false;
  }

  /**
   * Fails a leg: closes its connections here and tells the node of the offer,
   * which tells both parties; when that node is dead, this one tells those
   * of its own sessions who took part.
   */
  #fail(leg: PipeLeg, why: string, homeDead = false): void {
    if (leg.closed) return;
    this.#end(leg.id);
    this.#drop(leg.id);
    if (homeDead) {
      const event: ServerFrame = {
        type: "transfer",
        transfer: leg.transfer,
        state: "cancelled",
        by: "",
        reason: why,
      };
      this.#host.tell(leg.receiver, event);
      this.#host.tell(leg.sender, event);
      return;
    }
    if (leg.home === this.#bus.node) return this.#host.failed(leg.id, why);
    this.publish({ kind: "pipe", node: this.#bus.node, leg: leg.id, state: "failed", reason: why })
      .catch(() => {});
  }

  /** Stops every side on this node and waits for them. */
  async shutdown(): Promise<void> {
    this.#closed = true;
    for (const early of this.#early) early.heard();
    for (const leg of [...this.#legs.values()]) {
      if (leg.conns[0] !== undefined || leg.conns[1] !== undefined) {
        this.#fail(leg, "the server is shutting down");
      } else this.#end(leg.id);
    }
    await Promise.all(this.#sides);
    await Promise.all(this.#drops);
    await this.#writes;
  }
}
