/**
 * The core's door: everything a front door (a socket speaking JSON or plain
 * text today; a WebSocket or IRC tomorrow) may do with the chat. A door opens
 * a session for each connection, hands its requests in, and delivers the
 * events the core hands its {@linkcode Peer}. The core knows no sockets.
 *
 * @module
 */

import type { ErrorCode } from "../protocol/errors.ts";
import type { ClientFrame, LeaveReason, RequestId } from "../protocol/frames.ts";
import type { Origin, Peer, Session } from "./hub.ts";
import type { ByteStream } from "./transfers.ts";

export { Outbound } from "./hub.ts";
export type { Origin, Peer, Session } from "./hub.ts";
export type { ByteStream } from "./transfers.ts";

/** What a door may ask of the core. */
export interface Core {
  /**
   * Opens a session for a new connection.
   *
   * @param peer Where the session's events go.
   * @param origin Where the connection comes from.
   * @returns The session, to hand requests in with.
   */
  open(peer: Peer, origin: Origin): Session;
  /**
   * Handles one request.
   *
   * @param session The session it came from.
   * @param frame The request.
   * @returns A promise when the requests after this one must wait for it.
   */
  receive(session: Session, frame: ClientFrame): Promise<void> | undefined;
  /**
   * Answers a request that could not be read.
   *
   * @param session The session that sent it.
   * @param code Why it was refused.
   * @param message What was wrong.
   * @param id The request's id, when it could be read.
   */
  reject(session: Session, code: ErrorCode, message: string, id?: RequestId): void;
  /**
   * Reports a failure of the server itself while handling a request.
   *
   * @param session The session whose request failed.
   * @param error What was thrown.
   */
  fault(session: Session, error: unknown): void;
  /**
   * The connection of a session ended.
   *
   * @param session The session.
   * @param peer The connection that ended.
   * @param reason Why.
   */
  disconnect(session: Session, peer: Peer, reason: LeaveReason): void;
  /**
   * Hands a data connection (its first frame was `data`) to the transfers.
   *
   * @param stream The connection's bytes.
   * @param token The token it presented.
   * @returns A promise that resolves once the transfer has closed it, or
   * `undefined` when the token opened nothing.
   */
  attachData(stream: ByteStream, token: string): Promise<void> | undefined;
}
