/**
 * The requests the core answers, as a table: for each request type, its
 * handler and the rules that apply to it before it runs (whether it needs a
 * name, whether only operators may make it, what it costs against the rate
 * limit, whether a muted user is refused). The rules are applied in one
 * place, by the core's dispatch.
 *
 * @module
 */

import type { ClientFrame, RoomInfo } from "../protocol/frames.ts";
import type { Direct } from "./direct.ts";
import type { Handshake } from "./handshake.ts";
import type { History } from "./history.ts";
import type { Messages } from "./messages.ts";
import type { Moderation } from "./moderation.ts";
import type { Names } from "./names.ts";
import type { Rooms } from "./rooms.ts";
import type { Registered, Session } from "./session.ts";
import { REASON_TOO_LONG, Shared } from "./shared.ts";
import type { Transfers } from "./transfers.ts";

/** The request types that reach the dispatch (`pong` and `data` never do). */
export type RequestType = Exclude<ClientFrame["type"], "pong" | "data">;

/** The frame of one request type. */
export type RequestOf<T extends RequestType> = Extract<ClientFrame, { type: T }>;

/** One entry of the table. */
export interface Command<Context, Registered, Frame> {
  /** Handles the request once the rules let it through; a promise while it waits for storage. */
  run(context: Context, session: Registered, frame: Frame): void | Promise<void>;
  /**
   * Usable before the handshake is done.
   *
   * @default {false}
   */
  beforeName?: boolean;
  /**
   * Operators only (always, or when the frame says so).
   *
   * @default {false}
   */
  operator?: boolean | ((frame: Frame) => boolean);
  /**
   * Rate-limit tokens it costs (capped at the burst); `0` is free.
   *
   * @default {1}
   */
  cost?: number;
  /**
   * Refused from a muted user (always, or when the frame says something).
   *
   * @default {false}
   */
  speaks?: boolean | ((frame: Frame) => boolean);
}

/** The whole table: one entry per request type. */
export type CommandTable<Context, Session, Registered> =
  & { [T in Exclude<RequestType, "hello">]: Command<Context, Registered, RequestOf<T>> }
  & { hello: Command<Context, Session, RequestOf<"hello">> };

/** The parts of the core the handlers reach. */
export interface Parts {
  /** What every part shares. */
  shared: Shared;
  /** The handshake and renames. */
  handshake: Handshake;
  /** Who is called what. */
  names: Names;
  /** The rooms. */
  rooms: Rooms;
  /** Room messages and history. */
  messages: Messages;
  /** History replays, pages and searches. */
  history: History;
  /** Private messages. */
  direct: Direct;
  /** Bans, mutes and kicks. */
  moderation: Moderation;
  /** File transfers. */
  transfers: Transfers;
}

/** Every request the core answers, and the rules for each. */
export const COMMANDS: CommandTable<Parts, Session, Registered> = {
  hello: {
    run: (core, session, frame) => core.handshake.hello(session, frame),
    beforeName: true,
    cost: 0,
  },
  send: { run: (core, session, frame) => core.messages.send(session, frame), speaks: true },
  dm: { run: (core, session, frame) => core.direct.dm(session, frame), speaks: true },
  // A muted user keeps the name the mute is on: a new name would shed it, and the old one,
  // still muted, would be muted for whoever took it next.
  nick: { run: (core, session, frame) => core.handshake.nick(session, frame), speaks: true },
  who: { run: (core, session, frame) => core.rooms.who(session, frame) },
  join: { run: (core, session, frame) => core.rooms.join(session, frame), cost: 5 },
  part: { run: (core, session, frame) => core.rooms.part(session, frame) },
  rooms: {
    run: (core, session, frame) => {
      const rooms = core.rooms.list();
      const answer = (list: RoomInfo[]) =>
        core.shared.ack(session, { type: "ack", id: frame.id, rooms: list });
      return rooms instanceof Promise ? rooms.then(answer) : answer(rooms);
    },
  },
  topic: {
    run: (core, session, frame) => core.rooms.topic(session, frame),
    speaks: (frame) => frame.topic !== undefined,
  },
  history: { run: (core, session, frame) => core.messages.history(session, frame) },
  search: {
    run: (core, session, frame) => {
      const room = core.rooms.roomOf(session, frame.id, frame.room);
      return room === undefined ? undefined : core.history.search(session, room, frame);
    },
    cost: 5,
  },
  whois: { run: (core, session, frame) => core.names.whois(session, frame) },
  away: {
    run: (core, session, frame) => core.rooms.away(session, frame),
    speaks: (frame) => (frame.message ?? "").trim() !== "",
  },
  // With a room, the room's operators remove someone from it; without, server operators
  // disconnect them.
  kick: {
    run: (core, session, frame) =>
      frame.room === undefined
        ? core.moderation.kick(session, frame)
        : core.rooms.kick(session, { ...frame, room: frame.room }),
    operator: (frame) => frame.room === undefined,
  },
  mode: { run: (core, session, frame) => core.rooms.mode(session, frame) },
  ban: { run: (core, session, frame) => core.moderation.ban(session, frame), operator: true },
  unban: { run: (core, session, frame) => core.moderation.ban(session, frame), operator: true },
  mute: { run: (core, session, frame) => core.moderation.mute(session, frame), operator: true },
  auth: {
    run: (core, session, frame) =>
      core.shared.fail(
        session,
        frame.id,
        "bad_request",
        'Unexpected "auth": no challenge is pending',
      ),
  },
  offer: { run: (core, session, frame) => core.transfers.offer(session, frame), speaks: true },
  accept: { run: (core, session, frame) => core.transfers.accept(session, frame) },
  decline: { run: (core, session, frame) => core.transfers.decline(session, frame) },
  cancel: { run: (core, session, frame) => core.transfers.cancel(session, frame) },
  received: { run: (core, session, frame) => core.transfers.received(session, frame) },
  quit: {
    run: (core, session, frame) => {
      const reason = Shared.reason(frame.reason);
      if (reason === null) {
        return core.shared.fail(session, frame.id, "invalid_text", REASON_TOO_LONG);
      }
      core.shared.ack(session, { type: "ack", id: frame.id });
      core.shared.leave(session, "quit", reason);
      session.peer?.close();
    },
    cost: 0,
  },
  ping: {
    run: (core, session, frame) => core.shared.ack(session, { type: "ack", id: frame.id }),
    cost: 0,
  },
};
