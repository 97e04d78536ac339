/**
 * What every part of the core shares: its options, the store, every open
 * session, and the ways to answer a request.
 *
 * @module
 */

import type { ErrorCode } from "../protocol/errors.ts";
import type { AckFrame, DmEvent, LeaveReason, RequestId } from "../protocol/frames.ts";
import { type Limits, MAX_REASON_LENGTH } from "../protocol/limits.ts";
import { Outbound, type OutboundRun } from "./outbound.ts";
import type { Peer, Session } from "./session.ts";
import type { PresenceRow, Retention, Storage } from "./storage.ts";

/** Options for the core. */
export interface CoreOptions {
  /** The limits to enforce. */
  limits: Limits;
  /** Server software name and version, sent in `welcome`. */
  software: string;
  /** Where history, names and bans are kept. */
  store: Storage;
  /** How many recent messages to replay on joining a room. */
  historyOnJoin: number;
  /** Most messages in one `history` answer. */
  maxHistoryPage: number;
  /** How long a lost session of a reconnecting client is held, in ms. */
  resumeGrace: number;
  /** How much history to keep. */
  retention: Retention;
  /** The server's password, if it has one. */
  password?: string;
  /** Fingerprints of the operators' keys. */
  operators?: ReadonlySet<string>;
  /** Receives one line per join, leave and rename, for the operator. */
  log?: (line: string) => void;
}

/** What the core's parts ask of the other nodes, when several servers share the storage. */
export interface Cluster {
  /** Someone on another node, by name as typed. */
  find(name: string): { name: string; fingerprint: string | undefined; away: string } | undefined;
  /** The names in a room on the other nodes. */
  namesIn(room: string): string[];
  /** The names of a room's operators on the other nodes. */
  opsIn(room: string): string[];
  /** The away messages of those in a room on the other nodes who are away, by name. */
  awayIn(room: string): Record<string, string>;
  /** How many are in a room on the other nodes. */
  count(room: string): number;
  /** Every room someone on another node is in. */
  rooms(): Set<string>;
  /** Takes a name across the nodes, or refuses the request (taking over a session elsewhere). */
  claim(
    session: Session,
    id: RequestId,
    name: string,
    token: string,
    takeover?: string,
  ): Promise<boolean>;
  /** The session of another node a resume token belongs to. */
  resumable(token: string | undefined): Promise<PresenceRow | undefined>;
  /** Gives back a name taken with `claim` for a session that did not get it after all. */
  release(name: string): void;
  /** Tells the node that had a session that it goes on here. */
  tookOver(name: string): void;
  /** A local session's rooms or token changed. */
  changed(session: Session & { readonly name: string }): void;
  /** A local session joined a room. */
  joined(session: Session & { readonly name: string }, room: string): void;
  /** A local session left a room (`by`: an operator removed it). */
  parted(
    session: Session & { readonly name: string },
    room: string,
    message?: string,
    by?: string,
  ): void;
  /** A local session went away (a message) or came back (`""`). */
  away(session: Session & { readonly name: string }, message: string): void;
  /** Asks the node of someone to remove them from a room. */
  kick(room: string, name: string, by: string, message?: string): void;
  /** Tells the others a room's settings. */
  mode(room: string, topicLock: boolean): void;
  /** A local session ended. */
  quit(name: string, rooms: readonly string[], reason: LeaveReason, message?: string): void;
  /** A local session is held for a reconnect (`null`: it came back). */
  held(session: Session & { readonly name: string }, ms: number | null): void;
  /** Moves a local session to a new name across the nodes, or refuses. */
  rename(
    session: Session & { readonly name: string },
    id: RequestId,
    name: string,
  ): Promise<boolean>;
  /** Tells the others a local session was renamed. */
  renamed(from: string, to: string, rooms: readonly string[]): void;
  /** Tells the others a topic was set here. */
  topic(room: string, topic: string, from: string, ts: string): void;
  /** Sends a private message to someone on another node; resolves with whether it went. */
  dm(dm: DmEvent): Promise<boolean>;
  /** Tells the others the bans changed. */
  bansChanged(): void;
  /** Keeps a private message for a local session held for a reconnect, in the database. */
  keep(name: string, dm: DmEvent): void;
  /** Takes the private messages kept for a session, on whatever node. */
  takeKept(name: string): Promise<DmEvent[]>;
  /** Asks the node of someone to end their session. */
  eject(name: string, reason: "kicked" | "banned", message: string): void;
  /** Reloads who is on the other nodes. */
  reload(): Promise<void>;
  /** Stops the heartbeat. */
  close(): void;
}

/** What the core's parts ask of the core itself. */
export interface CoreHooks {
  /** Runs a step once the sends waiting now are committed and delivered. */
  afterSends(step: () => void): void;
  /** Runs a task in turn with the core's other work (see `ChatCore`). */
  run(task: () => void | Promise<void>): void;
  /** Runs a commit of the sends (or the delivery of other nodes' messages) in turn: plain sends need not wait for it. */
  runCommit(task: () => void | Promise<void>): void;
  /** Ends a session: it leaves every room, and its name is free again. */
  leave(session: Session, reason: LeaveReason, message?: string): void;
}

/** What a reason for leaving that is too long is refused with. */
export const REASON_TOO_LONG = `Reason is longer than ${MAX_REASON_LENGTH} characters`;

function codePoints(text: string): number {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0xd800 || unit > 0xdbff) count++;
  }
  return count;
}

/** What every part of the core shares. */
export class Shared {
  /** The options. */
  readonly options: CoreOptions;
  /** Where history, names and bans are kept. */
  readonly store: Storage;
  /** The limits in force. */
  readonly limits: Limits;
  /** Every open session, named or not, connected or held. */
  readonly sessions: Set<Session> = new Set();
  /** With a storage shared by several servers: who is on the other nodes. */
  cluster: Cluster | undefined;
  #hooks: CoreHooks;

  /**
   * Creates the shared state.
   *
   * @param options The core's options.
   * @param hooks What the parts ask of the core.
   */
  constructor(options: CoreOptions, hooks: CoreHooks) {
    this.options = options;
    this.store = options.store;
    this.limits = options.limits;
    this.#hooks = hooks;
  }

  /**
   * Logs a line for the operator.
   *
   * @param line The line.
   */
  log(line: string): void {
    this.options.log?.(line);
  }

  /**
   * Runs a task in turn with the core's other work.
   *
   * @param task The task.
   */
  run(task: () => void | Promise<void>): void {
    this.#hooks.run(task);
  }

  /**
   * Runs a commit of the sends (or the delivery of messages committed by
   * other nodes) in turn with the core's other work; a plain send arriving
   * meanwhile joins the next batch without waiting for it.
   *
   * @param task The commit or delivery.
   */
  runCommit(task: () => void | Promise<void>): void {
    this.#hooks.runCommit(task);
  }

  /**
   * Ends a session.
   *
   * @param session The session.
   * @param reason Why.
   * @param message The reason the person gave (`quit`).
   */
  leave(session: Session, reason: LeaveReason, message?: string): void {
    this.#hooks.leave(session, reason, message);
  }

  /**
   * Refuses a request (after the sends before it, so answers keep the order
   * of the requests).
   *
   * @param session Who asked.
   * @param id The request's id, if known.
   * @param code Why.
   * @param message What to tell.
   */
  fail(session: Session, id: RequestId | undefined, code: ErrorCode, message: string): void {
    const out = new Outbound(
      id === undefined ? { type: "error", code, message } : { type: "error", id, code, message },
      true,
    );
    this.#hooks.afterSends(() => session.peer?.deliver(out));
  }

  /**
   * Answers a request.
   *
   * @param session Who asked.
   * @param ack The answer.
   */
  ack(session: Session, ack: AckFrame): void {
    session.peer?.deliver(new Outbound(ack, true));
  }

  /**
   * Delivers one event to many: encoded once, queued for each.
   *
   * @param members Who hears it.
   * @param out The event.
   * @param except Who does not.
   */
  broadcast(members: Iterable<Session>, out: Outbound, except?: Session): void {
    for (const member of members) {
      if (member !== except) member.peer?.deliver(out);
    }
  }

  /**
   * Delivers events `start` to `end` (excluded) of a run to one peer: as one
   * view of the run's bytes when the peer can take it so, else one by one.
   *
   * @param peer Where they go.
   * @param run The events.
   * @param start The first event.
   * @param end After the last event.
   */
  deliverRun(peer: Peer, run: OutboundRun, start: number, end: number): void {
    if (peer.deliverRun !== undefined) return peer.deliverRun(run, start, end);
    for (let i = start; i < end; i++) peer.deliver(run.items[i]!);
  }

  /**
   * Keeps a private message for a session held for a reconnect: in the
   * session, or with several nodes in the database, so that it reaches the
   * session wherever it resumes, even once the node holding it is gone.
   *
   * @param session The session.
   * @param dm The message.
   */
  keep(session: Session & { readonly name: string }, dm: DmEvent): void {
    if (this.cluster === undefined) session.keep(dm);
    else this.cluster.keep(session.name, dm);
  }

  /**
   * Whether a session proved the key of an operator.
   *
   * @param session The session.
   * @returns Whether it may moderate.
   */
  isOperator(session: Session): boolean {
    return session.fingerprint !== undefined &&
      (this.options.operators?.has(session.fingerprint) ?? false);
  }

  /**
   * Checks the text of a message, or refuses the request.
   *
   * @param session Who sent it.
   * @param id The request's id.
   * @param text The text.
   * @returns Whether it may be sent.
   */
  checkText(session: Session, id: RequestId, text: string): boolean {
    const max = this.limits.maxTextLength;
    if (text.trim() === "") {
      this.fail(session, id, "invalid_text", "Message is empty");
      return false;
    }
    if (text.length > max && (text.length > 2 * max || codePoints(text) > max)) {
      this.fail(session, id, "invalid_text", `Message is longer than ${max} characters`);
      return false;
    }
    return true;
  }

  /**
   * Whether a topic is too long.
   *
   * @param topic The topic.
   * @returns Whether it has more than 300 characters.
   */
  static topicTooLong(topic: string): boolean {
    return codePoints(topic) > 300;
  }

  /**
   * A reason given for leaving (`part`, `quit`), trimmed.
   *
   * @param reason The reason, if any.
   * @returns It, `undefined` when none (or blank), `null` when too long.
   */
  static reason(reason: string | undefined): string | undefined | null {
    const trimmed = reason?.trim();
    if (trimmed === undefined || trimmed === "") return undefined;
    return codePoints(trimmed) > MAX_REASON_LENGTH ? null : trimmed;
  }
}
