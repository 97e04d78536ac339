/**
 * The requests the core answers, as a table: for each request type, its
 * handler and the rules that apply to it before it runs (whether it needs a
 * name, whether only operators may make it, what it costs against the rate
 * limit, whether a muted user is refused). The rules are applied in one
 * place, by the core's dispatch.
 *
 * @module
 */

import type { ClientFrame } from "../protocol/frames.ts";

/** The request types that reach the dispatch (`pong` and `data` never do). */
export type RequestType = Exclude<ClientFrame["type"], "pong" | "data">;

/** The frame of one request type. */
export type RequestOf<T extends RequestType> = Extract<ClientFrame, { type: T }>;

/** One entry of the table. */
export interface Command<Context, Registered, Frame> {
  /** Handles the request once the rules let it through. */
  run(context: Context, session: Registered, frame: Frame): void;
  /**
   * Usable before the handshake is done.
   *
   * @default {false}
   */
  beforeName?: boolean;
  /**
   * Operators only.
   *
   * @default {false}
   */
  operator?: boolean;
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
